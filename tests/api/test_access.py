"""Every private field, through every path the schema offers, as every principal.

For each private field and each way of reaching it (directly, under an alias,
in a named or inline fragment, through variables, as the second request of a
batch, and nested under lists and other objects), the sweep queries as each
kind of principal and walks the whole answer: a private value appears only on
an object the principal owns, every refusal is a FORBIDDEN error at the refused
field's path, and the refusal nulls that field alone: the object is there with
its sibling fields (``id``, ``name``) answered.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.conftest import Api

SECTION = "Access boundaries"

#: type -> private fields (with a sub-selection where the field is an object)
PRIVATE = {
    "Talent": {
        "fee": "fee",
        "commissionRate": "commissionRate",
        "capacity": "capacity",
        "bookings": "bookings { merchant }",
        "recommendedMerchants": "recommendedMerchants(first: 2) { merchant }",
        "collaborators": "collaborators(first: 2)",
    },
    "Merchant": {
        "matches": "matches(first: 2) { totalCount }",
        "audienceSummary": "audienceSummary { buyers }",
        "plan": "plan(budget: 300000) { cost }",
    },
    "Agency": {
        "rosterReach": "rosterReach",
        "rosterOverlap": "rosterOverlap(first: 2) { a }",
        "rosterEdges": "rosterEdges(perTalent: 2) { a }",
        "categoryGaps": "categoryGaps(first: 2) { category }",
        "communities": "communities",
    },
}
#: ways to reach an object of each type; {x} is the object's id, {own} the principal's own
#: merchant / a talent of its roster, {f} the field selection.
OBJ = "{{ __typename id name {f} }}"  # every reached object says its type, id and name
PATHS = {
    "Talent": {
        "direct": '{{ talent(id: "{x}") ' + OBJ + " }}",
        "alias": '{{ t: talent(id: "{x}") {{ __typename id name secret: {f} }} }}',
        "fragment": "fragment F on Talent " + OBJ + ' {{ talent(id: "{x}") {{ ...F }} }}',
        "inline fragment": '{{ talent(id: "{x}") {{ ... on Talent ' + OBJ + " }} }}",
        "variables": "query($x: ID!) {{ talent(id: $x) " + OBJ + " }}",
        "search list": "{{ talents(first: 10, orderBy: ID_ASC) {{ edges {{ node "
        + OBJ
        + " }} }} }}",
        "another agency's roster": '{{ talent(id: "{x}") {{ agency {{ roster(first: 10) '
        "{{ edges {{ node " + OBJ + " }} }} }} }} }}",
        "similar talents": '{{ talent(id: "{x}") {{ similar(first: 5) {{ talent '
        + OBJ
        + " }} }} }}",
        "a merchant's matches": '{{ merchant(id: "{own}") {{ matches(first: 5) '
        "{{ edges {{ node {{ talent " + OBJ + " }} }} }} }} }}",
    },
    "Merchant": {
        "direct": '{{ merchant(id: "{x}") ' + OBJ + " }}",
        "alias": '{{ m: merchant(id: "{x}") {{ __typename id name secret: {f} }} }}',
        "fragment": "fragment F on Merchant " + OBJ + ' {{ merchant(id: "{x}") {{ ...F }} }}',
        "inline fragment": '{{ merchant(id: "{x}") {{ ... on Merchant ' + OBJ + " }} }}",
        "variables": "query($x: ID!) {{ merchant(id: $x) " + OBJ + " }}",
        "search list": "{{ merchants(first: 3) {{ edges {{ node " + OBJ + " }} }} }}",
    },
    "Agency": {
        "direct": '{{ agency(id: "{x}") ' + OBJ + " }}",
        "alias": '{{ a: agency(id: "{x}") {{ __typename id name secret: {f} }} }}',
        "fragment": "fragment F on Agency " + OBJ + ' {{ agency(id: "{x}") {{ ...F }} }}',
        "inline fragment": '{{ agency(id: "{x}") {{ ... on Agency ' + OBJ + " }} }}",
        "variables": "query($x: ID!) {{ agency(id: $x) " + OBJ + " }}",
        "through a talent": '{{ talent(id: "{t}") {{ agency ' + OBJ + " }} }}",
    },
}
PRINCIPALS = ["m0", "m1", "agency", "agency2", "internal"]


def _owns(api: Api, who: str, kind: str, obj_id: str) -> bool:
    snap = api.service.snapshot
    if who == "internal":
        return True
    if kind == "Merchant":
        return who == obj_id
    agency = {"agency": api.agency, "agency2": api.other_agency}.get(who)  # type: ignore[attr-defined]
    if agency is None:
        return False
    if kind == "Agency":
        return obj_id == agency
    return obj_id in snap.agency_roster[agency]


def _objects(
    node: Any, path: tuple[Any, ...] = ()
) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Every object in an answer that says its type, with its path."""
    if isinstance(node, dict):
        if "__typename" in node:
            yield path, node
        for k, v in node.items():
            yield from _objects(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _objects(v, (*path, i))


def _targets(api: Api) -> dict[str, list[str]]:
    """For each type, objects owned by some principal and owned by none of them."""
    snap = api.service.snapshot
    mine = snap.agency_roster[api.agency]  # type: ignore[attr-defined]
    theirs = snap.agency_roster[api.other_agency]  # type: ignore[attr-defined]
    unsigned = next(
        t for t in sorted(snap.talent_names) if not any(t in r for r in snap.agency_roster.values())
    )
    return {
        "Talent": [mine[0], theirs[0], unsigned],
        "Merchant": ["m0", "m1", "m2"],
        "Agency": [api.agency, api.other_agency],  # type: ignore[attr-defined]
    }


def _cases(api: Api) -> Iterator[tuple[str, str, str, str, str, str]]:
    targets = _targets(api)
    for kind, fields in PRIVATE.items():
        for (fname, sel), (pname, tmpl) in itertools.product(fields.items(), PATHS[kind].items()):
            for who, x in itertools.product(PRINCIPALS, targets[kind]):
                if pname == "a merchant's matches" and not who.startswith("m"):
                    continue
                if who == "internal" and pname != "direct":
                    continue  # the control: internal tools see everything
                if kind == "Agency" and pname == "through a talent":
                    roster = api.service.snapshot.agency_roster[x]
                    query = tmpl.format(t=roster[0], f=sel)
                else:
                    query = tmpl.format(x=x, own=who, f=sel)
                if pname == "search list" and kind == "Merchant" and fname == "plan":
                    continue  # three plans per query: the direct paths cover plan
                yield kind, fname, pname, who, query, x


def test_no_private_field_leaks_through_any_path(api: Api, ledger: Any) -> None:
    tried = refused = leaks = 0
    problems: list[str] = []
    paths: dict[str, set[str]] = {}
    # one client: a new one per request costs ~50 ms of TLS set-up
    client = httpx.Client(timeout=120)
    for kind, fname, pname, who, query, x in _cases(api):
        case = ledger.case(SECTION, f"{kind}.{fname} of objects the principal does not own")
        paths.setdefault(case.what, set()).add(pname)
        body: dict[str, Any] = {"query": query}
        if pname == "variables":
            body["variables"] = {"x": x}
        r = client.post(
            f"{api.url}/graphql",
            json=body,
            headers={"Authorization": f"Bearer {api.keys[who]}"},
        )
        case.tried()
        tried += 1
        assert r.status_code == 200, (query, r.text)
        out = r.json()
        errors = out.get("errors", [])
        bad_codes = [e for e in errors if e["extensions"]["code"] != "FORBIDDEN"]
        if bad_codes:
            problems.append(f"{who} {query}: unexpected errors {bad_codes}")
        forbidden_paths = {tuple(e["path"]) for e in errors}
        reached = 0
        for path, obj in _objects(out.get("data")):
            if obj["__typename"] != kind:
                continue
            key = "secret" if pname == "alias" else fname
            if key not in obj:
                continue
            reached += 1
            owned = _owns(api, who, kind, obj["id"])
            if obj["id"] is None or obj["name"] is None:
                problems.append(f"{who}: {kind} {fname} via {pname}: siblings not answered {obj}")
            if obj[key] is not None and not owned:
                leaks += 1
                problems.append(f"LEAK {who} saw {kind} {obj['id']}.{fname} via {pname}")
            if not owned:
                refused += 1
                if (*path, key) not in forbidden_paths:
                    problems.append(f"{who}: {kind} {obj['id']}.{fname} via {pname}: no FORBIDDEN")
            elif obj[key] is None and fname not in ("bookings", "capacity", "commissionRate"):
                problems.append(f"{who} was refused its own {kind} {obj['id']}.{fname} via {pname}")
        unsigned = pname == "another agency's roster" and not any(
            x in r for r in api.service.snapshot.agency_roster.values()
        )
        if not reached and not unsigned:  # an unsigned talent has no agency, no roster
            # a refusal that nulled its parent would hide the object from the walk above
            problems.append(
                f"{who}: {kind}.{fname} via {pname}: no {kind} answered: {str(out)[:300]}"
            )
    client.close()
    for what, ways in paths.items():
        ledger.case(SECTION, what).note(f"{len(ways)} paths: {', '.join(sorted(ways))}")
    ledger.case(SECTION, "refusals checked in the answers (objects not owned)").tried(refused)
    assert not problems, "\n".join(problems[:30])
    assert leaks == 0 and tried > 400 and refused > 400


def test_batched_requests_are_checked_one_by_one(api: Api, ledger: Any) -> None:
    """A forbidden query hidden after an allowed one in a batch is refused alone."""
    case = ledger.case(SECTION, "a forbidden query batched after an allowed one")
    for who, forbidden in [
        ("m0", '{ merchant(id: "m1") { matches(first: 1) { totalCount } } }'),
        ("m0", '{ matchLists(merchantIds: ["m1"]) { merchant } }'),
        ("agency", f'{{ agency(id: "{api.other_agency}") {{ rosterReach }} }}'),  # type: ignore[attr-defined]
        ("agency2", f'{{ agency(id: "{api.agency}") {{ communities }} }}'),  # type: ignore[attr-defined]
    ]:
        batch = [{"query": "{ me { kind id } }"}, {"query": forbidden}]
        r = httpx.post(
            f"{api.url}/graphql",
            json=batch,
            headers={"Authorization": f"Bearer {api.keys[who]}"},
        )
        case.tried()
        first, second = r.json()
        assert first["data"]["me"]["kind"] in ("merchant", "agency")
        assert second["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert all(v is None for v in _leaves(second.get("data"))), second


@pytest.mark.parametrize("who", ["m0", "agency"])
def test_internal_only_fields_and_mutations(api: Api, who: str, ledger: Any) -> None:
    case = ledger.case(SECTION, "internal-only queries and mutations as a merchant or agency")
    for query in [
        '{ matchLists(merchantIds: ["m0"]) { merchant } }',
        "{ assignment { objective } }",
        'mutation { flagViolation(input: {id: "v-x", label: "Talent", target: "t1", '
        'kind: "fake", severity: "minor", time: "2026-01-01"}) { version } }',
        'mutation { resolveViolation(id: "x0") { version } }',
        "mutation { refreshFeatures { version } }",
        'mutation { recordCollaboration(input: {id: "c-x", talent: "t1", product: '
        f'"{_product_of(api, "m1")}", gmv: 1, orders: 1, fee: 1, time: "2026-01-01"}}) '
        "{ version } }",
    ]:
        r = api.post(query, who)
        case.tried()
        errs = r.json().get("errors")
        assert errs, query
        assert errs[0]["extensions"]["code"] in ("FORBIDDEN", "GRAPHQL_VALIDATION_FAILED"), errs
        assert all(v is None for v in _leaves(r.json().get("data")))


def _leaves(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for v in node.values():
            yield from _leaves(v)
    elif isinstance(node, list):
        for v in node:
            yield from _leaves(v)
    else:
        yield node


def _product_of(api: Api, merchant: str) -> str:
    return next(
        p for p, m in sorted(api.service.snapshot.product_merchant.items()) if m == merchant
    )
