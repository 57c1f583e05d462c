"""GMV over time: series that add up, a forecast that beats last year where there is a trend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kolmatch.graph.market import GROWTH_READ, read_market
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from kolmatch.matching.growth import (
    MERCHANT_GOAL,
    backtest,
    last_year,
    monthly_gmv,
    seasonal_forecast,
    standing,
    wape,
)


def test_monthly_series_add_up_to_the_graphs_sales(tiny_market: Path, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "g.db")
    load_folder(tiny_market, store)
    g = read_market(store, GROWTH_READ)
    store.close()
    s = monthly_gmv(g)
    bought = g.edge("PURCHASED", "User")
    sells = g.edge("SELLS", "Merchant")
    sold = np.isin(bought.dst, sells.dst)  # a product nobody sells counts for no merchant
    assert s.merchant.sum() == pytest.approx(
        np.nansum(bought.columns["amount"][sold].astype(float))
    )
    promoted = g.edge("PROMOTED", "Talent")
    assert s.talent.sum() == pytest.approx(np.nansum(promoted.columns["gmv"].astype(float)))
    # months are consecutive and cover every sale
    assert s.months[0] <= min(bought.columns["time"])[:7]
    assert s.months[-1] >= max(bought.columns["time"])[:7]
    assert s.merchant.shape == (len(s.merchant_ids), len(s.months))
    # one merchant's months: its products' purchases by month
    m = int(np.argmax(s.merchant.sum(axis=1)))
    mine = np.isin(bought.dst, sells.dst[sells.src == m])
    per_month = {}
    for day, amount in zip(
        bought.columns["time"][mine], bought.columns["amount"][mine], strict=True
    ):
        per_month[day[:7]] = per_month.get(day[:7], 0.0) + float(amount)
    for k, month in enumerate(s.months):
        assert s.merchant[m, k] == pytest.approx(per_month.get(month, 0.0))


def _market(n: int, months: int, growth: float, seed: int = 0) -> np.ndarray:
    """Owners with their own size and yearly growth, a November peak and a February trough,
    and noise; January first."""
    rng = np.random.default_rng(seed)
    t = np.arange(months)
    season = 1 + 0.8 * (t % 12 == 10) - 0.3 * (t % 12 == 1)
    size = rng.lognormal(10, 1, n)[:, None]
    own = rng.normal(growth, 0.1, n)[:, None]
    noise = rng.lognormal(0, 0.15, (n, months))
    return size * (1 + own) ** (t / 12.0) * season * noise


def test_the_forecast_beats_last_year_where_the_market_grows() -> None:
    series = _market(300, 30, growth=0.4)
    months = [f"{2024 + k // 12}-{k % 12 + 1:02d}" for k in range(30)]
    b = backtest(series, months, holdout=6)
    assert b.holdout == months[-6:]
    assert b.forecast_wape < b.last_year_wape  # last year misses a year of growth
    assert b.last_year_total_error < -0.2
    assert abs(b.forecast_total_error) < 0.1


def test_the_forecast_keeps_the_season() -> None:
    series = _market(50, 24, growth=0.0, seed=1)
    ahead = seasonal_forecast(series, 0, 12).sum(axis=0)
    assert ahead[10] > 1.5 * ahead[9]  # November over October
    assert ahead[1] < 0.85 * ahead[0]  # February under January
    # without trend the forecast is about last year's level
    assert ahead.sum() == pytest.approx(series[:, -12:].sum(), rel=0.1)


def test_last_year_and_wape() -> None:
    s = np.arange(24.0)[None, :]
    assert last_year(s, 14).tolist() == [[*range(12, 24), 12.0, 13.0]]
    assert wape(np.zeros((1, 2)), np.ones((1, 2))) != wape(np.zeros((1, 2)), np.ones((1, 2)))


def test_a_backtest_needs_a_year_to_learn_from() -> None:
    with pytest.raises(ValueError, match="a backtest of 6 needs 19"):
        backtest(np.ones((2, 18)), [f"2025-{k:02d}" for k in range(1, 19)], holdout=6)


def test_standing_orders_on_track_first_then_by_gap() -> None:
    ids = np.array(["a", "b", "c"])
    flat = np.array([[2e6] * 24, [1e6] * 24, [0.5e6] * 24])  # 24M, 12M, 6M a year
    rows = standing(
        ids, flat, [f"{2024 + k // 12}-{k % 12 + 1:02d}" for k in range(24)], MERCHANT_GOAL
    )
    assert [r.id for r in rows] == ["a", "b", "c"]
    assert [r.on_track for r in rows] == [True, False, False]
    assert rows[1].gap == pytest.approx(3e6, rel=1e-6)
    assert rows[0].last_12_months == pytest.approx(24e6)
