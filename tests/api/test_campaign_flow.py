"""#20's scenario over HTTP on an s market: a brief created, three merchants join, their plans
booked, concurrent double bookings refused cleanly, and the campaign's assignment taking only
its participants and the capacity left."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from kolmatch.api.app import create_app
from kolmatch.api.auth import KeyRing, Principal
from kolmatch.api.limits import Limits
from kolmatch.engine.service import EngineService
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from kolmatch.matching.availability import Window, availability
from kolmatch.matching.validate import assignment_violations
from tests.api.conftest import serve


class Client:
    def __init__(self, url: str, service: EngineService) -> None:
        self.url, self.service = url, service
        self.http = httpx.Client(timeout=120)

    def ask(self, key: str, query: str, **variables: Any) -> dict[str, Any]:
        r = self.http.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def data(self, key: str, query: str, **variables: Any) -> dict[str, Any]:
        out = self.ask(key, query, **variables)
        assert "errors" not in out, out["errors"]
        return out["data"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def client(s_market: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    d = tmp_path_factory.mktemp("flow")
    store = SQLiteStore(d / "s.db")
    load_folder(s_market, store)
    service = EngineService(store, d / "cache")
    f = service.snapshot.features
    ok = [str(m) for m in f.merchant_ids[f.merchant_risk < 1.0]]
    keys = {"internal": "k-int", f"merchant:{ok[0]}": "k-a", f"merchant:{ok[1]}": "k-b"}
    ring = KeyRing({k: Principal.parse(p) for p, k in keys.items()})
    limits = Limits(timeout_s=120, rate_per_s=0, internal_rate_per_s=0)
    url, server, thread = serve(create_app(service, ring, production=False, limits=limits))
    c = Client(url, service)
    c.merchants = ok[:3]  # type: ignore[attr-defined]
    yield c
    c.http.close()
    server.should_exit = True
    thread.join(timeout=10)
    service.close()


CREATE = """mutation($input: CampaignInput!) { createCampaign(input: $input) {
  id status goal kpiTarget budget categories merchants } }"""
JOIN = """mutation($c: ID!, $m: ID) { joinCampaign(campaignId: $c, merchantId: $m) {
  id joined } }"""
PLAN = """query($m: ID!, $c: ID) { merchant(id: $m) { plan(budget: 300000, campaign: $c) {
  window talents { talent { id } } } } }"""
BOOK = """mutation($t: [ID!]!, $k: String!, $c: ID, $m: ID) {
  bookTalents(talents: $t, idempotencyKey: $k, campaign: $c, merchantId: $m) {
  bookingIds written start end version } }"""
ASSIGN = """query($c: ID) { assignment(input: {campaign: $c, candidates: 10}) {
  window pairs { merchant talent } } }"""


def test_a_campaign_from_brief_to_assignment(client: Client) -> None:
    svc = client.service
    f = svc.snapshot.features
    start = f.today + timedelta(days=45)
    end = start + timedelta(days=9)
    brief = {
        "id": "cp-flow",
        "name": "Double 11 rehearsal",
        "start": start.isoformat(),
        "end": end.isoformat(),
        "goal": "gmv",
        "kpiTarget": 3e6,
        "budget": 5e5,
    }
    # only internal tools create campaigns
    refused = client.ask("k-a", CREATE, input=brief)["errors"][0]
    assert refused["extensions"]["code"] == "FORBIDDEN"
    made = client.data("k-int", CREATE, input=brief)["createCampaign"]
    assert (made["status"], made["goal"], made["merchants"]) == ("upcoming", "gmv", [])
    # three merchants join: two with their own keys, one through internal tools
    a, b, third = client.merchants  # type: ignore[attr-defined]
    assert client.data("k-a", JOIN, c="cp-flow")["joinCampaign"]["joined"] is True
    assert client.data("k-b", JOIN, c="cp-flow")["joinCampaign"]["joined"] is True
    client.data("k-int", JOIN, c="cp-flow", m=third)
    # a merchant cannot join for another
    other = client.ask("k-a", JOIN, c="cp-flow", m=b)["errors"][0]
    assert other["extensions"]["code"] == "FORBIDDEN"
    listed = client.data("k-int", "{ campaigns { id merchants } }")["campaigns"]
    assert {"id": "cp-flow", "merchants": sorted([a, b, third])} in listed
    # a merchant sees whether it joined, not who else did
    mine = client.ask("k-a", "{ campaigns { id joined merchants } }")
    assert mine["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    # their plans, booked for the campaign's window
    booked: dict[str, list[str]] = {}
    for key, m in (("k-a", a), ("k-b", b), ("k-int", third)):
        plan = client.data(key, PLAN, m=m, c="cp-flow")["merchant"]["plan"]
        talents = [t["talent"]["id"] for t in plan["talents"]]
        free = _free(svc, talents, start.toordinal(), end.toordinal(), m)
        out = client.data(key, BOOK, t=free, k=f"plan-{m}", c="cp-flow", m=m)["bookTalents"]
        assert out["written"] == [f"{m}/plan-{m}/{t}" for t in free]
        assert (out["start"], out["end"]) == (brief["start"], brief["end"])
        # the same request again (a retry): nothing written twice
        again = client.data(key, BOOK, t=free, k=f"plan-{m}", c="cp-flow", m=m)["bookTalents"]
        assert again["written"] == [] and again["version"] == out["version"]
        booked[m] = free

    # a talent with one slot left, wanted by the two merchant keys at once: one booking holds
    snap = svc.snapshot
    w = Window(start.toordinal(), end.toordinal(), "cp-flow")
    av_a, av_b = (
        availability(snap.features, snap.features.merchant_row(a), w),
        availability(snap.features, snap.features.merchant_row(b), w),
    )
    last = np.nonzero(
        av_a.available & av_b.available & (av_a.free_slots == 1) & (snap.features.talent_risk < 1)
    )[0]
    assert len(last), "some talent has exactly one slot left in the window"
    tid = str(snap.features.talent_ids[last[0]])
    answers: dict[str, dict[str, Any]] = {}
    go = threading.Barrier(2)

    def race(key: str, m: str) -> None:
        go.wait()
        answers[m] = client.ask(key, BOOK, t=[tid], k=f"race-{m}", c="cp-flow", m=m)

    threads = [threading.Thread(target=race, args=kv) for kv in (("k-a", a), ("k-b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    wins = [m for m, r in answers.items() if "errors" not in r]
    losses = [r["errors"][0] for r in answers.values() if "errors" in r]
    assert len(wins) == 1 and len(losses) == 1
    assert losses[0]["extensions"]["code"] == "CONFLICT"
    assert "nothing was booked" in losses[0]["message"] and tid in losses[0]["message"]
    assert "competitor" not in losses[0]["message"]  # who holds it is not told

    # the campaign's assignment: its participants only, and only the capacity left
    asg = client.data("k-int", ASSIGN, c="cp-flow")["assignment"]
    pairs = [(p["merchant"], p["talent"]) for p in asg["pairs"]]
    assert pairs and {m for m, _ in pairs} <= {a, b, third}
    f2 = svc.snapshot.features
    assert assignment_violations(f2, pairs, campaign="cp-flow", enforce_budgets=False) == []
    used = Counter(t for _, t in pairs)
    for t, n in used.items():
        left = availability(f2, None, w).free_slots[f2.talent_row(t)]
        assert n <= left, (t, n, left)
    assert tid not in used or used[tid] <= availability(f2, None, w).free_slots[f2.talent_row(tid)]


def _free(svc: EngineService, talents: list[str], start: int, end: int, merchant: str) -> list[str]:
    """The planned talents still free for ``merchant`` now (an earlier merchant's booking or
    a competitor's may have taken one since its plan)."""
    f = svc.snapshot.features
    av = availability(f, f.merchant_row(merchant), Window(start, end, "w"))
    return [t for t in talents if av.available[f.talent_row(t)]]


GROWTH = """{ growth(first: 5) { months horizon merchantsOnTrack talentsOnTrack
  realised12Months forecast12Months bookedSlots bookedGmv laterSlots
  merchants { id last12Months forecast12Months bookedSlots bookedGmv goal onTrack gap basis }
  pairings { merchant talent expectedGmv gapClosed }
  backtestMerchants { holdout forecastWape lastYearWape forecastTotalError } note } }"""


def test_the_growth_report_is_for_internal_tools(client: Client) -> None:
    refused = client.ask("k-a", GROWTH)["errors"][0]
    assert refused["extensions"]["code"] == "FORBIDDEN"
    r = client.data("k-int", GROWTH)["growth"]
    assert r["months"][0] == "2025-01" and len(r["months"]) == 18
    rows = r["merchants"]
    assert len(rows) == 5
    # on track first, then the smallest gap: the order a programme manager works in
    keys = [(not x["onTrack"], x["gap"]) for x in rows]
    assert keys == sorted(keys)
    for x in rows:
        year = max(x["forecast12Months"], x["bookedGmv"])  # beside each other, never added
        assert x["gap"] == pytest.approx(max(x["goal"] - year, 0.0))
        assert x["basis"] == ("booked" if x["bookedGmv"] > x["forecast12Months"] else "forecast")
    assert r["horizon"][0] == "2026-07" and len(r["horizon"]) == 12
    # booked: the market's slots in coming windows, each counted for its merchant and talent
    full = client.service.growth()
    assert r["bookedSlots"] > 0 and r["bookedGmv"] > 0
    assert sum(x.booked_slots for x in full.merchants) == r["bookedSlots"]
    assert sum(x.booked_slots for x in full.talents) == r["bookedSlots"]
    assert sum(x.booked_gmv for x in full.merchants) == pytest.approx(r["bookedGmv"])
    assert r["realised12Months"] == pytest.approx(sum(x.last_12_months for x in full.merchants))
    assert r["pairings"], "some off-track merchant has a candidate"
    closed = [p["gapClosed"] for p in r["pairings"]]
    assert closed == sorted(closed, reverse=True)
    b = r["backtestMerchants"]
    assert b["holdout"] == ["2026-04", "2026-05", "2026-06"]
    assert b["forecastWape"] < b["lastYearWape"]


TARGET = """query($m: ID!, $x: Float) { merchant(id: $m) { planToTarget(targetGmv: $x) {
  kind reachable cost achieved bound gap maxReachable talents { talent { id } fee feeEstimated
  expectedGmv } } } }"""


def test_the_cheapest_plan_for_a_target_over_the_api(client: Client) -> None:
    from kolmatch.matching.validate import target_plan_violations

    a, b, _ = client.merchants  # type: ignore[attr-defined]
    p = client.data("k-a", TARGET, m=a, x=2e5)["merchant"]["planToTarget"]
    assert p["kind"] == "gmv" and p["reachable"]
    assert p["achieved"] >= 2e5 and p["gap"] <= 0.01 and p["bound"] <= p["cost"] + 1e-6
    talents = [t["talent"]["id"] for t in p["talents"]]
    fees = {t["talent"]["id"]: t["fee"] for t in p["talents"] if t["feeEstimated"]}
    f = client.service.snapshot.features
    assert target_plan_violations(f, a, talents, target_gmv=2e5, fees=fees) == []
    assert client.ask("k-a", TARGET, m=b, x=2e5)["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    bad = client.ask("k-a", TARGET, m=a, x=-1.0)["errors"][0]
    assert bad["extensions"]["code"] == "BAD_ARGUMENT" and "targetGmv" in bad["message"]
