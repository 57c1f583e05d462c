"""The Field curve: the fit on hand-made months; the exponent recovered on a generated market."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from kolmatch.errors import BadArgument
from kolmatch.graph.market import FACT_READ, read_market
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from kolmatch.matching.fact import fact_inputs
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.field import (
    MIN_EXPONENT,
    FieldHistory,
    field_curve,
    field_history,
    fit_field,
)

JULY = (date(2026, 7, 1).toordinal(), date(2026, 7, 30).toordinal())


def _months(
    b: np.ndarray, n: np.ndarray, season: np.ndarray, noise: float, seed: int
) -> FieldHistory:
    rng = np.random.default_rng(seed)
    gmv = 500.0 * n ** b[:, None] * season[None, :] * np.exp(rng.normal(0, noise, n.shape))
    return FieldHistory(2025 * 12, n, gmv, 100.0 * n, gmv**2 / n, np.ones(len(b), bool))


def test_exponents_and_season_are_told_apart() -> None:
    rng = np.random.default_rng(1)
    b = rng.uniform(0.3, 0.9, 40)
    n = rng.integers(1, 25, (40, 18)).astype(float)
    season = np.exp(0.4 * np.cos(np.arange(18)))
    fit = fit_field(_months(b, n, season, 0.02, 2))
    assert np.abs(fit.exponent - b).max() < 0.05
    # the month effects are the season (up to a constant)
    assert np.corrcoef(fit.month_effect, np.log(season))[0, 1] > 0.99
    assert fit.rate == pytest.approx(n[:, -3:].sum(axis=1) * 30 / 91)
    assert fit.session_cost == pytest.approx(np.full(40, 100.0))


def test_a_room_without_spread_gets_the_pooled_exponent() -> None:
    b = np.full(20, 0.6)
    n = np.random.default_rng(3).integers(2, 15, (20, 12)).astype(float)
    n[0] = 6.0  # the same number of sessions every month: nothing to fit on
    fit = fit_field(_months(b, n, np.ones(12), 0.05, 4))
    assert np.isnan(fit.own_exponent[0]) and fit.own_weight[0] == 0
    assert fit.exponent[0] == pytest.approx(fit.pooled_exponent)
    assert fit.pooled_exponent == pytest.approx(0.6, abs=0.03)


def test_exponent_is_clipped() -> None:
    b = np.array([-0.5, 1.6, 0.5, 0.5])
    n = np.tile(np.array([1.0, 4.0, 16.0, 2.0, 8.0, 3.0]), (4, 1))
    fit = fit_field(_months(b, n, np.ones(6), 0.0, 5))
    assert fit.exponent.min() >= MIN_EXPONENT and fit.exponent.max() <= 1.0


def test_curve_falls_and_no_room_is_zero() -> None:
    n = np.random.default_rng(6).integers(2, 12, (3, 14)).astype(float)
    h = _months(np.array([0.5, 0.7, 0.9]), n, np.ones(14), 0.05, 7)
    h = FieldHistory(
        h.first_month, h.sessions, h.gmv, h.cost, h.gmv_squares, np.array([True, True, False])
    )
    h.sessions[2] = 0.0
    fit = fit_field(h)
    c = field_curve(fit, 0, start=JULY[0], end=JULY[1])
    assert len(c.gains) > 0 and (np.diff(c.gains) <= 1e-9).all() and c.gains[0] > 0
    assert c.gmv_of(3) == pytest.approx(c.gains[:3].sum())
    none = field_curve(fit, 2, start=JULY[0], end=JULY[1])
    assert not none.has_room and len(none.gains) == 0 and none.reason == "no live room"
    # a campaign day in the window lifts the level
    lifted = fit_field(h, event_days=frozenset(range(*JULY)), lift=1.5)
    assert (
        field_curve(
            lifted, 0, start=JULY[0], end=JULY[1], event_days=frozenset(range(JULY[0], JULY[1] + 1))
        ).level
        > c.level
    )
    with pytest.raises(BadArgument, match="end"):
        field_curve(fit, 0, start=JULY[1], end=JULY[0])
    with pytest.raises(BadArgument, match="lift"):
        fit_field(h, lift=0.0)


def test_history_drops_the_unfinished_month() -> None:
    day = np.array([date(2026, 5, 2).toordinal(), date(2026, 6, 3).toordinal()])
    h = field_history(
        np.array([0, 0]),
        day,
        np.array([1.0, 2.0]),
        np.array([1.0, 1.0]),
        np.array([True]),
        today=date(2026, 6, 10),
    )
    assert h.sessions.tolist() == [[1.0]] and h.first_month == 2026 * 12 + 4


def test_exponent_recovers_the_generated_fatigue(
    s_market: Path, s_features: MarketFeatures, tmp_path: Path
) -> None:
    """On the s market (seed 5) the fitted exponent tracks the generator's 1 - fatigue."""
    store = SQLiteStore(tmp_path / "s.db")
    load_folder(s_market, store)
    g = read_market(store, FACT_READ)
    store.close()
    fit = fact_inputs(g, s_features).field_model
    truth = np.load(Path(f"{s_market}-truth") / "live_rooms.npz")
    rows = np.array([int(m[1:]) for m in s_features.merchant_ids])
    room = truth["room"][rows]
    b, true_b = fit.exponent[room], 1 - truth["fatigue"][rows][room]
    mae = float(np.abs(b - true_b).mean())
    pooled_mae = float(np.abs(fit.pooled_exponent - true_b).mean())
    corr = float(np.corrcoef(b, true_b)[0, 1])
    assert mae < 0.09 and mae < pooled_mae and corr > 0.4, (mae, pooled_mae, corr)
    assert fit.pooled_exponent == pytest.approx(true_b.mean(), abs=0.03)


def test_a_session_without_a_cost_is_not_free() -> None:
    day = np.array([date(2026, 4, d).toordinal() for d in (2, 9)])
    h = field_history(
        np.array([0, 0]),
        day,
        np.array([100.0, 120.0]),
        np.array([np.nan, 40.0]),
        np.array([True]),
        today=date(2026, 6, 10),
    )
    assert h.costed is not None and h.costed[0, 0] == 1.0 and h.sessions[0, 0] == 2.0
    assert fit_field(h).session_cost[0] == pytest.approx(40.0)  # of the one with a cost
    none = field_history(
        np.array([0]),
        day[:1],
        np.array([100.0]),
        np.array([np.nan]),
        np.array([True]),
        today=date(2026, 6, 10),
    )
    fit = fit_field(none)
    assert np.isnan(fit.session_cost[0])
    curve = field_curve(
        fit, 0, start=date(2026, 7, 1).toordinal(), end=date(2026, 7, 30).toordinal()
    )
    assert len(curve.gains) == 0 and curve.reason  # no cost on record: no curve, a reason
