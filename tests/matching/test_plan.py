"""Talent matrix plans: valid by an independent check, explained, stable; GMV or target reach;
within the merchant's max_talents, above a return floor, saying why budget is left."""

from __future__ import annotations

import csv
import itertools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from kolmatch.cli import main
from kolmatch.engine.cache import features_of
from kolmatch.errors import BadArgument, InfeasiblePlan, UnknownId
from kolmatch.graph.model import tier_of
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from kolmatch.matching.availability import availability, planning_window
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.fees import DEFAULT_FEE_PER_FOLLOWER, merchant_prices
from kolmatch.matching.plan import (
    DEFAULT_MIN_ROI,
    TIE_BREAK,
    TIERS,
    TalentMatrixPlan,
    TierRule,
    _best_by_followers,
    _by_followers,
    _ordered_by_marginal_reach,
    _reach,
    _target_users,
    _tie_order,
    follower_count_plan,
    pair_overlaps,
    parse_tiers,
    plan_talent_matrix,
    talent_tiers,
    target_audience,
    unique_target_reach,
)
from kolmatch.matching.validate import plan_violations


def _rules(tiers: dict[str, TierRule]) -> dict[str, tuple[int, int | None, float | None]]:
    return {k: (r.min_count, r.max_count, r.max_budget_share) for k, r in tiers.items()}


def _rows(f: MarketFeatures, ids: list[str]) -> np.ndarray:
    return np.array([f.talent_row(t) for t in ids], dtype=np.int64)


@pytest.mark.parametrize("merchant", ["m0", "m7", "m42", "m150"])
def test_plans_pass_the_independent_validator(s_features: MarketFeatures, merchant: str) -> None:
    f = s_features
    budget = float(f.merchant_budget[f.merchant_row(merchant)])
    plan = plan_talent_matrix(f, merchant, budget=budget)
    ids = [t.talent for t in plan.talents]
    assert ids, "a merchant with a budget should get a plan"
    assert plan_violations(f, merchant, ids, budget=budget) == []
    # priced at list prices (what the merchant sees), never the private negotiated fees
    assert plan.cost == pytest.approx(sum(f.talent_list_price[f.talent_row(t)] for t in ids))
    assert plan.unspent == pytest.approx(budget - plan.cost)
    assert len(ids) <= f.merchant_max_talents[f.merchant_row(merchant)] == plan.max_talents
    assert plan.min_roi == DEFAULT_MIN_ROI and all(t.roi >= DEFAULT_MIN_ROI for t in plan.talents)
    assert plan.reproducible and plan.stopped != "time limit"
    assert plan.gap <= 0.01
    assert plan.bound >= plan.objective
    # marginal reach is listed greedily: never increasing down the list
    marg = [t.marginal_reach for t in plan.talents]
    assert marg == sorted(marg, reverse=True)
    assert plan.unique_reach == pytest.approx(sum(marg), abs=len(marg))


def test_tier_mix_is_met_and_checked(s_features: MarketFeatures) -> None:
    f = s_features
    tiers = parse_tiers("top=1,mid=2..4,micro=20%")
    plan = plan_talent_matrix(f, "m3", budget=600_000, tiers=tiers)
    got = [t.tier for t in plan.talents]
    assert got.count("top") == 1 and 2 <= got.count("mid") <= 4
    micro_fees = sum(t.fee for t in plan.talents if t.tier == "micro")
    assert micro_fees <= 0.2 * 600_000
    ids = [t.talent for t in plan.talents]
    assert plan_violations(f, "m3", ids, budget=600_000, tiers=_rules(tiers)) == []
    # and the validator does catch a broken mix
    assert plan_violations(f, "m3", ids, budget=600_000, tiers={"top": (2, 2, None)}) != []


def test_plan_beats_follower_count_on_reach(s_features: MarketFeatures) -> None:
    f = s_features
    plan_reach, naive_reach = [], []
    for m in ["m1", "m5", "m9", "m20", "m33", "m60"]:
        budget = float(f.merchant_budget[f.merchant_row(m)])
        plan = plan_talent_matrix(f, m, budget=budget, min_roi=0)
        plan_reach.append(unique_target_reach(f, m, _rows(f, [t.talent for t in plan.talents])))
        naive_reach.append(unique_target_reach(f, m, follower_count_plan(f, m, budget=budget)))
    assert sum(plan_reach) >= 1.2 * sum(naive_reach)


def test_same_inputs_and_seed_give_the_same_plan(s_features: MarketFeatures) -> None:
    a = plan_talent_matrix(s_features, "m11", budget=150_000, seed=3)
    b = plan_talent_matrix(s_features, "m11", budget=150_000, seed=3)
    assert a.talents == b.talents and a.objective == b.objective


def test_campaign_window_excludes_booked_talents(s_features: MarketFeatures) -> None:
    f = s_features
    # a merchant with a campaign in which some talent is booked by one of its competitors
    for m in range(len(f.merchant_ids)):
        for g in f.merchant_campaigns[m].indices:
            cid = str(f.campaign_ids[g])
            av = availability(f, m, planning_window(f, cid, m))
            if av.competitor_booked.any():
                plan = plan_talent_matrix(f, str(f.merchant_ids[m]), budget=300_000, campaign=cid)
                chosen = _rows(f, [t.talent for t in plan.talents])
                assert not av.competitor_booked[chosen].any()
                assert (av.free_slots[chosen] > 0).all()
                assert plan.left_out["booked by a competitor"] == int(
                    (av.competitor_booked & (av.free_slots > 0) & (f.talent_risk < 1)).sum()
                )
                assert plan.window.startswith(f"campaign {cid}")
                return
    pytest.fail("the s market should have a campaign with a competitor booking")


def test_campaign_the_merchant_did_not_join(s_features: MarketFeatures) -> None:
    f = s_features
    m = next(i for i in range(len(f.merchant_ids)) if f.merchant_campaigns[i].nnz < 9)
    g = next(g for g in range(len(f.campaign_ids)) if f.merchant_campaigns[m, g] == 0)
    with pytest.raises(BadArgument, match="has not joined campaign"):
        plan_talent_matrix(f, str(f.merchant_ids[m]), budget=1e5, campaign=str(f.campaign_ids[g]))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"budget": 10.0}, InfeasiblePlan, "fee over the budget"),
        ({"budget": -5.0}, BadArgument, "argument --budget: must be a positive"),
        ({"budget": 5e4, "tiers": {"top": TierRule(1, 1)}}, InfeasiblePlan, "tier top"),
        ({"budget": 1e9, "tiers": {"top": TierRule(9_999, 9_999)}}, InfeasiblePlan, "ask for 9999"),
        # fewer than six top talents return 1.0x for m2: the message says the floor left
        # the others out
        (
            {"budget": 1e9, "tiers": {"top": TierRule(6, 6)}},
            InfeasiblePlan,
            r"only [1-5] candidate.*[\d,]+ return below 1\.0x",
        ),
        ({"budget": 1e5, "campaign": "cp-nope"}, UnknownId, "unknown Campaign id 'cp-nope'"),
    ],
)
def test_edge_cases_say_why(
    s_features: MarketFeatures, kwargs: dict[str, object], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        plan_talent_matrix(s_features, "m2", **kwargs)  # type: ignore[arg-type]


def test_unknown_merchant(s_features: MarketFeatures) -> None:
    with pytest.raises(UnknownId, match="unknown Merchant id 'nobody'"):
        plan_talent_matrix(s_features, "nobody", budget=1e5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("top=one", "cannot read 'top=one'"),
        ("giant=1", "unknown tier 'giant'"),
        ("mid=5..2", "empty range"),
        ("micro=150%", "a share must be in"),
    ],
)
def test_bad_tier_text_names_the_part(text: str, message: str) -> None:
    with pytest.raises(BadArgument, match=message):
        parse_tiers(text)


def test_tiers_follow_follower_thresholds(s_features: MarketFeatures) -> None:
    tiers = talent_tiers(s_features)
    followers = s_features.talent_followers
    assert (followers[tiers == TIERS.index("top")] >= 1_000_000).all()
    assert (followers[tiers == TIERS.index("micro")] < 100_000).all()


def test_the_validator_catches_what_a_plan_must_not_do(s_features: MarketFeatures) -> None:
    f = s_features
    excluded = str(f.talent_ids[np.argmax(f.talent_risk >= 1.0)])
    pricey = str(f.talent_ids[np.nanargmax(f.talent_fee)])
    problems = plan_violations(f, "m0", [excluded, pricey, pricey], budget=1_000.0)
    text = " | ".join(problems)
    assert "a talent is chosen twice" in text
    assert f"{excluded} is excluded for compliance" in text
    assert "exceed the budget 1,000" in text


# -- planning with no history: a market of follows and purchases, written here by hand -------


def _write(folder: Path, name: str, header: list[str], rows: list[list[object]]) -> None:
    with (folder / f"{name}.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


#: id: (followers, list price or None, users u<k> in its audience). Ids run against the answer:
#: in id order t0 (games, over the budget) and t1 (games) come first.
FOLLOW_TALENTS: dict[str, tuple[int, float | None, range]] = {
    "t0": (3_000_000, 30_000.0, range(30, 60)),  # games star
    "t1": (400_000, 8_000.0, range(30, 45)),  # games
    "t2": (200_000, 10_000.0, range(0, 15)),  # beauty: all ten customers, five more
    "t3": (150_000, None, range(5, 20)),  # beauty, no fee on record
    "t4": (50_000, 5_000.0, range(20, 25)),  # beauty twins: same audience and fee ...
    "t5": (90_000, 5_000.0, range(20, 25)),  # ... more followers
}


def write_follow_market(folder: Path, *, fees: bool = True, history: bool = False) -> Path:
    """Sixty users, six talents (:data:`FOLLOW_TALENTS`), merchants m-beauty (customers
    u00..u09), m-cream (beauty too: u15..u24 bought there) and m-games (u30..u49); follows
    and purchases only, plus past collaborations with outcomes if ``history``. A talent's
    list price and negotiated fee are the same here."""
    folder.mkdir(parents=True)
    _write(folder, "user", ["id"], [[f"u{u:02d}"] for u in range(60)])
    _write(
        folder,
        "talent",
        ["id", "name", "followers", "fee", "list_price"],
        [
            [t, t.upper(), n, *([fee if fees and fee else ""] * 2)]
            for t, (n, fee, _) in FOLLOW_TALENTS.items()
        ],
    )
    _write(
        folder,
        "follows",
        ["src", "dst"],
        [[f"u{u:02d}", t] for t, (_, _, us) in FOLLOW_TALENTS.items() for u in us],
    )
    _write(folder, "category", ["id", "name"], [["beauty", "Beauty"], ["games", "Games"]])
    products = {"p-lip": "beauty", "p-cream": "beauty", "p-game": "games"}
    _write(folder, "product", ["id", "name", "price"], [[p, p, 100.0] for p in products])
    _write(folder, "in_category", ["src", "dst"], [[p, c] for p, c in products.items()])
    _write(folder, "merchant", ["id", "name"], [[m, m] for m in ("m-beauty", "m-cream", "m-games")])
    _write(
        folder,
        "sells",
        ["src", "dst"],
        [["m-beauty", "p-lip"], ["m-cream", "p-cream"], ["m-games", "p-game"]],
    )
    buys = [(u, "p-lip") for u in range(10)] + [(u, "p-cream") for u in range(15, 25)]
    buys += [(u, "p-game") for u in range(30, 50)]
    _write(
        folder,
        "purchased",
        ["src", "dst", "order_id", "amount", "time"],
        [[f"u{u:02d}", p, f"o{k}", 100.0, "2025-03-01"] for k, (u, p) in enumerate(buys)],
    )
    if history:
        _write(
            folder,
            "promoted",
            ["src", "dst", "collab_id", "gmv", "orders", "fee", "time"],
            [
                ["t2", "p-lip", "k1", 3_000.0, 30, 10_000.0, "2025-02-01"],
                ["t3", "p-cream", "k2", 1_000.0, 10, 7_000.0, "2025-02-01"],
                ["t0", "p-game", "k3", 9_000.0, 90, 30_000.0, "2025-02-01"],
            ],
        )
    return folder


def _load(folder: Path) -> MarketFeatures:
    store = SQLiteStore(folder.with_suffix(".db"))
    try:
        load_folder(folder, store)
        return features_of(store)
    finally:
        store.close()


@pytest.fixture(scope="module")
def follow_market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_follow_market(tmp_path_factory.mktemp("plan") / "follows")


@pytest.fixture(scope="module")
def follow_features(follow_market: Path) -> MarketFeatures:
    return _load(follow_market)


def _best_reach(f: MarketFeatures, merchant: str, budget: float, fees: np.ndarray) -> int:
    """Brute force: the most target users any affordable set of talents reaches."""
    target = target_audience(f, f.merchant_row(merchant)).users
    best = 0
    for k in range(1, f.n_talents + 1):
        for ts in itertools.combinations(range(f.n_talents), k):
            if fees[list(ts)].sum() <= budget:
                reached = np.asarray(f.audience[list(ts)].sum(axis=0)).ravel() > 0
                best = max(best, int(reached[target].sum()))
    return best


def test_no_history_plans_optimise_target_reach(follow_features: MarketFeatures) -> None:
    f = follow_features
    assert f.gmv_rate == 0.0
    plan = plan_talent_matrix(f, "m-beauty", budget=25_000)
    ids = [t.talent for t in plan.talents]
    assert plan.objective_kind == "target_reach" and "gmv_rate 0" in plan.objective_note
    assert plan.objective > 0 and plan.gap <= 0.01 and plan.bound >= plan.objective
    # the talents that reach the beauty customers, not the games talents id order offers first
    assert "t2" in ids and not {"t0", "t1"} & set(ids)
    chosen = _rows(f, ids)
    reached = np.asarray(f.audience[chosen].sum(axis=0)).ravel() > 0
    assert reached[f.merchant_buyers[f.merchant_row("m-beauty")].indices].all()
    fees = merchant_prices(f).fee
    assert plan.objective == pytest.approx(_best_reach(f, "m-beauty", 25_000, fees))
    assert plan.unique_reach == plan.objective and plan.target_users == len(
        target_audience(f, f.merchant_row("m-beauty")).users
    )
    fee_of = {t.talent: t.fee for t in plan.talents}
    assert plan_violations(f, "m-beauty", ids, budget=25_000, fees=fee_of) == []


def test_the_target_audience_is_customers_and_lookalikes(follow_features: MarketFeatures) -> None:
    f = follow_features
    aud = target_audience(f, f.merchant_row("m-beauty"))
    users = {str(f.user_ids[u]) for u in aud.users}
    assert {f"u{u:02d}" for u in range(25)} <= users  # customers, beauty buyers elsewhere ...
    assert not {f"u{u:02d}" for u in range(30, 60)} & users  # ... never the games audience
    assert (aud.customers, aud.category_buyers) == (10, 10)
    assert aud.customers + aud.category_buyers + aud.interested + aud.lookalikes == len(aud.users)


def test_ties_go_to_more_followers_and_are_counted(follow_features: MarketFeatures) -> None:
    # t4 and t5 reach the same users for the same fee; t5 has more followers (and the later id)
    plan = plan_talent_matrix(follow_features, "m-beauty", budget=25_000)
    ids = [t.talent for t in plan.talents]
    assert "t5" in ids and "t4" not in ids
    assert plan.ties >= 1 and plan.tie_break == TIE_BREAK


def test_missing_fees_are_estimated_and_flagged(follow_features: MarketFeatures) -> None:
    f = follow_features
    plan = plan_talent_matrix(f, "m-beauty", budget=25_000)
    by_id = {t.talent: t for t in plan.talents}
    # median list price per follower of t0, t1, t2, t4, t5: 0.05 (t2); t3 has 150,000 followers
    assert by_id["t3"].fee_estimated and by_id["t3"].fee == pytest.approx(7_500)
    assert not any(t.fee_estimated for t in plan.talents if t.talent != "t3")
    assert plan.estimated_fees == 1 and "median list price per follower" in plan.fee_note
    assert plan.cost == pytest.approx(sum(t.fee for t in plan.talents))
    without = plan_talent_matrix(f, "m-beauty", budget=25_000, estimate_fees=False)
    assert without.left_out["no list price"] == 1 and without.estimated_fees == 0
    assert "t3" not in [t.talent for t in without.talents]


def test_a_market_without_any_fee_is_priced_per_follower(tmp_path: Path) -> None:
    f = _load(write_follow_market(tmp_path / "nofees", fees=False))
    plan = plan_talent_matrix(f, "m-beauty", budget=25_000)
    assert plan.talents and plan.estimated_fees == len(plan.talents)
    for t in plan.talents:
        followers = FOLLOW_TALENTS[t.talent][0]
        assert t.fee_estimated and t.fee == pytest.approx(DEFAULT_FEE_PER_FOLLOWER * followers)
    assert "DEFAULT_FEE_PER_FOLLOWER" in plan.fee_note
    assert plan.objective_kind == "target_reach" and plan.objective > 0


def test_with_history_the_plan_still_optimises_gmv(tmp_path: Path) -> None:
    f = _load(write_follow_market(tmp_path / "history", history=True))
    assert f.gmv_rate > 0
    # GMV can be estimated, so the default floor applies: no talent here returns its price
    with pytest.raises(InfeasiblePlan, match=r"returns at least 1\.0x its cost.*the best, t\d"):
        plan_talent_matrix(f, "m-beauty", budget=25_000)
    plan = plan_talent_matrix(f, "m-beauty", budget=25_000, min_roi=0)
    assert plan.min_roi is None and plan.roi is not None
    assert plan.objective_kind == "gmv" and plan.expected_gmv > 0 and plan.reach_value > 0
    # today's objective: expected GMV + reach_value x the weighted target users reached
    target, weight = _target_users(f, f.merchant_row("m-beauty"))
    reached = np.asarray(f.audience[_rows(f, [t.talent for t in plan.talents])].sum(0)).ravel()
    reach = float(weight[reached[target] > 0].sum())
    assert plan.objective == pytest.approx(plan.expected_gmv + plan.reach_value * reach)
    assert plan.gap <= 0.01


def test_s_market_plans_say_they_optimise_gmv(s_features: MarketFeatures) -> None:
    plan = plan_talent_matrix(s_features, "m0", budget=200_000)
    assert plan.objective_kind == "gmv" and plan.estimated_fees == 0 and plan.fee_note == ""
    assert not any(t.fee_estimated for t in plan.talents)


def test_cli_says_what_was_optimised_and_marks_estimates(
    follow_market: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["load", str(follow_market), "--store", store]) == 0
    capsys.readouterr()
    assert main(["plan", "m-beauty", "--budget", "25000", "--store", store]) == 0
    text = capsys.readouterr().out
    assert "optimised: target_reach = unique target users reached" in text
    assert "t3" in text and "7,500*" in text and "* 1 estimated quote (" in text
    assert main(["plan", "m-beauty", "--budget", "25000", "--json", "--store", store]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["objective_kind"] == "target_reach" and got["estimated_fees"] == 1
    assert {t["talent"]: t["fee_estimated"] for t in got["talents"]}["t3"] is True
    assert got["min_roi"] is None and got["roi"] is None and got["reproducible"] is True
    assert got["unspent"] == 2_500 and got["unspent_note"].startswith("¥2,500 unspent: ")
    # a return floor on a plan that estimates no return: refused, saying why (exit 2)
    assert main(["plan", "m-beauty", "--budget", "25000", "--min-roi", "1", "--store", store]) == 2
    assert "--min-roi" in capsys.readouterr().err


def test_cli_plans_state_roi_floor_max_talents_and_unspent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'history.db'}"
    assert (
        main(["load", str(write_follow_market(tmp_path / "h", history=True)), "--store", store])
        == 0
    )
    capsys.readouterr()
    assert main(["plan", "m-beauty", "--budget", "25000", "--store", store]) == 2  # infeasible
    assert "returns at least 1.0x its cost" in capsys.readouterr().err
    args = ["plan", "m-beauty", "--budget", "100000", "--min-roi", "0", "--store", store]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "ROI" in text and "net of 0% commission" in text and "no floor" in text
    assert "¥" in text and " unspent: " in text
    assert main([*args, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["min_roi"] is None and all(t["roi"] is not None for t in got["talents"])


# -- money: max_talents, the return floor, ROI net of commission, what is left and why ---------


def _no_max_talents(f: MarketFeatures) -> MarketFeatures:
    return replace(f, merchant_max_talents=np.full(len(f.merchant_ids), np.nan))


def _independent_roi(f: MarketFeatures, merchant: str) -> np.ndarray:
    """Every talent's expected return for the merchant, net of commission, from the signals."""
    from kolmatch.matching.score import merchant_signals

    m = f.merchant_row(merchant)
    sig = merchant_signals(f, m)
    gmv = sig.expected_gmv * (1 - f.talent_risk)
    rate = float(f.merchant_commission[m])
    price = merchant_prices(f).fee
    return np.asarray(gmv / (price + rate * gmv))


def test_max_talents_caps_the_plan_and_says_so(s_features: MarketFeatures) -> None:
    f = s_features
    most = int(f.merchant_max_talents[f.merchant_row("m2")])
    plan = plan_talent_matrix(f, "m2", budget=1e8)
    assert len(plan.talents) == most == plan.max_talents
    assert plan.unspent == pytest.approx(1e8 - plan.cost)
    assert plan.unspent_note == f"¥{plan.unspent:,.0f} unspent: max_talents {most} reached"
    assert list(plan.unspent_reasons) == [f"max_talents {most} reached"]
    ids = [t.talent for t in plan.talents]
    assert plan_violations(f, "m2", ids, budget=1e8) == []
    assert "max_talents" in " ".join(plan_violations(f, "m2", [*ids, "t1", "t2"], budget=1e8))


def test_without_max_talents_no_talent_below_the_floor_is_bought(
    s_features: MarketFeatures,
) -> None:
    """The issue's finding: a huge budget bought 151 talents, 120 returning less than their fee.
    Now every talent returning at least 1.0x that is free is bought, and nothing else."""
    f = _no_max_talents(s_features)
    plan = plan_talent_matrix(f, "m2", budget=1e8)
    assert plan.max_talents is None and plan.min_roi == 1.0
    roi = _independent_roi(f, "m2")
    m = f.merchant_row("m2")
    av = availability(f, m, planning_window(f, None, m))
    free = (f.talent_risk < 1) & av.available
    ids = {t.talent for t in plan.talents}
    assert ids == {str(f.talent_ids[t]) for t in np.nonzero(free & (roi >= 1.0))[0]}
    for t in plan.talents:
        assert t.roi == pytest.approx(roi[f.talent_row(t.talent)], abs=1e-4) and t.roi >= 1.0
    assert plan.unspent_note == (
        f"¥{plan.unspent:,.0f} unspent: no further talent returns at least 1.0x"
    )
    assert plan.left_out["return below 1.0x"] == int((free & (roi < 1.0)).sum())


@pytest.mark.parametrize("floor", [1.5, 2.5])
def test_a_stated_floor_is_met_by_every_talent(s_features: MarketFeatures, floor: float) -> None:
    f = _no_max_talents(s_features)
    plan = plan_talent_matrix(f, "m7", budget=2e6, min_roi=floor)
    assert plan.min_roi == floor and plan.talents
    assert min(t.roi for t in plan.talents if t.roi is not None) >= floor - 1e-4
    assert plan.left_out[f"return below {floor}x"] > 0


def test_roi_is_net_of_the_merchants_commission(s_features: MarketFeatures) -> None:
    f = s_features
    plan = plan_talent_matrix(f, "m7", budget=2e6)
    rate = float(f.merchant_commission[f.merchant_row("m7")])
    assert 0 < rate < 1 and plan.commission_rate == pytest.approx(rate)
    for t in plan.talents:
        assert t.commission == pytest.approx(rate * t.expected_gmv, abs=0.01)
        assert t.roi == pytest.approx(t.expected_gmv / (t.fee + t.commission), rel=1e-3)
    assert plan.commission == pytest.approx(rate * plan.expected_gmv)
    assert plan.roi == pytest.approx(plan.expected_gmv / (plan.cost + plan.commission))


def test_no_floor_buys_what_the_floor_would_not(s_features: MarketFeatures) -> None:
    plan = plan_talent_matrix(s_features, "m7", budget=5e5, min_roi=0)
    assert plan.min_roi is None and not any(k.startswith("return below") for k in plan.left_out)
    assert any(t.roi is not None and t.roi < 1.0 for t in plan.talents)


@pytest.mark.parametrize(
    ("min_roi", "message"),
    [(-1.0, "must be a return of 0 or more"), (float("nan"), "must be a return of 0 or more")],
)
def test_a_bad_floor_is_refused(s_features: MarketFeatures, min_roi: float, message: str) -> None:
    with pytest.raises(BadArgument, match=f"argument --min-roi: {message}"):
        plan_talent_matrix(s_features, "m2", budget=1e5, min_roi=min_roi)


def test_reach_plans_have_no_floor_and_refuse_one(follow_features: MarketFeatures) -> None:
    f = follow_features
    plan = plan_talent_matrix(f, "m-beauty", budget=25_000)
    assert plan.objective_kind == "target_reach" and plan.min_roi is None and plan.roi is None
    assert all(t.roi is None and t.commission == 0 for t in plan.talents)
    assert plan_talent_matrix(f, "m-beauty", budget=25_000, min_roi=0).talents == plan.talents
    with pytest.raises(BadArgument, match="optimises target reach"):
        plan_talent_matrix(f, "m-beauty", budget=25_000, min_roi=1.0)


def test_unspent_budget_is_explained(follow_features: MarketFeatures) -> None:
    f = follow_features
    # t2 + t3 + t5 reach every beauty target user for 22,500; what is left buys nothing new
    plan = plan_talent_matrix(f, "m-beauty", budget=100_000)
    assert {t.talent for t in plan.talents} == {"t2", "t3", "t5"}  # t5 over its twin t4
    assert plan.unspent == 77_500 and plan.unspent_note == (
        "¥77,500 unspent: no further talent adds expected GMV or a new target user"
    )
    assert plan.unspent_reasons == {"add nothing (no expected GMV, no new target user)": 3}
    small = plan_talent_matrix(f, "m-beauty", budget=25_000)
    assert small.unspent_note == (
        "¥2,500 unspent: no further eligible talent costs ¥2,500 or less; the cheapest left "
        "costs ¥5,000"
    )


# -- the listing order: a lazy greedy equal to the plain (quadratic) one ----------------------


def _plain_listing(f: MarketFeatures, picked: np.ndarray, reach: sp.csr_matrix) -> tuple:
    """The listing as it was: every gain recounted for every talent left at every step."""
    covered = np.zeros(reach.shape[1], dtype=bool)
    left = [int(i) for i in _tie_order(f, picked)]
    out, ties = [], 0
    while left:
        gains = [int((~covered[reach[i].indices]).sum()) for i in left]
        k = int(np.argmax(gains))
        ties += int(gains.count(gains[k]) > 1)
        i = left.pop(k)
        covered[reach[i].indices] = True
        out.append((str(f.talent_ids[picked[i]]), gains[k]))
    return out, ties


@pytest.mark.parametrize("seed", range(8))
def test_the_lazy_listing_equals_the_plain_greedy(s_features: MarketFeatures, seed: int) -> None:
    f = s_features
    rng = np.random.default_rng(seed)
    n, users = int(rng.integers(1, 60)), int(rng.integers(1, 40))  # few users: many ties
    picked = rng.choice(f.n_talents, n, replace=False).astype(np.int64)
    reach = sp.csr_matrix(rng.random((n, users)) < rng.uniform(0.0, 0.5))
    fee = np.ones(f.n_talents)
    listed, ties = _ordered_by_marginal_reach(
        f, picked, reach, 1.0, np.zeros(n), fee, np.zeros(f.n_talents, dtype=bool), None
    )
    assert ([(t.talent, t.marginal_reach) for t in listed], ties) == _plain_listing(
        f, picked, reach
    )


def test_listing_thousands_of_talents_is_not_quadratic(s_features: MarketFeatures) -> None:
    import time

    f = s_features
    rng = np.random.default_rng(0)
    picked = np.arange(f.n_talents, dtype=np.int64)
    reach = sp.csr_matrix(rng.random((f.n_talents, 20_000)) < 0.01)
    t0 = time.perf_counter()
    listed, _ = _ordered_by_marginal_reach(
        f,
        picked,
        reach,
        1.0,
        np.zeros(f.n_talents),
        np.ones(f.n_talents),
        np.zeros(f.n_talents, dtype=bool),
        None,
    )
    # the plain greedy took minutes here (issue 18: 10.4 s of 11.3 s at a budget of 1e7)
    assert len(listed) == f.n_talents and time.perf_counter() - t0 < 10
    assert [t.marginal_reach for t in listed] == sorted(
        (t.marginal_reach for t in listed), reverse=True
    )


def test_overlaps_are_every_overlapping_pair_most_first(s_features: MarketFeatures) -> None:
    from kolmatch.matching.audience import pair_overlaps as every_pair

    f = s_features
    picked = np.arange(0, 400, 3, dtype=np.int64)
    want = {
        (str(f.talent_ids[a]), str(f.talent_ids[b])): o
        for a, b, o in every_pair(f.audience, picked)
    }
    got = pair_overlaps(f, picked)
    assert len(got) == len(want) > 100
    for o in got:
        w = want[(o.a, o.b)]
        assert o.shared == w.shared
        assert (o.share_of_smaller, o.jaccard) == pytest.approx(
            (w.share_of_smaller, w.jaccard), abs=1e-4
        )
    assert [(-o.share_of_smaller, o.a, o.b) for o in got] == sorted(
        (-o.share_of_smaller, o.a, o.b) for o in got
    )
    assert pair_overlaps(f, picked, top=100) == got[:100]


def test_a_tier_given_twice_the_same_way_is_refused() -> None:
    with pytest.raises(BadArgument, match="twice"):
        parse_tiers("top=1,top=2")
    with pytest.raises(BadArgument, match="twice"):
        parse_tiers("micro=10%,micro=20%")
    both = parse_tiers("top=1,top=30%")  # a count and a share combine
    assert both["top"].max_count == 1 and both["top"].max_budget_share == 0.3


def test_tiers_are_tier_of_the_follower_count(s_features: MarketFeatures) -> None:
    followers = np.nan_to_num(s_features.talent_followers, nan=0.0)
    followers = np.concatenate([followers, [99_999.0, 100_000, 999_999.5, 1_000_000, np.nan]])
    f = replace(s_features, talent_followers=followers)
    expect = [TIERS.index(tier_of(int(x))) for x in np.nan_to_num(followers, nan=0.0)]
    assert talent_tiers(f).tolist() == expect


def test_reach_is_the_audience_restricted_to_the_sampled_users(s_features: MarketFeatures) -> None:
    rng = np.random.default_rng(3)
    users = np.sort(rng.choice(s_features.users, 2_000, replace=False))
    got = _reach(s_features, users)
    want = sp.csr_matrix(s_features.audience[:, users])
    want.eliminate_zeros()
    assert got.shape == want.shape and got.nnz == want.nnz > 0
    assert (got != (want != 0)).nnz == 0 and set(got.data.tolist()) == {1.0}


# -- the plan's reads of the market: each the same as the whole-array expression it replaced --


def _whole_products(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the plan read interest and purchases as it did: every row, ``a @ cats``."""
    monkeypatch.setattr(
        "kolmatch.matching.plan.few_columns_product", lambda a, w: np.asarray(a @ w).ravel()
    )


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_target_users_read_by_category_are_the_whole_products_to_the_bit(
    s_features: MarketFeatures, follow_features: MarketFeatures, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = s_features
    named = (f.merchant_mix > 0).sum(axis=1)
    merchants = [int(np.argmax(named == k)) for k in sorted(set(named.tolist()))]
    assert max(named[merchants]) >= 2, "a merchant with several categories should be checked"
    new = [_target_users(f, m) for m in merchants]
    aud = [target_audience(g, m) for g in (f, follow_features) for m in (0, 1)]
    _whole_products(monkeypatch)
    for m, (target, weight) in zip(merchants, new, strict=True):
        old_target, old_weight = _target_users(f, m)
        assert _same_bits(target, old_target) and _same_bits(weight, old_weight), m
    for a, (g, m) in zip(aud, itertools.product((f, follow_features), (0, 1)), strict=True):
        b = target_audience(g, m)
        assert _same_bits(a.users, b.users) and replace(a, users=b.users) == b


def _full_cut(f: MarketFeatures, rows: np.ndarray, key: np.ndarray, n: int) -> np.ndarray:
    return _by_followers(f, rows, key)[: max(n, 0)]


def test_the_candidate_cut_is_the_full_sort_s_head(s_features: MarketFeatures) -> None:
    """Ties across the cut, NaN and infinite keys, cuts of 0, 1, all and more than all."""
    f = s_features
    rng = np.random.default_rng(7)
    for trial in range(20):
        rows = np.sort(rng.choice(f.n_talents, int(rng.integers(1, f.n_talents)), replace=False))
        key = rng.integers(0, 5, len(rows)).astype(float)  # many ties, also at the cut
        key[rng.random(len(rows)) < 0.1] = -np.inf
        if trial % 2:
            key[rng.random(len(rows)) < 0.3] = np.nan
        for n in (0, 1, 7, len(rows) // 3, len(rows) - 1, len(rows), len(rows) + 5):
            got = _best_by_followers(f, rows.astype(np.int64), key, n)
            assert got.tolist() == _full_cut(f, rows, key, n).tolist(), (trial, n)


def test_tie_order_is_followers_then_id(s_features: MarketFeatures) -> None:
    f = s_features
    rng = np.random.default_rng(5)
    rows = rng.choice(f.n_talents, 300, replace=False).astype(np.int64)
    key = rng.integers(0, 3, 300).astype(float)
    followers = np.nan_to_num(f.talent_followers[rows], nan=0.0)
    for keys in ((), (key,), (key, rng.random(300))):
        want = np.lexsort((f.talent_ids[rows], -followers, *(-k for k in reversed(keys))))
        assert _tie_order(f, rows, *keys).tolist() == want.tolist()


@pytest.mark.parametrize("tiers", [None, "top=1,mid=2..6", "micro=3"])
def test_plans_are_those_of_the_whole_products_and_sorts(
    s_features: MarketFeatures,
    follow_features: MarketFeatures,
    monkeypatch: pytest.MonkeyPatch,
    tiers: str | None,
) -> None:
    """Plans, GMV and target reach, with and without tier minimums (the cut per tier), are
    those of ``a @ cats`` and of full sorts cut after the sort."""
    rules = parse_tiers(tiers)
    cases = [(s_features, "m7", 400_000.0, 100), (follow_features, "m-beauty", 25_000.0, 4)]

    def plans() -> list[object]:
        out: list[object] = []
        for g, m, b, c in cases:
            try:
                plan = plan_talent_matrix(g, m, budget=b, tiers=rules, candidates=c, min_roi=0.0)
                out.append(replace(plan, seconds=0.0))
            except InfeasiblePlan as exc:  # a tier mix the small market cannot meet
                out.append(str(exc))
        return out

    new = plans()
    cut = new[0]
    assert isinstance(cut, TalentMatrixPlan), cut
    assert "below the candidate cut" in cut.left_out, (cut.left_out, cut.candidates)
    _whole_products(monkeypatch)
    monkeypatch.setattr("kolmatch.matching.plan._best_by_followers", _full_cut)
    assert plans() == new
