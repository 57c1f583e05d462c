"""What a user trial sent that the API took or misread, each now refused with BAD_ARGUMENT
at its field, in the API's names, with nothing written: forged page cursors, implausible
writes (a future day, 1e300 yuan, a campaign not joined, an id with white space), a booking
with both a campaign and dates, CLI flags in messages, an unknown tier. And what a review of
those rules found: a limit the API and a load disagreed on, a held record's retry refused by
the rules for new ones, a flag left in an error that is not BAD_ARGUMENT."""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kolmatch.engine.campaigns import CampaignBrief
from kolmatch.engine.write_rules import checked_amount, checked_count
from kolmatch.errors import BadArgument
from kolmatch.graph.model import MAX_AMOUNT, Field, node_spec, rel_spec
from kolmatch.graph.store import NodeBatch, RelBatch
from kolmatch.loaders.load import load_folder
from tests.api.conftest import WRITE_KEYS, Writable

RECORD = "mutation($i: CollaborationInput!) { recordCollaboration(input: $i) { version } }"
FLAG = "mutation($i: ViolationInput!) { flagViolation(input: $i) { version } }"
CREATE = "mutation($i: CampaignInput!) { createCampaign(input: $i) { id } }"
BOOK = """mutation($t: [ID!]!, $k: String!, $m: ID, $c: ID, $s: String, $e: String) {
  bookTalents(talents: $t, idempotencyKey: $k, merchantId: $m, campaign: $c, start: $s, end: $e)
  { bookingIds } }"""

#: A day after today wherever it is (UTC+14 is at most a day ahead of UTC).
TOMORROW_EVERYWHERE = (datetime.now(UTC).date() + timedelta(days=2)).isoformat()


def _refused(
    t: Writable,
    query: str,
    *,
    argument: str,
    path: list[Any],
    who: str = "internal",
    **body: Any,
) -> str:
    """Send ``query``; assert one BAD_ARGUMENT at ``path`` naming ``argument`` (never a
    flag), and that the store's version did not move; return the message."""
    v0 = t.store.version()
    out = t.post(query, who, **body)
    (err,) = out["errors"]
    assert err["extensions"]["code"] == "BAD_ARGUMENT", err
    assert err["path"] == path, err
    assert err["message"].startswith(f"argument {argument}:"), err
    assert "--" not in err["message"], err
    assert t.store.version() == v0 and t.service.snapshot.version == v0
    return str(err["message"])


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def _collab(t: Writable, cid: str, **over: Any) -> dict[str, Any]:
    v = {
        "id": cid,
        "talent": t.talent,
        "product": t.product,
        "gmv": 250000.0,
        "orders": 120,
        "fee": 30000.0,
        "time": "2026-07-01",
    }
    return {**v, **over}


def _open_campaign(t: Writable) -> CampaignBrief:
    """A campaign not over on the market's day whose window has passed by the clock's (one a
    collaboration may be recorded in), with the seller joined to it (written here)."""
    snap = t.service.snapshot
    today = snap.features.today
    brief = next(
        b
        for b in snap.campaigns.values()
        if b.status(today) != "over" and date.fromisoformat(b.end[:10]) < date.today()
    )
    if t.seller not in brief.merchants:
        t.service.join_campaign(t.seller, brief.id, actor="test")
    return t.service.snapshot.campaigns[brief.id]


# -- 1. page cursors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "forged",
    ["o:-5", "o:-1", "o:+2", "o: 2", "o:02", "o:99999999999999999999", "x:2", "o:", "o:2\n"],
)
def test_a_forged_cursor_is_refused_by_every_connection(t: Writable, forged: str) -> None:
    """``o:-5`` gave INTERNAL on a match list and items from the end of every other list."""
    snap = t.service.snapshot
    agency = next(a for a, roster in sorted(snap.agency_roster.items()) if roster)
    after = _cursor(forged)
    for field, path in (
        (
            f'merchant(id: "{t.seller}") {{ matches(first: 3, after: $a) {{ totalCount }} }}',
            ["merchant", "matches"],
        ),
        ("talents(first: 3, after: $a) { totalCount }", ["talents"]),
        ("merchants(first: 3, after: $a) { totalCount }", ["merchants"]),
        (
            f'agency(id: "{agency}") {{ roster(first: 3, after: $a) {{ totalCount }} }}',
            ["agency", "roster"],
        ),
    ):
        query = f"query($a: String) {{ {field} }}"
        message = _refused(t, query, argument="after", path=path, variables={"a": after})
        assert "not a cursor from this server" in message


def test_the_cursors_the_server_issues_still_page(t: Writable) -> None:
    q = """query($a: String) {
      talents(first: 3, after: $a, orderBy: ID_ASC) { edges { cursor node { id } } } }"""
    first = t.post(q, variables={"a": None})["data"]["talents"]["edges"]
    second = t.post(q, variables={"a": first[-1]["cursor"]})["data"]["talents"]["edges"]
    everyone = t.post(q.replace("first: 3", "first: 6"), variables={"a": None})
    ids = [e["node"]["id"] for e in everyone["data"]["talents"]["edges"]]
    assert [e["node"]["id"] for e in first + second] == ids


# -- 2. implausible writes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "over", "says"),
    [
        ("time", {"time": "2031-01-01"}, "is after today"),
        ("time", {"time": TOMORROW_EVERYWHERE}, "is after today"),
        ("time", {"time": "1999-12-31"}, "is before 2000-01-01"),
        ("time", {"time": "20260701"}, "YYYY-MM-DD"),
        ("gmv", {"gmv": 1e300}, "finite amount from 0 to 1e+12"),
        ("gmv", {"gmv": MAX_AMOUNT * 1.5}, "finite amount from 0 to 1e+12"),
        ("fee", {"fee": -1.0}, "finite amount from 0"),
        ("orders", {"orders": -3}, "whole number from 0"),
        ("id", {"id": " kT6 "}, "white space"),
        ("id", {"id": "kT6\t"}, "white space"),
        ("id", {"id": " "}, "must not be empty"),
    ],
)
def test_an_implausible_collaboration_is_refused_at_its_field(
    t: Writable, field: str, over: dict[str, Any], says: str
) -> None:
    """Each was answered success for the product's merchant; the 2031 one ran the growth
    report's months to 2031-01, printing nan."""
    body = {"variables": {"i": _collab(t, "kT6", **over)}}
    message = _refused(
        t, RECORD, argument=f"input.{field}", path=["recordCollaboration"], who="m_own", **body
    )
    assert says in message
    assert "kT6" not in t.service.snapshot.collaborations
    last = t.audit.entries()[-1]  # refused, and said so in the log
    assert last["outcome"] == "refused" and last["error"]["type"] == "BadArgument"


def test_a_collaboration_in_a_campaign_needs_the_merchant_joined_and_its_window(
    t: Writable,
) -> None:
    brief = _open_campaign(t)
    inside = brief.start[:10]
    snap = t.service.snapshot
    other = next(b for b in snap.campaigns.values() if t.seller not in b.merchants)
    body = {"variables": {"i": _collab(t, "kC1", campaign=other.id, time=other.start[:10])}}
    message = _refused(
        t, RECORD, argument="input.campaign", path=["recordCollaboration"], who="m_own", **body
    )
    assert f"merchant {t.seller} has not joined campaign {other.id}" in message
    outside = (date.fromisoformat(inside) - timedelta(days=1)).isoformat()
    body = {"variables": {"i": _collab(t, "kC1", campaign=brief.id, time=outside)}}
    message = _refused(
        t, RECORD, argument="input.campaign", path=["recordCollaboration"], who="m_own", **body
    )
    assert f"ran {brief.start[:10]} to {brief.end[:10]}, not on {outside}" in message
    # within the window of a campaign it joined: recorded
    out = t.post(
        RECORD, "m_own", variables={"i": _collab(t, "kC1", campaign=brief.id, time=inside)}
    )
    assert "errors" not in out, out
    assert t.service.snapshot.collaborations["kC1"].campaign == brief.id


@pytest.mark.parametrize(
    ("query", "field", "over"),
    [
        (FLAG, "input.id", {"id": " v9 "}),
        (FLAG, "input.time", {"time": "2031-01-01"}),
        (FLAG, "input.time", {"time": TOMORROW_EVERYWHERE}),
        (FLAG, "input.kind", {"kind": "  "}),
        (CREATE, "input.id", {"id": " cpZ "}),
        (CREATE, "input.budget", {"budget": 1e300}),
        (CREATE, "input.kpiTarget", {"kpiTarget": MAX_AMOUNT * 10}),
        (CREATE, "input.name", {"name": " "}),
    ],
)
def test_other_writes_follow_the_same_rules(
    t: Writable, query: str, field: str, over: dict[str, Any]
) -> None:
    f = t.service.snapshot.features
    if query == FLAG:
        sent = {"id": "v9", "label": "Talent", "target": t.talent, "kind": "x"}
        sent |= {"severity": "minor", "time": "2026-06-01"}
    else:
        start = f.today + timedelta(days=30)
        sent = {"id": "cpZ", "name": "Z", "start": start.isoformat()}
        sent |= {"end": (start + timedelta(days=5)).isoformat(), "budget": 1e5}
    mutation = "flagViolation" if query == FLAG else "createCampaign"
    _refused(t, query, argument=field, path=[mutation], variables={"i": {**sent, **over}})
    assert "v9" not in t.service.snapshot.violation_ids
    assert "cpZ" not in t.service.snapshot.campaigns


def test_an_idempotency_key_with_white_space_is_refused(t: Writable) -> None:
    f = t.service.snapshot.features
    start = f.today + timedelta(days=40)
    body = {"t": [t.talent], "k": " k1 ", "s": start.isoformat()}
    body["e"] = (start + timedelta(days=2)).isoformat()
    message = _refused(
        t, BOOK, argument="idempotencyKey", path=["bookTalents"], who="m_own", variables=body
    )
    assert "white space" in message


@pytest.mark.parametrize(
    ("argument", "field", "positive"),
    [
        ("gmv", rel_spec("PROMOTED").field_named("gmv"), False),
        ("fee", rel_spec("PROMOTED").field_named("fee"), False),
        ("budget", node_spec("Campaign").field_named("budget"), True),
        ("kpiTarget", node_spec("Campaign").field_named("kpi_target"), True),
    ],
)
def test_a_write_and_a_load_share_one_range(argument: str, field: Field, positive: bool) -> None:
    """gmv 1e300 was refused by recordCollaboration and loaded from promoted.csv: the API's
    limit is now the range of the field it writes to, the one a load checks (the API adds only
    "above 0" for a campaign's budget and KPI target)."""
    low, high = field.bounds or (0.0, 0.0)
    assert high == MAX_AMOUNT
    assert checked_amount(high, argument, field, positive=positive) == high
    outside = [math.nextafter(high, math.inf), math.nextafter(low, -math.inf), math.nan, math.inf]
    for x in outside + [low] * positive:
        with pytest.raises(BadArgument, match=f"argument {argument}: must be a finite amount"):
            checked_amount(x, argument, field, positive=positive)
    assert checked_amount(low, argument, field) == low  # 0: a load's value, refused if positive


def test_a_count_keeps_its_type_s_cap() -> None:
    """orders had a cap of its own in the API (1e12) and none in a load: the model sets no
    plausibility cap on counts, so neither does the API (GraphQL's Int stops at 2^31 - 1)."""
    orders = rel_spec("PROMOTED").field_named("orders")
    assert orders.bounds == (0, 2**63 - 1)
    assert checked_count(2**63 - 1, "orders", orders) == 2**63 - 1
    for x in (2**63, -1, 1.5):
        with pytest.raises(BadArgument, match="argument orders: must be a whole number from 0"):
            checked_count(x, "orders", orders)


#: A collaboration as a load writes it and the API is sent it again: values the API's rules
#: for a new record refuse, each with the rule it breaks (a campaign not joined is set below).
#: A day to come or before 2000: a load refuses those days now, as the API does (the model's
#: past fields, tests/loaders/test_ranges.py), but a store loaded before may hold them (they
#: are written to it directly here).
HELD = [
    pytest.param({}, id="campaign-not-joined"),
    pytest.param({"time": "2031-01-01", "campaign": None}, id="day-to-come"),
    pytest.param({"time": "1999-12-31", "campaign": None}, id="before-2000"),
]


@pytest.mark.parametrize("held", HELD)
def test_a_held_collaboration_is_answered_by_its_record_before_the_rules(
    t: Writable, tmp_path: Path, held: dict[str, Any]
) -> None:
    """A retry of a collaboration a load wrote, with values the API would refuse for a new
    record, is the no-op docs/api.md promises (it was BAD_ARGUMENT: the rules ran before the
    lookup); any value different is still CONFLICT, never BAD_ARGUMENT."""
    snap = t.service.snapshot
    other = next(
        b
        for b in snap.campaigns.values()
        if t.seller not in b.merchants and b.start[:10] <= date.today().isoformat()
    )
    v = _collab(t, "kL1", campaign=other.id, time=other.start[:10]) | held
    if "time" in held:  # (a store loaded before loads checked the day)
        row = {k: v[k] for k in ("gmv", "orders", "fee", "time")}
        row |= {"src": v["talent"], "dst": v["product"], "collab_id": "kL1"}
        t.store.write([RelBatch.of("PROMOTED", "Talent", [row])])
    else:
        d = tmp_path / "load"
        d.mkdir()
        (d / "promoted.csv").write_text(
            "src,dst,collab_id,gmv,orders,fee,time,campaign\n"
            f"{v['talent']},{v['product']},kL1,{v['gmv']},{v['orders']},{v['fee']},{v['time']},"
            f"{v['campaign'] or ''}\n"
        )
        load_folder(d, t.store)
    version = t.store.version()
    # the same values refused as a new record's, under another id
    fresh = _refused(
        t,
        RECORD,
        argument=f"input.{'campaign' if v['campaign'] else 'time'}",
        path=["recordCollaboration"],
        who="m_own",
        variables={"i": {**v, "id": "kL2"}},
    )
    assert "kL2" not in t.service.snapshot.collaborations, fresh
    again = t.post(RECORD, "m_own", variables={"i": v})
    assert again == {"data": {"recordCollaboration": {"version": version}}}
    assert t.store.version() == version
    last = t.audit.entries()[-1]
    assert (last["target"], last["outcome"]) == ("kL1", "unchanged")
    # another value, however implausible: the record stands, and says so
    out = t.post(RECORD, "m_own", variables={"i": {**v, "gmv": 1e300}})
    (err,) = out["errors"]
    assert err["extensions"]["code"] == "CONFLICT" and "gmv" in err["message"], err
    assert t.service.snapshot.collaborations["kL1"].gmv == v["gmv"]
    assert t.store.version() == version


# -- 3. a campaign and dates ------------------------------------------------------------------


def test_a_booking_with_a_campaign_and_dates_is_refused(t: Writable) -> None:
    """The campaign's window was booked and the dates silently ignored."""
    brief = _open_campaign(t)
    for dates in ({"s": "2026-08-01", "e": "2026-08-03"}, {"e": "2026-08-03"}, {"s": "2026-08-01"}):
        body = {"t": [t.talent], "k": "api4", "c": brief.id, **dates}
        message = _refused(
            t, BOOK, argument="campaign", path=["bookTalents"], who="m_own", variables=body
        )
        assert "not both" in message and brief.id in message
    # the service both the API and `kolmatch book` call refuses it: the CLI names --campaign
    with pytest.raises(BadArgument, match="argument campaign: give a campaign") as caught:
        t.service.book_talents(
            t.seller, [t.talent], "cli4", campaign=brief.id, start="2026-08-01", end="2026-08-03"
        )
    assert caught.value.argument == "campaign"
    assert t.store.version() == t.service.snapshot.version


# -- 4. the API's argument names, not the CLI's flags -----------------------------------------


def test_a_campaign_not_joined_is_named_as_the_api_argument(t: Writable) -> None:
    snap = t.service.snapshot
    other = next(b for b in snap.campaigns.values() if t.seller not in b.merchants)
    m = f'merchant(id: "{t.seller}")'
    matches = f'{{ {m} {{ matches(first: 3, campaign: "{other.id}") {{ totalCount }} }} }}'
    why = f'{{ {m} {{ whyNot(talent: "{t.talent}", campaign: "{other.id}") {{ reason }} }} }}'
    for query, path in ((matches, ["merchant", "matches"]), (why, ["merchant", "whyNot"])):
        for who in ("internal", "m_own"):
            message = _refused(t, query, argument="campaign", path=path, who=who)
            assert message == (
                f"argument campaign: merchant {t.seller} has not joined campaign {other.id}"
            )


def test_no_api_error_names_a_command_line_flag() -> None:
    """Every error on its way out is in the API's words, also one no resolver renamed."""
    from graphql import GraphQLError

    from kolmatch.api.errors import format_error

    exc = BadArgument("--target-gmv", "give exactly one of --target-gmv and --target-new-customers")
    err = GraphQLError(str(exc), path=["merchant", "planToTarget"], original_error=exc)
    for lang in ("en", "zh-CN"):
        out = format_error(err, lang)
        assert out["extensions"]["code"] == "BAD_ARGUMENT"
        assert "--" not in json.dumps(out, ensure_ascii=False), out
        assert "targetGmv" in out["message"] and "targetNewCustomers" in out["message"]


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_a_flag_in_an_error_that_is_not_bad_argument_is_the_api_argument(
    t: Writable, lang: str
) -> None:
    """planToTarget's INFEASIBLE_PLAN said "plan for new customers reached instead
    (--target-new-customers)": only BAD_ARGUMENT was rewritten. A merchant with no products
    has no GMV to plan for."""
    t.store.write([NodeBatch.of("Merchant", [{"id": "mBare", "name": "No shelf"}])])
    t.service.refresh()
    q = '{ merchant(id: "mBare") { planToTarget(targetGmv: 100000) { reachable } } }'
    headers = {"Authorization": f"Bearer {WRITE_KEYS['internal']}", "Accept-Language": lang}
    r = t.client.post(f"{t.url}/graphql", json={"query": q}, headers=headers)
    (err,) = r.json()["errors"]
    assert err["extensions"]["code"] == "INFEASIBLE_PLAN", err
    assert err["path"] == ["merchant", "planToTarget"]
    assert "(targetNewCustomers)" in err["message"] and "--" not in err["message"], err


# -- 5. an unknown tier -----------------------------------------------------------------------


def test_an_unknown_tier_is_refused_naming_the_tiers(t: Writable) -> None:
    """``tier: "giant"`` answered totalCount 0, where an unknown category is refused."""
    q = '{ talents(filter: {tier: "giant"}) { totalCount } }'
    message = _refused(t, q, argument="filter.tier", path=["talents"])
    assert "'giant'" in message and "top, mid, micro" in message
    tier = t.post(f'{{ talent(id: "{t.talent}") {{ tier }} }}')["data"]["talent"]["tier"]
    known = t.post(f'{{ talents(filter: {{tier: "{tier}"}}) {{ totalCount }} }}')
    assert "errors" not in known and known["data"]["talents"]["totalCount"] > 0


@pytest.fixture
def t(tiny_api: Writable) -> Writable:
    return tiny_api
