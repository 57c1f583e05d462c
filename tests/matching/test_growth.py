"""GMV over time: series that add up, a forecast that beats last year where there is a trend."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from kolmatch.errors import BadArgument
from kolmatch.graph.market import GROWTH_READ, MarketGraph, read_market
from kolmatch.graph.projection import EdgeList, NodeTable
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.growth import (
    MERCHANT_GOAL,
    TALENT_GOAL,
    Bookings,
    backtest,
    booked_by_owner,
    bookings,
    growth_report,
    last_year,
    monthly_gmv,
    seasonal_forecast,
    slot_gmv,
    standing,
    wape,
)
from kolmatch.matching.score import merchant_signals


@pytest.fixture(scope="module")
def tiny_graph(tiny_market: Path, tmp_path_factory: pytest.TempPathFactory) -> MarketGraph:
    store = SQLiteStore(tmp_path_factory.mktemp("growth") / "g.db")
    load_folder(tiny_market, store)
    g = read_market(store, GROWTH_READ)
    store.close()
    return g


def test_monthly_series_add_up_to_the_graphs_sales(tiny_graph: MarketGraph) -> None:
    g = tiny_graph
    s = monthly_gmv(g)
    bought = g.edge("PURCHASED", "User")
    sells = g.edge("SELLS", "Merchant")
    sold = np.isin(bought.dst, sells.dst)  # a product nobody sells counts for no merchant
    sessions, hosted = g.node("LiveSession"), g.edge("HOSTED", "Merchant")
    room = sessions.columns["gmv"][hosted.dst].astype(float)
    assert np.nansum(room) > 0, "the tiny market's merchants run live rooms"
    assert s.merchant_room.sum() == pytest.approx(np.nansum(room))
    assert s.merchant.sum() == pytest.approx(
        np.nansum(bought.columns["amount"][sold].astype(float)) + np.nansum(room)
    )
    promoted = g.edge("PROMOTED", "Talent")
    assert s.talent.sum() == pytest.approx(np.nansum(promoted.columns["gmv"].astype(float)))
    # months are consecutive and cover every sale
    assert s.months[0] <= min(bought.columns["time"])[:7]
    assert s.months[-1] >= max(bought.columns["time"])[:7]
    assert s.merchant.shape == (len(s.merchant_ids), len(s.months))
    # one merchant's months: its products' purchases plus its live room's sessions by month
    m = int(np.argmax(s.merchant_room.sum(axis=1)))
    mine = np.isin(bought.dst, sells.dst[sells.src == m])
    per_month: dict[str, float] = {}
    for day, amount in zip(
        bought.columns["time"][mine], bought.columns["amount"][mine], strict=True
    ):
        per_month[day[:7]] = per_month.get(day[:7], 0.0) + float(amount)
    for i in hosted.dst[hosted.src == m]:
        day = sessions.columns["day"][i]
        per_month[day[:7]] = per_month.get(day[:7], 0.0) + float(sessions.columns["gmv"][i])
    for k, month in enumerate(s.months):
        assert s.merchant[m, k] == pytest.approx(per_month.get(month, 0.0))


def _table(label: str, ids: list[str], **columns: list[object]) -> NodeTable:
    cols = {
        k: np.array(v, dtype=np.float64 if isinstance(v[0], float) else object)
        for k, v in columns.items()
    }
    return NodeTable(label, np.array(ids, dtype=str), cols)


def _edges(
    rel: str, src_label: str, pairs: list[tuple[int, int]], **columns: list[object]
) -> EdgeList:
    src = np.array([a for a, _ in pairs], dtype=np.int64)
    dst = np.array([b for _, b in pairs], dtype=np.int64)
    cols = {
        k: np.array(v, dtype=np.float64 if isinstance(v[0], float) else object)
        for k, v in columns.items()
    }
    return EdgeList(rel, src_label, src, dst, cols)


def _hand_made() -> MarketGraph:
    """m1 sells p1 (bought in March and April 2025); m2 sells nothing and only runs its live
    room (sessions in April and May); m3 runs no room; t1 promoted once, in May; t1 is booked
    by m2 for a window in July."""
    return MarketGraph(
        ("hand", 1),
        {
            "Merchant": _table("Merchant", ["m1", "m2", "m3"]),
            "Talent": _table("Talent", ["t1"]),
            "Product": _table("Product", ["p1"]),
            "User": _table("User", ["u1"]),
            "LiveSession": _table(
                "LiveSession",
                ["ls1", "ls2", "ls3"],
                day=["2025-04-02", "2025-04-20", "2025-05-09"],
                gmv=[1000.0, 500.0, 2000.0],
            ),
        },
        {
            ("SELLS", "Merchant"): _edges("SELLS", "Merchant", [(0, 0)]),
            ("PURCHASED", "User"): _edges(
                "PURCHASED",
                "User",
                [(0, 0), (0, 0)],
                amount=[30.0, 70.0],
                time=["2025-03-05T10:00:00", "2025-04-01T09:00:00"],
            ),
            ("PROMOTED", "Talent"): _edges(
                "PROMOTED", "Talent", [(0, 0)], gmv=[400.0], time=["2025-05-03"]
            ),
            ("HOSTED", "Merchant"): _edges("HOSTED", "Merchant", [(1, 0), (1, 1), (1, 2)]),
            ("BOOKED", "Talent"): _edges(
                "BOOKED",
                "Talent",
                [(0, 1)],
                booking_id=["b1"],
                start=["2025-07-01"],
                end=["2025-07-05"],
                campaign=[None],
            ),
        },
    )


def test_live_room_sales_count_in_the_merchants_month() -> None:
    s = monthly_gmv(_hand_made())
    assert s.months == ["2025-03", "2025-04", "2025-05"]
    assert s.merchant.tolist() == [[30.0, 70.0, 0.0], [0.0, 1500.0, 2000.0], [0.0, 0.0, 0.0]]
    assert s.merchant_room.tolist() == [[0.0] * 3, [0.0, 1500.0, 2000.0], [0.0] * 3]
    assert s.talent.tolist() == [[0.0, 0.0, 400.0]]


def test_a_merchant_with_only_live_room_sales_appears() -> None:
    s = monthly_gmv(_hand_made())
    rows = {r.id: r for r in standing(s.merchant_ids, s.merchant, s.months, MERCHANT_GOAL)}
    assert rows["m2"].last_12_months == pytest.approx(3500.0)
    assert rows["m2"].forecast_12_months > 0
    assert rows["m3"].last_12_months == 0 and rows["m3"].forecast_12_months == 0


def test_bookings_read_from_the_graph() -> None:
    b = bookings(_hand_made())
    assert b.booking_ids.tolist() == ["b1"]
    assert (b.talent.tolist(), b.merchant.tolist()) == (["t1"], ["m2"])
    assert (b.start.tolist(), b.end.tolist()) == (["2025-07-01"], ["2025-07-05"])


def test_booked_by_owner_sums_each_owners_slots() -> None:
    n, gmv = booked_by_owner(
        np.array(["a", "b", "c"]), np.array(["c", "a", "c", "x"]), np.array([1.0, 2.0, 3.0, 9.0])
    )
    assert n.tolist() == [1, 0, 2]
    assert gmv.tolist() == [2.0, 0.0, 4.0]


def test_on_track_takes_the_larger_of_forecast_and_booked_never_the_sum() -> None:
    months = [f"{2024 + k // 12}-{k % 12 + 1:02d}" for k in range(24)]
    flat = np.full((2, 24), 100_000.0)  # a 1.2M a year forecast each
    rows = {
        r.id: r
        for r in standing(
            np.array(["a", "b"]),
            flat,
            months,
            TALENT_GOAL,
            booked_slots=np.array([3, 1]),
            booked_gmv=np.array([1.6e6, 0.5e6]),
        )
    }
    assert rows["a"].on_track and rows["a"].basis == "booked" and rows["a"].gap == 0
    # 1.2M forecast + 0.5M booked would pass 1.5M; the booked slots are in the forecast
    b = rows["b"]
    assert not b.on_track and b.basis == "forecast"
    assert b.gap == pytest.approx(TALENT_GOAL - b.forecast_12_months)
    assert (b.booked_slots, b.booked_gmv) == (1, 0.5e6)


def _slots(rows: list[tuple[str, str, str, str]]) -> Bookings:
    """Slots (talent, merchant, start, end)."""
    return Bookings(
        np.array([f"b{i}" for i in range(len(rows))], dtype=str),
        *(np.array([r[j] for r in rows], dtype=str) for j in range(4)),
    )


def test_booked_gmv_of_a_booking_is_the_expected_gmv_given(
    tiny_graph: MarketGraph, tiny_features: MarketFeatures
) -> None:
    f = tiny_features
    s = monthly_gmv(tiny_graph)
    t, m = str(f.talent_ids[0]), str(f.merchant_ids[0])
    other = str(f.talent_ids[1])
    day = f.today
    b = _slots(
        [
            (t, m, (day + timedelta(days=10)).isoformat(), (day + timedelta(days=15)).isoformat()),
            # over before the reference day: realised (or lapsed), not booked
            (t, m, (day - timedelta(days=20)).isoformat(), (day - timedelta(days=5)).isoformat()),
            # a window two years out is beyond the forecast's twelve months
            (other, m, date(day.year + 2, 1, 1).isoformat(), date(day.year + 2, 1, 5).isoformat()),
        ]
    )
    r = growth_report(s, f, b, np.array([12_345.0, 999.0, 777.0]))
    (mr,) = [x for x in r.merchants if x.id == m]
    (tr,) = [x for x in r.talents if x.id == t]
    (orow,) = [x for x in r.talents if x.id == other]
    assert (mr.booked_slots, mr.booked_gmv) == (1, 12_345.0)
    assert (tr.booked_slots, tr.booked_gmv) == (1, 12_345.0)
    assert (orow.booked_slots, orow.booked_gmv) == (0, 0.0)
    assert (r.booked_slots, r.booked_gmv, r.later_slots) == (1, 12_345.0, 1)
    assert len(r.horizon) == 12 and r.horizon[0] > r.months[-1]
    # the realised year is the history's, whatever is booked
    assert mr.last_12_months == pytest.approx(
        float(s.merchant[list(s.merchant_ids).index(m), -12:].sum())
    )
    with pytest.raises(BadArgument, match="2 expected GMVs for 3 booked slots"):
        growth_report(s, f, b, np.array([1.0, 2.0]))


def test_a_slot_is_priced_like_a_pairing(tiny_features: MarketFeatures) -> None:
    f = tiny_features
    m = 0
    sig = merchant_signals(f, m)
    gmv = np.where(sig.excluded, 0.0, sig.expected_gmv * (1.0 - sig.risk))
    t = int(np.argmax(gmv))
    b = _slots(
        [
            (str(f.talent_ids[t]), str(f.merchant_ids[m]), "2030-01-01", "2030-01-02"),
            ("t-unknown", str(f.merchant_ids[m]), "2030-01-01", "2030-01-02"),
        ]
    )
    priced = slot_gmv(f, b)
    assert priced[0] == pytest.approx(gmv[t]) and priced[0] > 0
    assert priced[1] == 0.0


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
