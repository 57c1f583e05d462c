"""Compliance eligibility: one rule for talents, merchants, products and agencies, everywhere."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kolmatch.api.errors import code_of
from kolmatch.engine.cache import features_of
from kolmatch.errors import NotEligible, UnknownId
from kolmatch.graph.market import COMPLIANCE_READ, read_market
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.graph.store import NodeBatch, RelBatch
from kolmatch.loaders.load import load_folder
from kolmatch.matching.audience import similar_talents
from kolmatch.matching.eligibility import (
    AGENCY_FLAG_MIN,
    AGENCY_FLAG_SHARE,
    AGENCY_PENALTY,
    FAKE_ENGAGEMENT_DISCOUNT,
    agency_eligibility,
    agency_flagged,
    eligible_products,
    excludes,
    is_fake_engagement,
    merchant_eligibility,
    product_eligibility,
    require_merchant,
    talent_eligibility,
)
from kolmatch.matching.features import MarketFeatures, refresh_risk
from kolmatch.matching.plan import plan_talent_matrix
from kolmatch.matching.score import match_merchant, merchant_signals, rank_merchants

#: Every field violations reach: a compliance refresh must equal a full build on all of them.
COMPLIANCE_FIELDS = (
    "talent_risk",
    "talent_risk_notes",
    "merchant_risk",
    "merchant_risk_notes",
    "product_risk",
    "product_risk_notes",
    "talent_active_share",
    "talent_active_share_measured",
)


def exclude_merchant(
    f: MarketFeatures,
    m: int,
    note: str = "severe unresolved counterfeit violation x-c (2026-01-01)",
) -> MarketFeatures:
    """``f`` with merchant row ``m`` excluded for compliance (as a counterfeit store)."""
    risk = f.merchant_risk.copy()
    risk[m] = 1.0
    notes = [list(n) for n in f.merchant_risk_notes]
    notes[m] = [note]
    return replace(f, merchant_risk=risk, merchant_risk_notes=notes)


def exclude_talent(f: MarketFeatures, t: int) -> MarketFeatures:
    risk = f.talent_risk.copy()
    risk[t] = 1.0
    return replace(f, talent_risk=risk)


# -- the rule itself ----------------------------------------------------------------------


def test_severe_or_unresolved_excludes() -> None:
    severity = np.array(["minor", "major", "severe", "severe", "minor", None], dtype=object)
    resolved = np.array([True, True, True, False, False, True])
    assert excludes(severity, resolved).tolist() == [False, False, True, True, True, False]


@pytest.mark.parametrize(
    ("kind", "fake"),
    [
        ("fake-engagement", True),
        ("Fake followers", True),
        ("fake_likes", True),
        ("bought followers", True),
        ("fake reviews", False),
        ("counterfeit", False),
        ("", False),
        (None, False),
    ],
)
def test_fake_engagement_kinds(kind: str | None, fake: bool) -> None:
    assert is_fake_engagement(np.array([kind], dtype=object)).tolist() == [fake]


def test_an_agency_is_flagged_at_the_share_and_the_count() -> None:
    share = np.array([AGENCY_FLAG_SHARE, AGENCY_FLAG_SHARE - 1e-9, 1.0, 0.5])
    bad = np.array([AGENCY_FLAG_MIN, 10, AGENCY_FLAG_MIN - 1, AGENCY_FLAG_MIN])
    assert agency_flagged(share, bad).tolist() == [True, False, False, True]


def test_the_talent_rule_is_the_one_scoring_excludes(tiny_features: MarketFeatures) -> None:
    f = tiny_features
    talents = talent_eligibility(f)
    assert talents.ok.tolist() == (~merchant_signals(f, 0).excluded).tolist()
    assert 0 < len(talents.refused()) < f.n_talents
    for t, why in talents.refused().items():
        assert why.startswith("excluded for compliance: ") and "violation x" in why, (t, why)
    assert talents.reason(int(np.argmax(talents.ok))) == ""


def test_products_of_an_excluded_merchant_and_flagged_products_are_not_eligible(
    tiny_features: MarketFeatures,
) -> None:
    f = tiny_features
    flagged = np.nonzero(f.product_risk >= 1.0)[0]
    assert len(flagged), "the tiny market should have a flagged product"
    p = int(flagged[0])
    seller = next(m for m, prods in enumerate(f.merchant_products) if p in prods.tolist())
    assert p not in eligible_products(f, seller).tolist()
    assert product_eligibility(f).reason(p).startswith("excluded for compliance: ")

    g = exclude_merchant(f, seller)
    products = product_eligibility(g)
    for q in g.merchant_products[seller].tolist():
        assert not products.ok[q]
    clean = [q for q in g.merchant_products[seller].tolist() if g.product_risk[q] < 1]
    assert products.reason(clean[0]) == (
        f"sold by merchant {g.merchant_ids[seller]}, excluded for compliance"
    )
    assert len(eligible_products(g, seller)) == 0


# -- a refused merchant is told so -----------------------------------------------------------


def test_a_refused_merchant_gets_not_eligible_from_match_and_plan(
    tiny_features: MarketFeatures,
) -> None:
    f = exclude_merchant(tiny_features, 3)
    mid = str(f.merchant_ids[3])
    assert require_merchant(f, str(f.merchant_ids[2])) == 2
    with pytest.raises(UnknownId):
        require_merchant(f, "ghost")
    with pytest.raises(NotEligible, match=f"merchant {mid} is not eligible: .*counterfeit") as e:
        require_merchant(f, 3)
    assert (e.value.label, e.value.node_id) == ("Merchant", mid)
    assert code_of(e.value) == "NOT_ELIGIBLE"
    with pytest.raises(NotEligible, match="counterfeit"):
        match_merchant(f, mid, top=5)
    with pytest.raises(NotEligible, match="counterfeit"):  # the precomputed path too
        match_merchant(f, mid, top=5, rankings=rank_merchants(f, depth=10))
    with pytest.raises(NotEligible, match="counterfeit"):
        plan_talent_matrix(f, mid, budget=1e7)
    # an eligible merchant still gets its list
    assert match_merchant(f, str(f.merchant_ids[2]), top=5)


def test_similar_leaves_ineligible_talents_out(tiny_features: MarketFeatures) -> None:
    f = tiny_features
    t = int(np.argmax(f.talent_audience_size))
    rows, _ = similar_talents(f.audience, t, top=5)
    assert len(rows) == 5
    g = exclude_talent(f, int(rows[0]))
    kept, _ = similar_talents(g.audience, t, top=5, eligible=talent_eligibility(g).ok)
    assert int(rows[0]) not in kept.tolist() and kept.tolist()[:4] == rows.tolist()[1:]
    with pytest.raises(ValueError, match="shape"):
        similar_talents(f.audience, t, eligible=np.ones(3, dtype=bool))


# -- what violations do to the features (a store, written and built) -------------------------


@pytest.fixture
def store(tiny_market: Path, sqlite_store: SQLiteStore) -> SQLiteStore:
    load_folder(tiny_market, sqlite_store)
    return sqlite_store


def _flag(
    store: SQLiteStore,
    vid: str,
    label: str,
    target: str,
    *,
    kind: str = "vulgar-content",
    severity: str = "minor",
    resolved: bool = False,
    time: str = "2026-01-01",
) -> None:
    store.write(
        [
            NodeBatch.of(
                "Violation",
                [
                    {
                        "id": vid,
                        "kind": kind,
                        "severity": severity,
                        "time": time,
                        "resolved": resolved,
                    }
                ],
            ),
            RelBatch.of("HAS_VIOLATION", label, [{"src": target, "dst": vid}]),
        ]
    )


def _assert_refresh_equals_build(store: SQLiteStore, before: MarketFeatures) -> MarketFeatures:
    full = features_of(store)
    fresh = refresh_risk(read_market(store, COMPLIANCE_READ), before)
    for name in COMPLIANCE_FIELDS:
        a, b = getattr(fresh, name), getattr(full, name)
        if isinstance(a, np.ndarray):
            assert np.array_equal(a, b), name
        else:
            assert a == b, name
    return full


def test_an_unsold_product_carries_no_merchant_risk(store: SQLiteStore) -> None:
    f = features_of(store)
    never = np.asarray(f.promotions.sum(axis=0)).ravel() == 0
    t = int(np.nonzero(never & (f.talent_risk == 0))[0][0])
    tid, m0 = str(f.talent_ids[t]), str(f.merchant_ids[0])
    store.write(
        [
            NodeBatch.of("Product", [{"id": "p-unsold", "name": "Nobody sells", "price": 99.0}]),
            RelBatch.of(
                "PROMOTED",
                "Talent",
                [{"src": tid, "dst": "p-unsold", "collab_id": "k-unsold", "time": "2026-01-02"}],
            ),
        ]
    )
    _flag(store, "x-m0", "Merchant", m0, kind="counterfeit", severity="severe")
    g = features_of(store)
    p = int(np.searchsorted(g.product_ids, "p-unsold"))
    assert g.merchant_risk[0] == 1.0 and g.product_risk[p] == 0.0
    assert g.talent_risk[t] == 0.0, g.talent_risk_notes[t]  # the first merchant's risk: not its
    assert product_eligibility(g).ok[p]
    # once merchant 0 does sell it, the talent shares that merchant's risk
    store.write([RelBatch.of("SELLS", "Merchant", [{"src": m0, "dst": "p-unsold"}])])
    h = features_of(store)
    assert h.talent_risk[t] == pytest.approx(0.25)
    assert any("promoted flagged" in n for n in h.talent_risk_notes[t])
    assert not product_eligibility(h).ok[p]


def test_fake_engagement_lowers_audience_quality(store: SQLiteStore) -> None:
    f = features_of(store)
    clean = np.nonzero((f.talent_risk == 0) & (f.talent_active_share > 0))[0]
    a, b = (str(f.talent_ids[i]) for i in clean[:2])
    today = f.today.isoformat()
    _flag(store, "x-fake", "Talent", a, kind="fake-engagement", resolved=True, time=today)
    _flag(store, "x-reviews", "Talent", b, kind="fake reviews", resolved=True, time=today)
    g = _assert_refresh_equals_build(store, f)
    ta, tb = int(clean[0]), int(clean[1])
    assert np.array_equal(g.talent_active_share_measured, f.talent_active_share_measured)
    assert g.talent_active_share[ta] == pytest.approx(
        f.talent_active_share[ta] * (1 - FAKE_ENGAGEMENT_DISCOUNT)
    )
    assert g.talent_active_share[tb] == f.talent_active_share[tb]  # fake reviews: products
    assert 0 < g.talent_risk[ta] < 1  # minor and resolved: a penalty, not an exclusion
    assert any("audience quality counted at 50%" in n for n in g.talent_risk_notes[ta])
    assert merchant_signals(g, 0).audience_quality[ta] == g.talent_active_share[ta]


def test_risk_reaches_an_agency_whose_roster_keeps_violating(store: SQLiteStore) -> None:
    f = features_of(store)
    roster_size = np.bincount(f.talent_agency[f.talent_agency >= 0], minlength=len(f.agency_ids))
    a = int(np.argmin(np.where(roster_size >= 4, roster_size, 10**9)))  # the smallest roster
    roster = np.nonzero(f.talent_agency == a)[0]
    assert not (f.talent_risk[roster] >= 1).any()
    aid = str(f.agency_ids[a])
    need = max(AGENCY_FLAG_MIN, int(np.ceil(AGENCY_FLAG_SHARE * len(roster))))
    bad, rest = roster[:need], roster[need:]

    # one excluded talent is not a pattern: nobody else in the roster is touched
    _flag(store, "x-a0", "Talent", str(f.talent_ids[bad[0]]))
    g = _assert_refresh_equals_build(store, f)
    assert np.array_equal(g.talent_risk[rest], f.talent_risk[rest])
    assert agency_eligibility(g).ok[a]

    for i, t in enumerate(bad[1:], 1):
        _flag(store, f"x-a{i}", "Talent", str(f.talent_ids[t]))
    h = _assert_refresh_equals_build(store, g)
    share = need / len(roster)
    agencies = agency_eligibility(h)
    assert not agencies.ok[a]
    assert agencies.reason(a).startswith(f"agency {aid}: {need} of {len(roster)} signed talents")
    for t in rest:
        assert h.talent_risk[t] == pytest.approx(
            min(f.talent_risk[t] + AGENCY_PENALTY * share, 0.99)
        )
        assert agencies.reason(a) in h.talent_risk_notes[t]
        assert talent_eligibility(h).ok[t]  # penalised, still eligible on its own record
    others = np.nonzero((h.talent_agency != a) & (h.talent_risk < 1))[0]
    assert np.array_equal(h.talent_risk[others], f.talent_risk[others])


def test_the_policy_sweep_finds_no_ineligible_lead_or_similar_talent(
    s_features: MarketFeatures,
) -> None:
    """The issue's finding on s seed 5: leads named products with unresolved violations."""
    from kolmatch.matching.talent_side import recommend_merchants

    f = s_features
    talents, merchants = talent_eligibility(f), merchant_eligibility(f)
    products = product_eligibility(f)
    assert (~products.ok).any() and (~merchants.ok).any()
    ok_rows = np.nonzero(talents.ok & (f.talent_audience_size > 0))[0]
    seen: dict[str, Any] = {"leads": 0}
    for t in ok_rows[:: max(len(ok_rows) // 12, 1)][:12]:
        tid = str(f.talent_ids[t])
        for lead in recommend_merchants(f, [tid], top=20):
            seen["leads"] += 1
            assert merchants.ok[f.merchant_row(lead.merchant)], lead
            p = int(np.searchsorted(f.product_ids, lead.best_product))
            assert products.ok[p], (lead, products.reason(p))
        rows, _ = similar_talents(f.audience, int(t), top=20, eligible=talents.ok)
        assert talents.ok[rows].all()
    assert seen["leads"] > 100
