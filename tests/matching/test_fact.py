"""The FACT split: greedy on concave hulls, the budget, compliance, rooms and campaigns."""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from kolmatch.errors import BadArgument, InfeasiblePlan, NotEligible
from kolmatch.graph.market import FACT_READ, read_market
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.graph.store import NodeBatch, RelBatch
from kolmatch.loaders.load import load_folder
from kolmatch.matching.fact import (
    CHANNELS,
    Curve,
    FactInputs,
    allocate,
    campaign_lift,
    concave_hull,
    fact_inputs,
    fact_split,
)
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.fees import merchant_prices
from kolmatch.matching.plan import LEFT_OUT_OVER_BUDGET, LEFT_OUT_RETURN_BELOW, plan_candidates
from kolmatch.matching.score import merchant_signals


def _hull_value(cost: np.ndarray, gain: np.ndarray, x: float) -> float:
    """The concave hull of a sequential curve at spend ``x`` (linear within a segment)."""
    _, c, g = concave_hull(cost, gain)
    out = 0.0
    for ci, gi in zip(c, g, strict=True):
        take = min(ci, x)
        out += gi * take / ci
        x -= take
        if x <= 0:
            break
    return out


@pytest.mark.parametrize("seed", range(6))
def test_greedy_equals_the_hull_optimum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    curves = [
        Curve(np.ones(k), rng.uniform(0, 5, k), np.arange(k), False)  # not concave
        for k in (4, 5, 3)
    ]
    segments = sorted(
        (g / c, c, g)
        for cv in curves
        for c, g in zip(*concave_hull(cv.cost, cv.gain)[1:], strict=True)
    )[::-1]
    # at every budget that ends a run of the best segments, greedy spends it all and equals
    # the brute-force optimum over every unit spend of the hulls (the continuous optimum)
    budgets = np.cumsum([c for _, c, _ in segments])
    assert len(budgets) >= 3
    for budget in budgets:
        t = allocate(curves, float(budget))
        best = max(
            sum(_hull_value(cv.cost, cv.gain, x) for cv, x in zip(curves, xs, strict=True))
            for xs in itertools.product(*(range(len(cv.cost) + 1) for cv in curves))
            if sum(xs) <= budget
        )
        assert t.spent.sum() == pytest.approx(budget)
        assert t.gain.sum() == pytest.approx(best)
    # and in between, greedy never spends more than it has
    for budget in np.arange(0.5, budgets[-1], 1.0):
        assert allocate(curves, float(budget)).spent.sum() <= budget


def test_allocate_keeps_talents_disjoint_and_counts_them() -> None:
    a = Curve(np.array([1.0, 1.0]), np.array([5.0, 4.0]), np.array([7, 8]), True)
    b = Curve(np.array([1.0, 1.0]), np.array([6.0, 1.0]), np.array([7, 9]), True)
    t = allocate([a, b], 10.0, shared=[True, True])
    bought = [int(c.item[s]) for c, steps in zip((a, b), t.steps, strict=True) for s in steps]
    assert sorted(bought) == [7, 8, 9]  # talent 7 once, in the channel that returns more
    assert t.steps[1] == [0, 1] and t.steps[0] == [1]
    assert allocate([a, b], 10.0, shared=[True, True], most_items=2).spent.sum() == 2.0
    assert allocate([a, b], 10.0, floor=4.5).gain.sum() == pytest.approx(11.0)


def test_campaign_lift_on_a_trend() -> None:
    days = np.arange(400)
    level = 100.0 * 1.001**days
    inside = ((days >= 100) & (days < 110)) | ((days >= 300) & (days < 320))
    sales = level * np.where(inside, 1.4, 1.0)
    lift = campaign_lift(days, sales, np.array([100, 300]), np.array([109, 319]))
    assert lift == pytest.approx(1.4, abs=0.01)


@pytest.fixture(scope="module")
def tiny(
    tiny_market: Path, tiny_features: MarketFeatures, tmp_path_factory: pytest.TempPathFactory
) -> FactInputs:
    store = SQLiteStore(tmp_path_factory.mktemp("fact") / "tiny.db")
    load_folder(tiny_market, store)
    g = read_market(store, FACT_READ)
    store.close()
    return fact_inputs(g, tiny_features)


def _split(f: MarketFeatures, inputs: FactInputs, m: str, budget: float, **kw: object) -> object:
    return fact_split(
        f,
        m,
        budget=budget,
        field_model=inputs.field_model,
        lift=inputs.lift,
        campaign_products=inputs.campaign_products,
        event_days=inputs.event_days,
        **kw,  # type: ignore[arg-type]
    )


def _eligible_merchants(f: MarketFeatures) -> list[str]:
    return [str(f.merchant_ids[m]) for m in range(len(f.merchant_ids)) if f.merchant_risk[m] < 1]


@pytest.mark.parametrize("budget", [2e3, 5e4, 1e6])
def test_split_spends_at_most_the_budget(
    tiny_features: MarketFeatures, tiny: FactInputs, budget: float
) -> None:
    for m in _eligible_merchants(tiny_features):
        s = _split(tiny_features, tiny, m, budget)
        spends = [c.spend for c in s.channels]  # type: ignore[attr-defined]
        assert sum(spends) == pytest.approx(s.spent) and s.spent <= budget + 1e-6  # type: ignore[attr-defined]
        talents = [t.talent for c in s.channels for t in c.talents]  # type: ignore[attr-defined]
        assert len(talents) == len(set(talents))  # no talent in two channels
        for c in s.channels:  # type: ignore[attr-defined]
            assert c.reasons, c.channel
            if c.spend > 0:
                assert c.marginal_return >= s.floor  # type: ignore[attr-defined]


def test_no_room_no_field_spend(tiny_features: MarketFeatures, tiny: FactInputs) -> None:
    fm = tiny.field_model
    without = [
        m
        for m in _eligible_merchants(tiny_features)
        if not fm.has_room[tiny_features.merchant_row(m)]
    ]
    assert without
    for m in without:
        field = _split(tiny_features, tiny, m, 1e6).channel("field")  # type: ignore[attr-defined]
        assert field.spend == 0 and field.sessions_added == 0
        assert field.reasons == ["Field: no live room of its own"]
    # a room everything is cheap for takes Field spend
    rich = replace(fm, scale=fm.scale * 1e4)
    with_room = [
        m
        for m in _eligible_merchants(tiny_features)
        if fm.has_room[tiny_features.merchant_row(m)]
        and fm.months[tiny_features.merchant_row(m)] > 0
    ]
    s = _split(tiny_features, replace(tiny, field_model=rich), with_room[0], 1e5)
    assert s.channel("field").spend > 0 and s.channel("field").sessions_added > 0  # type: ignore[attr-defined]


def test_excluded_talents_never_chosen_and_excluded_merchant_refused(
    tiny_features: MarketFeatures, tiny: FactInputs
) -> None:
    f = tiny_features
    m = _eligible_merchants(f)[0]
    before = _split(f, tiny, m, 1e6)
    chosen = {t.talent for c in before.channels for t in c.talents}  # type: ignore[attr-defined]
    assert chosen
    risk = f.talent_risk.copy()
    risk[[f.talent_row(t) for t in chosen]] = 1.0
    g = replace(f, talent_risk=risk)
    excluded = set(f.talent_ids[merchant_signals(g, f.merchant_row(m)).excluded].tolist())
    after = _split(g, tiny, m, 1e6)
    again = {t.talent for c in after.channels for t in c.talents}  # type: ignore[attr-defined]
    assert not again & excluded
    mrisk = f.merchant_risk.copy()
    mrisk[f.merchant_row(m)] = 1.0
    with pytest.raises(NotEligible):
        _split(replace(f, merchant_risk=mrisk), tiny, m, 1e6)


def test_campaign_share_zero_without_joined_campaigns(
    tiny_features: MarketFeatures, tiny: FactInputs
) -> None:
    f = tiny_features
    m = _eligible_merchants(f)[0]
    none = replace(f, merchant_campaigns=sp.csr_matrix(f.merchant_campaigns.shape))
    c = _split(none, tiny, m, 1e6).channel("campaign")  # type: ignore[attr-defined]
    assert c.spend == 0 and not c.talents and "no joined campaign" in c.reasons[0]


def test_campaign_channel_plans_the_joined_window(
    tiny_features: MarketFeatures, tiny: FactInputs
) -> None:
    f = tiny_features
    ordinal = {str(c): int(f.campaign_start[i]) for i, c in enumerate(f.campaign_ids)}
    coming = [
        c for c, a in ordinal.items() if a > f.today.toordinal() and tiny.campaign_products.get(c)
    ]
    assert coming
    cid = coming[0]
    g = f.campaign_row(cid)
    products = tiny.campaign_products[cid]
    m = int(f.product_merchant[f.product_row(products[0])])
    joined = f.merchant_campaigns.tolil()
    joined[m, g] = 1
    f2 = replace(f, merchant_campaigns=joined.tocsr(), merchant_risk=np.zeros(len(f.merchant_ids)))
    from datetime import date

    start, end = (
        date.fromordinal(int(f.campaign_start[g])),
        date.fromordinal(int(f.campaign_end[g])),
    )
    s = _split(f2, tiny, str(f.merchant_ids[m]), 1e6, start=start, end=end)
    c = s.channel("campaign")  # type: ignore[attr-defined]
    assert c.campaigns == [cid]
    assert all(t.campaign == cid for t in c.talents)


def test_bad_arguments_are_named(tiny_features: MarketFeatures, tiny: FactInputs) -> None:
    m = _eligible_merchants(tiny_features)[0]
    for budget in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(BadArgument, match="argument budget"):
            _split(tiny_features, tiny, m, budget)
    with pytest.raises(BadArgument, match="argument start"):
        _split(tiny_features, tiny, m, 1e5, start=tiny_features.today)


def test_a_window_more_than_a_year_ahead_is_refused(
    tiny_features: MarketFeatures, tiny: FactInputs
) -> None:
    m = _eligible_merchants(tiny_features)[0]
    far = tiny_features.today + timedelta(days=400)
    with pytest.raises(BadArgument, match="argument start: must be within 366 days"):
        _split(tiny_features, tiny, m, 1e5, start=far)
    # a year ahead is as far as the rooms' trend is carried: bounded, not run away
    ok = tiny_features.today + timedelta(days=360)
    s = _split(tiny_features, tiny, m, 1e5, start=ok, end=ok + timedelta(days=6))
    assert np.isfinite(s.expected_gmv) and s.expected_gmv < 1e9  # type: ignore[attr-defined]


def test_talents_the_merchant_already_holds_are_not_planned_again(
    tiny_features: MarketFeatures, tiny: FactInputs
) -> None:
    f = tiny_features
    m = _eligible_merchants(f)[0]
    before = _split(f, tiny, m, 1e6)
    chosen = [t.talent for c in before.channels for t in c.talents]  # type: ignore[attr-defined]
    assert chosen
    held = f.talent_row(chosen[0])
    w = before.start, before.end  # type: ignore[attr-defined]
    from datetime import date

    a, b = (date.fromisoformat(x).toordinal() for x in w)
    g = replace(
        f,
        booking_talent=np.append(f.booking_talent, held),
        booking_merchant=np.append(f.booking_merchant, f.merchant_row(m)),
        booking_start=np.append(f.booking_start, a),
        booking_end=np.append(f.booking_end, b),
    )
    after = _split(g, tiny, m, 1e6)
    assert chosen[0] not in {t.talent for c in after.channels for t in c.talents}  # type: ignore[attr-defined]


def test_inputs_skip_a_merchant_the_features_do_not_know_yet(
    tiny_features: MarketFeatures, tiny_market: Path, tmp_path: Path
) -> None:
    """The store a write ahead of the features (a merchant they have not seen): the split's
    inputs leave its sessions for the next build instead of failing everyone's split."""
    store = SQLiteStore(tmp_path / "ahead.db")
    load_folder(tiny_market, store)
    day = (tiny_features.today - timedelta(days=40)).isoformat()
    store.write(
        [
            NodeBatch.of("Merchant", [{"id": "m-new", "name": "New", "room_followers": 5000}]),
            NodeBatch.of("LiveSession", [{"id": "ls-new", "day": day, "gmv": 10.0, "cost": 1.0}]),
            RelBatch.of("HOSTED", "Merchant", [{"src": "m-new", "dst": "ls-new"}]),
        ]
    )
    inputs = fact_inputs(read_market(store, FACT_READ), tiny_features)
    store.close()
    assert inputs.field_model.has_room.shape == (len(tiny_features.merchant_ids),)


#: The planner's refusal for want of an affordable talent: ``... in W: 1 compliance, 99 fee
#: over the budget; the cheapest ...`` (its counts by reason, in its English).
_REFUSED_COUNTS = re.compile(r"\): (?P<counts>[^;]*)")


@pytest.mark.parametrize("budget", [100.0, 3e4, 1e6])
def test_a_refusal_carries_the_planner_s_counts_and_the_split_says_them(
    tiny_features: MarketFeatures, tiny: FactInputs, budget: float
) -> None:
    """Where the planner refuses, its InfeasiblePlan carries what it counted (the talents left
    out by reason, the cheapest one over the budget, or max_talents) and the split's channels
    say why from exactly those: one count of eligibility, the planner's."""
    f = tiny_features
    floor_key = LEFT_OUT_RETURN_BELOW.format(floor="1.0x")
    refused = 0
    for merchant in _eligible_merchants(f):
        try:
            plan_candidates(f, merchant, budget=budget)
            continue
        except InfeasiblePlan as exc:
            got = exc
        refused += 1
        if "returns at least" in str(got):  # the floor: every talent left is under it
            c = plan_candidates(f, merchant, budget=budget, min_roi=0)
            assert got.left_out == {**c.left_out, floor_key: int(c.eligible.sum())}
        else:
            m = _REFUSED_COUNTS.search(str(got))
            assert m, got
            counts = {why: int(n) for n, why in (x.split(" ", 1) for x in m["counts"].split(", "))}
            assert got.left_out == counts
            fee = merchant_prices(f).fee
            ok = ~np.logical_or.reduce(
                [
                    merchant_signals(f, f.merchant_row(merchant)).excluded,
                    ~np.isfinite(fee),
                ]
            )
            assert got.cheapest is not None and got.cheapest >= np.nanmin(fee[ok])
        s = _split(f, tiny, merchant, budget)
        for name in ("alliance", "top_kol"):
            (u,) = s.channel(name).unplanned  # type: ignore[attr-defined]
            assert (u.left_out, u.cheapest, u.max_talents) == (
                got.left_out,
                got.cheapest,
                got.max_talents,
            )
    assert refused  # (the tiny market refuses some merchant at every one of these budgets)


def test_a_refusal_is_said_in_the_readers_language(
    tiny_features: MarketFeatures, tiny: FactInputs
) -> None:
    """Every quote over the budget, every return under the floor, no talent taken at all: the
    reason is the planner's counts through the catalogue, never its English message."""
    f = tiny_features
    merchant = _eligible_merchants(f)[0]
    m = f.merchant_row(merchant)
    dear = replace(f, talent_list_price=f.talent_list_price * 1e6)  # returns under the floor
    most = f.merchant_max_talents.copy()
    most[m] = 0
    none = replace(f, merchant_max_talents=most)
    for g, budget, zh, key in (
        (f, 100.0, "报价超出预算", LEFT_OUT_OVER_BUDGET),
        (dear, 1e12, "回报低于 1.0x", LEFT_OUT_RETURN_BELOW.format(floor="1.0x")),
        (none, 1e6, "达人上限为 0 位", None),
    ):
        with pytest.raises(InfeasiblePlan):
            plan_candidates(g, merchant, budget=budget)
        for lang in ("en", "zh-CN"):
            s = _split(g, tiny, merchant, budget, lang=lang)
            for name in ("alliance", "top_kol"):
                c = s.channel(name)  # type: ignore[attr-defined]
                (u,) = c.unplanned
                assert (key in u.left_out) if key else u.max_talents == 0, u
                (line,) = [r for r in c.reasons if "no talent can be planned" in r or "无可" in r]
                assert "no talent can be planned for" not in line, line  # the planner's words
                if lang == "zh-CN":
                    assert zh in line and not re.search(r"[a-z]{3,} [a-z]{3,}", line), line


def test_a_channel_at_its_share_says_so(tiny_features: MarketFeatures, tiny: FactInputs) -> None:
    """Budget left while a step worth buying fits it: its channel is at its share."""
    f = tiny_features
    shares = dict.fromkeys(CHANNELS, 0.05)
    said = []
    for merchant in _eligible_merchants(f):
        s = _split(f, tiny, merchant, 1e6, shares=shares)
        for c in s.channels:  # type: ignore[attr-defined]
            assert c.spend <= 1e6 * 0.05 + 1e-6, (merchant, c.channel)
        if any("channels at their share of the budget" in r for r in s.reasons):  # type: ignore[attr-defined]
            (reason,) = s.reasons  # type: ignore[attr-defined]
            cheapest = float(re.search(r"the cheapest ¥([\d,.]+)", reason)[1].replace(",", ""))  # type: ignore[index]
            assert cheapest <= s.unspent, reason  # type: ignore[attr-defined]
            said.append(merchant)
    assert said
