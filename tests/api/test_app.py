"""The API over real HTTP: each user group's journey, every boundary, every limit."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from kolmatch.api.app import create_app
from kolmatch.api.auth import KeyRing, Principal
from kolmatch.api.limits import Limits
from kolmatch.engine.service import EngineService
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from tests.api.conftest import Api, serve
from tests.matching.test_plan import write_follow_market

MATCHES = """query($m: ID!, $after: String) { merchant(id: $m) {
  name categories matches(first: 5, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { rank score evidence breakdown { signal value }
      talent { id name tier centrality audience { size categories { value share } } } } } } } }"""


def test_no_key_or_a_wrong_key_gets_401_and_no_data(api: Api, ledger: Any) -> None:
    ledger.case("Access boundaries", "no API key, or a wrong one: 401 and no data").tried(2)
    r = api.post("{ me { kind } }", who=None)
    assert r.status_code == 401 and r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    r = httpx.post(
        f"{api.url}/graphql",
        json={"query": "{ me { kind } }"},
        headers={"Authorization": "Bearer nope"},
    )
    assert r.status_code == 401 and "data" not in r.json()


def test_merchant_journey(api: Api) -> None:
    d = api.data(MATCHES, "m0", variables={"m": "m0"})["merchant"]
    page = d["matches"]
    assert [e["node"]["rank"] for e in page["edges"]] == [1, 2, 3, 4, 5]
    assert page["pageInfo"]["hasNextPage"] and page["totalCount"] > 5
    top = page["edges"][0]["node"]
    assert any("audience's interest" in e for e in top["evidence"])
    nxt = api.data(MATCHES, "m0", variables={"m": "m0", "after": page["pageInfo"]["endCursor"]})
    assert [e["node"]["rank"] for e in nxt["merchant"]["matches"]["edges"]] == [6, 7, 8, 9, 10]
    plan = api.data(
        '{ merchant(id: "m0") { plan(budget: 200000, tiers: "mid=1..3") { cost gap method '
        "objectiveKind estimatedFees talents { tier fee feeEstimated marginalReach talent { id } } "
        "uniqueReach overlaps { a b } } audienceSummary { buyers categories { signal value } } } }",
        "m0",
    )["merchant"]
    assert plan["plan"]["cost"] <= 200000 and plan["plan"]["gap"] <= 0.01
    assert plan["plan"]["objectiveKind"] == "gmv" and plan["plan"]["estimatedFees"] == 0
    assert not any(t["feeEstimated"] for t in plan["plan"]["talents"])
    assert 1 <= [t["tier"] for t in plan["plan"]["talents"]].count("mid") <= 3
    assert plan["audienceSummary"]["buyers"] > 0


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ('{ merchant(id: "m1") { matches(first: 3) { totalCount } } }', ["merchant", "matches"]),
        ('{ x: merchant(id: "m1") { plan(budget: 1e5) { cost } } }', ["x", "plan"]),
        ('{ merchant(id: "m1") { audienceSummary { buyers } } }', ["merchant", "audienceSummary"]),
        ('{ talent(id: "t1") { fee } }', ["talent", "fee"]),
        ('{ talent(id: "t1") { bookings { merchant } } }', ["talent", "bookings"]),
        (
            '{ talent(id: "t1") { recommendedMerchants { merchant } } }',
            ["talent", "recommendedMerchants"],
        ),
        ('{ matchLists(merchantIds: ["m1"]) { merchant } }', ["matchLists"]),
        ("{ assignment { objective } }", ["assignment"]),
        (
            'fragment F on Merchant { matches { totalCount } } { merchant(id: "m1") { ...F } }',
            ["merchant", "matches"],
        ),
    ],
)
def test_a_merchant_cannot_cross_its_boundary(
    api: Api, query: str, path: list[str], ledger: Any
) -> None:
    ledger.case("Access boundaries", "a merchant asking for another's data (named cases)").tried()
    r = api.post(query, "m0")
    assert r.status_code == 200
    body = r.json()
    errs = body["errors"]
    assert errs and all(e["extensions"]["code"] == "FORBIDDEN" for e in errs)
    assert errs[0]["path"][: len(path)] == path
    node = body["data"]
    for key in path:
        node = node[key] if isinstance(node, dict) else None
        if node is None:
            break
    assert node is None, "forbidden data leaked"


def test_a_merchant_sees_only_its_own_collaborations(api: Api) -> None:
    snap = api.service.snapshot
    tid, items = next(
        (t, xs) for t, xs in sorted(snap.history.items()) if len({c.merchant for c in xs}) > 1
    )
    seen = api.data(
        f'{{ talent(id: "{tid}") {{ history(first: 100) {{ merchant }} }} }}', "internal"
    )
    assert {c["merchant"] for c in seen["talent"]["history"]} == {c.merchant for c in items}
    as_m0 = api.data(f'{{ talent(id: "{tid}") {{ history(first: 100) {{ merchant }} }} }}', "m0")
    assert {c["merchant"] for c in as_m0["talent"]["history"]} <= {"m0"}


def test_agency_journey_and_boundaries(api: Api) -> None:
    agency = api.agency  # type: ignore[attr-defined]
    d = api.data(
        f'{{ agency(id: "{agency}") {{ name roster(first: 5) {{ totalCount edges {{ node {{ id '
        "fee capacity commissionRate bookings { merchant } similar(first: 3) { similarity } "
        "recommendedMerchants(first: 2) { merchant roi } } } } rosterReach "
        "rosterOverlap { a b jaccard } categoryGaps { category demandShare rosterShare } "
        "communities } }",
        "agency",
    )["agency"]
    nodes = [e["node"] for e in d["roster"]["edges"]]
    assert nodes and all(n["fee"] is not None for n in nodes)
    assert d["rosterReach"] > 0 and d["categoryGaps"] and d["communities"]
    members = {t for c in d["communities"] for t in c}
    assert members == set(api.service.snapshot.agency_roster[agency])
    outsider = next(
        t
        for t in api.service.snapshot.talent_names
        if t not in api.service.snapshot.agency_roster[agency]
    )
    errs = api.errors(f'{{ talent(id: "{outsider}") {{ fee }} }}', "agency")
    assert errs[0]["extensions"]["code"] == "FORBIDDEN"
    other = api.other_agency  # type: ignore[attr-defined]
    errs = api.errors(f'{{ agency(id: "{other}") {{ rosterReach }} }}', "agency")
    assert errs[0]["extensions"]["code"] == "FORBIDDEN"
    errs = api.errors('{ merchant(id: "m0") { matches { totalCount } } }', "agency")
    assert errs[0]["extensions"]["code"] == "FORBIDDEN"


def test_internal_journey_match_lists_and_assignment(api: Api) -> None:
    d = api.data(
        '{ matchLists(merchantIds: ["m0", "m1", "m2"], first: 3) { merchant '
        "matches { rank talent { id fee } } } }"
    )
    assert [x["merchant"] for x in d["matchLists"]] == ["m0", "m1", "m2"]
    assert all(len(x["matches"]) == 3 for x in d["matchLists"])
    a = api.data(
        '{ assignment(input: {method: "stable", candidates: 5}) { method pairs { merchant '
        "talent fee } blockingPairs merchantsServed } }"
    )["assignment"]
    assert a["pairs"] and a["blockingPairs"] == 0


def test_list_queries_never_call_the_store(api: Api) -> None:
    before = api.store.calls
    api.data(
        "{ talents(first: 100, orderBy: CENTRALITY_DESC) { totalCount edges { node { id "
        "name tier agency { id name } audience { size } } } } }"
    )
    api.data("{ merchants(first: 50) { edges { node { id name categories } } } }")
    assert api.store.calls == before


def test_mutations_take_effect_in_the_next_query(api: Api) -> None:
    snap = api.service.snapshot
    f = snap.features
    talent = str(f.talent_ids[0])
    product = str(f.product_ids[f.merchant_products[0][0]])
    m = """mutation($i: CollaborationInput!) { recordCollaboration(input: $i) { version
      talent { history(first: 1) { id gmv } } } }"""
    v = {
        "id": "api-k1",
        "talent": talent,
        "product": product,
        "gmv": 12345.0,
        "orders": 10,
        "fee": 1000.0,
        "time": "2026-07-01",
    }
    out = api.data(m, variables={"i": v})["recordCollaboration"]
    assert out["version"] > snap.version and out["talent"]["history"][0]["id"] == "api-k1"
    # the merchant that sells the product may record it too; another may not
    errs = api.errors(m, "m1", variables={"i": {**v, "id": "api-k2"}})
    assert errs[0]["extensions"]["code"] == "FORBIDDEN"
    bad = api.errors(m, variables={"i": {**v, "id": "api-k3", "gmv": -1.0}})
    assert bad[0]["extensions"]["code"] == "BAD_ARGUMENT" and "gmv" in bad[0]["message"]
    # a severe violation excludes the talent from the next match list at once
    top = api.data(
        '{ merchant(id: "m0") { matches(first: 1) { edges { node { talent { id } } } } } }'
    )
    first = top["merchant"]["matches"]["edges"][0]["node"]["talent"]["id"]
    api.data(
        f'mutation {{ flagViolation(input: {{id: "api-x1", label: "Talent", target: "{first}", '
        'kind: "fake-engagement", severity: "severe", time: "2026-06-30"}) { version } }'
    )
    after = api.data(
        '{ merchant(id: "m0") { matches(first: 20) { edges { node { talent { id } } } } } '
        f't: talent(id: "{first}") {{ excluded }} }}'
    )
    assert first not in [e["node"]["talent"]["id"] for e in after["merchant"]["matches"]["edges"]]
    assert after["t"]["excluded"] is True
    errs = api.errors('mutation { resolveViolation(id: "api-x1") { version } }', "m0")
    assert errs[0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    ("query", "code", "says"),
    [
        ("{ talents(first: 1000) { totalCount } }", "BAD_ARGUMENT", "between 1 and 100"),
        ('{ talent(id: "nobody") { id } }', "NOT_FOUND", "unknown Talent id 'nobody'"),
        ('{ merchant(id: "m0") { plan(budget: 1) { cost } } }', "INFEASIBLE_PLAN", "no talent"),
        (
            '{ merchant(id: "m0") { plan(budget: 1e6, tiers: "top=x") { cost } } }',
            "BAD_ARGUMENT",
            "cannot read",
        ),
        ('{ talents(after: "garbage") { totalCount } }', "BAD_ARGUMENT", "not a cursor"),
        ("{ me { kind ", "GRAPHQL_PARSE_FAILED", "Syntax Error"),
        ("{ nothing }", "GRAPHQL_VALIDATION_FAILED", "Cannot query field 'nothing'"),
        (
            "{ " + " ".join(f"a{i}: me {{ kind }}" for i in range(25)) + " }",
            "LIMIT_EXCEEDED",
            "aliases",
        ),
        (
            '{ talent(id: "t1") { similar { talent { similar { talent { similar { talent { similar '
            "{ talent { similar { talent { id } } } } } } } } } } } }",
            "LIMIT_EXCEEDED",
            "levels deep",
        ),
        (
            "{ talents(first: 100) { edges { node { similar(first: 100) { talent { "
            "history(first: 100) { id } } } } } } }",
            "LIMIT_EXCEEDED",
            "objects",
        ),
        (
            "fragment A on Talent { ...B } fragment B on Talent { ...A } "
            '{ talent(id: "t1") { ...A } }',
            "GRAPHQL_VALIDATION_FAILED",
            "Cannot spread fragment",
        ),
        ("{ " + "me { kind } " * 1000 + "}", "GRAPHQL_PARSE_FAILED", "tokens"),
    ],
)
def test_bad_queries_get_typed_errors_never_500(
    api: Api, query: str, code: str, says: str, ledger: Any
) -> None:
    ledger.case(
        "Bad input: GraphQL requests",
        "syntax errors, unknown fields, limits (depth, aliases, cost, tokens, page), cycles",
    ).tried()
    r = api.post(query)
    assert r.status_code == 200
    errs = r.json()["errors"]
    assert errs[0]["extensions"]["code"] == code, errs
    assert says in errs[0]["message"]
    assert "Traceback" not in r.text


def test_malformed_requests(api: Api, ledger: Any) -> None:
    ledger.case(
        "Bad input: GraphQL requests",
        "malformed HTTP bodies: not JSON, oversized, no query, big batch",
    ).tried(5)
    h = {"Authorization": "Bearer k-internal"}
    r = httpx.post(f"{api.url}/graphql", content=b"{not json", headers=h)
    assert r.status_code == 400 and r.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    r = httpx.post(f"{api.url}/graphql", content=b"x" * (70 * 1024), headers=h)
    assert r.status_code == 413
    r = httpx.post(f"{api.url}/graphql", json={"variables": {}}, headers=h)
    assert r.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    r = httpx.post(f"{api.url}/graphql", json=[{"query": "{ me { kind } }"}] * 11, headers=h)
    assert r.status_code == 400
    batch = [
        {"query": "{ me { kind } }"},
        {"query": '{ merchant(id: "m1") { matches { totalCount } } }'},
    ]
    r = httpx.post(f"{api.url}/graphql", json=batch, headers={"Authorization": "Bearer k-m0"})
    out = r.json()
    assert out[0]["data"]["me"]["kind"] == "merchant"
    assert out[1]["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_healthz_and_graphiql(api: Api) -> None:
    h = httpx.get(f"{api.url}/healthz").json()
    assert h["ok"] is True and h["store"].startswith("sqlite:///")
    assert "GraphiQL" in httpx.get(f"{api.url}/graphql").text


def test_production_turns_off_introspection_and_graphiql(api: Api) -> None:
    ring = KeyRing({"k": Principal("internal")})
    url, server, thread = serve(create_app(api.service, ring, production=True))
    try:
        r = httpx.post(
            f"{url}/graphql",
            json={"query": "{ __schema { types { name } } }"},
            headers={"Authorization": "Bearer k"},
        )
        assert r.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert "introspection" in r.json()["errors"][0]["message"].lower()
        assert httpx.get(f"{url}/graphql").status_code == 405
        ok = httpx.post(
            f"{url}/graphql",
            json={"query": "{ me { kind } }"},
            headers={"Authorization": "Bearer k"},
        )
        assert json.loads(ok.text)["data"]["me"]["kind"] == "internal"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class SlowWrites:
    """The real store, with writes that take a second (a store under load)."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name != "write":
            return attr

        def slow(*args: Any, **kwargs: Any) -> Any:
            time.sleep(1.0)
            return attr(*args, **kwargs)

        return slow


def test_a_timed_out_mutation_says_it_may_still_complete_and_does(
    tiny_market: Path, tmp_path: Path
) -> None:
    raw = SQLiteStore(tmp_path / "tiny.db")
    load_folder(tiny_market, raw)
    service = EngineService(SlowWrites(raw), tmp_path / "cache")  # type: ignore[arg-type]
    app = create_app(service, KeyRing({"k": Principal("internal")}), limits=Limits(timeout_s=0.3))
    url, server, thread = serve(app)
    h = {"Authorization": "Bearer k"}
    rows = raw.node_rows("Violation", ["resolved"])
    # an unresolved one: resolving a resolved violation writes nothing (and is fast)
    vid = sorted(str(i) for i, r in zip(rows.ids, rows.columns["resolved"], strict=True) if not r)[
        0
    ]
    version = raw.version()
    try:
        m = httpx.post(
            f"{url}/graphql",
            json={"query": f'mutation {{ resolveViolation(id: "{vid}") {{ version }} }}'},
            headers=h,
        ).json()
        assert m["errors"][0]["extensions"]["code"] == "TIMEOUT"
        assert "may still complete" in m["errors"][0]["message"]
        deadline = time.monotonic() + 30
        # it does complete, refresh included: nothing is lost (and the store is not closed
        # under the still-running refresh below, which crashed SQLite once in CI)
        while raw.version() == version or service.snapshot.version != raw.version():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        q = httpx.post(f"{url}/graphql", json={"query": "{ me { kind } }"}, headers=h).json()
        assert q == {"data": {"me": {"kind": "internal"}}}
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        raw.close()


def test_closing_the_service_waits_for_a_write_still_running(
    tiny_market: Path, tmp_path: Path
) -> None:
    """Shutdown during a mutation that outlived its request: the write and its refresh finish
    before the store closes (closing SQLite under them could crash the process)."""
    raw = SQLiteStore(tmp_path / "tiny.db")
    load_folder(tiny_market, raw)
    service = EngineService(SlowWrites(raw), tmp_path / "cache")  # type: ignore[arg-type]
    rows = raw.node_rows("Violation", ["resolved"])
    # an unresolved one: resolving a resolved violation writes nothing (and is fast)
    vid = sorted(str(i) for i, r in zip(rows.ids, rows.columns["resolved"], strict=True) if not r)[
        0
    ]
    version = raw.version()
    outcome: list[Any] = []

    def mutate() -> None:
        try:
            outcome.append(service.resolve_violation(vid).version)
        except BaseException as exc:  # reported below
            outcome.append(exc)

    t = threading.Thread(target=mutate)
    t.start()
    time.sleep(0.2)  # the write is sleeping in SlowWrites: running, not finished
    assert service.close(timeout=30) is True
    t.join(timeout=30)
    assert outcome == [version + 1]
    again = SQLiteStore(tmp_path / "tiny.db")
    try:
        assert again.version() == version + 1
        rows = again.node_rows("Violation", ("resolved",))
        assert rows.columns["resolved"][rows.ids.index(vid)] == 1
    finally:
        again.close()


def test_a_query_text_is_parsed_and_validated_once(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kolmatch.api.app as app_module

    calls: list[str] = []
    real = app_module.validate

    def counting(schema: Any, doc: Any, rules: Any) -> Any:
        calls.append("validate")
        return real(schema, doc, rules)

    monkeypatch.setattr(app_module, "validate", counting)
    q = "query($m: ID!) { merchant(id: $m) { name matches(first: 2) { totalCount } } }"
    for m in ("m0", "m0", "m0"):
        assert api.data(q, "m0", variables={"m": m})["merchant"]["name"]
    assert len(calls) == 1
    timing = api.post(q, "m0", variables={"m": "m0"}).headers["server-timing"]
    assert timing.startswith("app;dur=") and float(timing.split("dur=")[1]) > 0
    # the cached document is still checked against each principal and each variable
    errs = api.errors(q, "m0", variables={"m": "m1"})
    assert errs[0]["extensions"]["code"] == "FORBIDDEN" and len(calls) == 1
    for _ in range(2):  # invalid documents are not kept: refused every time
        assert api.errors("{ nothing }")[0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


def test_a_plan_without_history_says_it_optimised_reach_and_flags_estimated_fees(
    tmp_path: Path,
) -> None:
    raw = SQLiteStore(tmp_path / "follows.db")
    load_folder(write_follow_market(tmp_path / "follows"), raw)
    service = EngineService(raw, tmp_path / "cache")
    app = create_app(service, KeyRing({"k": Principal("internal")}), production=False)
    url, server, thread = serve(app)
    query = (
        '{ merchant(id: "m-beauty") { plan(budget: 25000) { objectiveKind objectiveNote '
        "objective gap estimatedFees feeNote ties tieBreak talents { fee feeEstimated "
        "talent { id } } } } }"
    )
    try:
        r = httpx.post(
            f"{url}/graphql", json={"query": query}, headers={"Authorization": "Bearer k"}
        ).json()
        plan = r["data"]["merchant"]["plan"]
        assert plan["objectiveKind"] == "target_reach" and "gmv_rate 0" in plan["objectiveNote"]
        assert plan["objective"] > 0 and plan["gap"] <= 0.01
        flags = {t["talent"]["id"]: t["feeEstimated"] for t in plan["talents"]}
        assert flags["t3"] and sum(flags.values()) == plan["estimatedFees"] == 1
        assert "per platform follower" in plan["feeNote"] and plan["ties"] >= 1
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        service.close()


@pytest.mark.parametrize(
    ("query", "variables", "says"),
    [
        (
            'query($b: Float!) { merchant(id: "m0") { plan(budget: $b) { cost } } }',
            {"b": "abc"},
            "Variable '$b' got invalid value 'abc'",
        ),
        (
            "query($f: Int) { talents(first: $f) { totalCount } }",
            {"f": "abc"},
            "Variable '$f' got invalid value 'abc'",
        ),
        ("query($m: ID!) { merchant(id: $m) { id } }", {"m": {"a": 1}}, "Variable '$m'"),
        (
            'query($b: Float!) { merchant(id: "m0") { plan(budget: $b) { cost } } }',
            "Infinity",  # what Python's and JavaScript's JSON writers may send
            "Variable '$b'",
        ),
    ],
)
def test_a_variable_of_the_wrong_type_is_a_bad_argument(
    api: Api, query: str, variables: dict[str, Any] | str, says: str
) -> None:
    if isinstance(variables, str):
        body = '{"query": ' + json.dumps(query) + ', "variables": {"b": ' + variables + "}}"
        r = api.client.post(
            f"{api.url}/graphql",
            content=body,
            headers={
                "Authorization": f"Bearer {api.keys['internal']}",
                "Content-Type": "application/json",
            },
        )
    else:
        r = api.post(query, variables=variables)
    assert r.status_code == 200
    errs = r.json()["errors"]
    assert errs[0]["extensions"]["code"] == "BAD_ARGUMENT", errs
    assert says in errs[0]["message"]
    assert "internal error" not in r.text and "Traceback" not in r.text


def test_evidence_is_built_only_for_queries_that_select_it(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A list without `evidence` in its selection builds none (half a ranked list's time at
    m) and is otherwise the same list; selected directly, through a fragment or an inline
    fragment, or in matchLists, the evidence is there."""
    import kolmatch.matching.score as score_module

    built: list[int] = []
    real = score_module._evidence

    def counted(*args: Any) -> Any:
        built.append(1)
        return real(*args)

    monkeypatch.setattr(score_module, "_evidence", counted)
    head = "query($m: ID!) { merchant(id: $m) { matches(first: 5) { edges { node "
    bare = head + "{ rank score talent { id } } } } } }"
    lean = api.data(bare, "m0", variables={"m": "m0"})["merchant"]["matches"]["edges"]
    assert built == [] and len(lean) == 5
    queries = [
        head + "{ rank score talent { id } evidence } } } } }",
        head + "{ ...M } } } } } fragment M on Match { rank score talent { id } evidence }",
        head + "{ ... on Match { rank score talent { id } evidence } } } } } }",
    ]
    for q in queries:
        full = api.data(q, "m0", variables={"m": "m0"})["merchant"]["matches"]["edges"]
        ids = [e["node"]["talent"]["id"] for e in full]
        assert ids == [e["node"]["talent"]["id"] for e in lean]
        assert [e["node"]["score"] for e in full] == [e["node"]["score"] for e in lean]
        assert all(e["node"]["evidence"] for e in full), q
    lists = '{ matchLists(merchantIds: ["m0"], first: 3) { matches { evidence } } }'
    assert all(m["evidence"] for m in api.data(lists)["matchLists"][0]["matches"])


def test_a_serving_process_holds_blas_to_the_threads_it_is_given() -> None:
    """One BLAS thread by default (a server's concurrency is its requests), the variable's
    number where set, and a clear refusal naming it otherwise. In a process of its own: BLAS's
    thread count is the process's, and this one's fixtures may be inside BLAS meanwhile."""
    import subprocess
    import sys

    script = """
from threadpoolctl import threadpool_info
from kolmatch.api.app import SERVING_BLAS_THREADS, limit_blas_threads
from kolmatch.errors import BadArgument

def blas():
    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

import numpy  # its BLAS loaded, as in a server
assert limit_blas_threads({}) == SERVING_BLAS_THREADS == 1
assert blas() == {1}, blas()
assert limit_blas_threads({"KOLMATCH_BLAS_THREADS": " 2 "}) == 2
assert blas() == {2}, blas()
for bad in ("0", "-1", "two", "1.5"):
    try:
        limit_blas_threads({"KOLMATCH_BLAS_THREADS": bad})
    except BadArgument as e:
        assert "KOLMATCH_BLAS_THREADS" in str(e) and repr(bad) in str(e), e
    else:
        raise AssertionError(bad)
assert blas() == {2}, blas()  # a refused value changed nothing
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
