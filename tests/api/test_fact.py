"""Merchant.factSplit over HTTP: the merchant's own, nobody else's; arguments named as sent."""

from __future__ import annotations

from tests.api.conftest import Api

SPLIT = (
    "query($id: ID!, $budget: Float!, $start: String, $end: String) { merchant(id: $id) { "
    "factSplit(budget: $budget, start: $start, end: $end) { start end budget spent unspent "
    "expectedGmv floor campaignLift reasons channels { channel spend expectedGmv roi "
    "marginalReturn nextReturn reasons sessionsAdded sessionsNow sessionCost campaigns "
    "talents { talent { id } tier fee feeEstimated expectedGmv roi campaign } } } } }"
)


def test_merchant_sees_its_own_split(api: Api) -> None:
    s = api.data(SPLIT, "m0", variables={"id": "m0", "budget": 200000})["merchant"]["factSplit"]
    assert [c["channel"] for c in s["channels"]] == ["field", "alliance", "campaign", "top_kol"]
    assert (
        s["spent"] <= s["budget"]
        and abs(sum(c["spend"] for c in s["channels"]) - s["spent"]) < 1e-3
    )
    assert s["start"] > api.service.snapshot.features.today.isoformat()
    for c in s["channels"]:
        assert c["reasons"]
        for t in c["talents"]:  # list prices, as plans show them: never a private fee
            row = api.service.snapshot.features.talent_row(t["talent"]["id"])
            listed = api.service.snapshot.features.talent_list_price[row]
            assert t["feeEstimated"] or abs(t["fee"] - listed) < 1e-6
    # the same split internal tools see, and in Chinese on request
    same = api.data(SPLIT, variables={"id": "m0", "budget": 200000})["merchant"]["factSplit"]
    assert same == s
    zh = api.client.post(
        f"{api.url}/graphql",
        json={"query": SPLIT, "variables": {"id": "m0", "budget": 200000}},
        headers={"Authorization": f"Bearer {api.keys['m0']}", "Accept-Language": "zh-CN"},
    ).json()["data"]["merchant"]["factSplit"]
    assert zh["spent"] == s["spent"] and zh["channels"][0]["reasons"][0].startswith("自播")


def test_another_merchants_key_is_forbidden(api: Api) -> None:
    errs = api.errors(SPLIT, "m1", variables={"id": "m0", "budget": 200000})
    assert errs[0]["extensions"]["code"] == "FORBIDDEN", errs


def test_bad_arguments_are_named(api: Api) -> None:
    for variables, name in (
        ({"budget": 0}, "budget"),
        ({"budget": -5}, "budget"),
        ({"budget": 1e5, "start": "July"}, "start"),
        ({"budget": 1e5, "start": "2020-01-01"}, "start"),
        ({"budget": 1e5, "start": "2026-12-05", "end": "2026-12-01"}, "end"),
    ):
        errs = api.errors(SPLIT, "m0", variables={"id": "m0", **variables})
        assert errs[0]["extensions"]["code"] == "BAD_ARGUMENT", errs
        assert errs[0]["message"].startswith(f"argument {name}:"), errs


UNPLANNED = (
    "query($id: ID!, $budget: Float!) { merchant(id: $id) { factSplit(budget: $budget) { "
    "channels { channel spend talents { tier } unplanned { campaign leftOut { reason count } "
    "cheapest maxTalents } } } } }"
)


def test_a_channel_the_planner_refuses_says_why_in_counts(api: Api) -> None:
    """A budget under every quote: the talent channels have no talent, and say why as the
    library does (the planner's counts by reason, the cheapest quote over the budget); a
    channel with talents has no such entry."""
    from kolmatch.matching.plan import LEFT_OUT_OVER_BUDGET

    for budget, planned in ((100.0, False), (2e6, True)):
        s = api.data(UNPLANNED, "m0", variables={"id": "m0", "budget": budget})
        want = api.service.fact_split("m0", budget=budget)
        for got, lib in zip(s["merchant"]["factSplit"]["channels"], want.channels, strict=True):
            assert got["channel"] == lib.channel
            assert got["unplanned"] == [
                {
                    "campaign": u.campaign,
                    "leftOut": [{"reason": k, "count": v} for k, v in u.left_out.items()],
                    "cheapest": u.cheapest,
                    "maxTalents": u.max_talents,
                }
                for u in lib.unplanned
            ]
            if got["talents"]:
                assert got["unplanned"] == []
        top = next(c for c in s["merchant"]["factSplit"]["channels"] if c["channel"] == "top_kol")
        if planned:
            continue
        (u,) = top["unplanned"]
        over = {r["reason"]: r["count"] for r in u["leftOut"]}
        assert over[LEFT_OUT_OVER_BUDGET] > 0 and u["cheapest"] > budget, u
