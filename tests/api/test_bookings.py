"""Bookings through the engine: compliance checked, the slot held for planners at once, the
incremental state equal to a rebuild, and another worker serving it from the change feed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from kolmatch.engine.cache import features_of
from kolmatch.engine.service import EngineService
from kolmatch.errors import BadArgument, BookingRefused, NotEligible, UnknownId
from kolmatch.graph.booking import Booking
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from kolmatch.matching.availability import Window, availability
from kolmatch.matching.features import MarketFeatures


@pytest.fixture
def service(tiny_market: Path, tmp_path: Path) -> Iterator[EngineService]:
    store = SQLiteStore(tmp_path / "b.db")
    load_folder(tiny_market, store)
    svc = EngineService(store, tmp_path / "cache")
    yield svc
    svc.close()


def _window(f: MarketFeatures) -> tuple[str, str, Window]:
    start = f.today + timedelta(days=40)  # after every generated booking
    end = start + timedelta(days=6)
    return start.isoformat(), end.isoformat(), Window(start.toordinal(), end.toordinal(), "w")


def _free_talent(f: MarketFeatures, merchant: int, w: Window) -> tuple[int, int]:
    """A free, eligible talent with the fewest slots, and its slots."""
    av = availability(f, merchant, w)
    cap = np.nan_to_num(f.talent_capacity, nan=1.0).astype(int)
    ok = np.nonzero(av.available & (f.talent_risk < 1.0) & (av.free_slots == cap))[0]
    t = int(ok[np.argmin(cap[ok])])
    return t, int(cap[t])


def _eligible_merchant(f: MarketFeatures) -> int:
    return int(np.nonzero(f.merchant_risk < 1.0)[0][0])


def _same_bookings(a: MarketFeatures, b: MarketFeatures) -> None:
    def rows(f: MarketFeatures) -> list[tuple[int, int, int, int]]:
        return sorted(
            zip(
                f.booking_talent.tolist(),
                f.booking_merchant.tolist(),
                f.booking_start.tolist(),
                f.booking_end.tolist(),
                strict=True,
            )
        )

    assert rows(a) == rows(b)


def _apart(f: MarketFeatures, n: int) -> list[int]:
    """``n`` eligible merchants none of which competes with another."""
    out: list[int] = []
    for m in np.nonzero(f.merchant_risk < 1.0)[0]:
        rivals = set(f.competitors[m].indices.tolist()) | {
            int(x) for x in np.nonzero(f.competitors[:, m].toarray().ravel())[0]
        }
        if not rivals & set(out):
            out.append(int(m))
        if len(out) == n:
            return out
    raise AssertionError(f"fewer than {n} merchants apart")


def test_a_booking_holds_the_slot_for_every_planner_at_once(service: EngineService) -> None:
    f = service.snapshot.features
    start, end, w = _window(f)
    t, cap = _free_talent(f, _eligible_merchant(f), w)
    tid = str(f.talent_ids[t])
    *holders, other = _apart(f, cap + 1)
    v = service.snapshot.version
    # every slot at once, one merchant a slot (a merchant holds a talent once in a window)
    mine = [
        Booking(f"bk{i}", tid, str(f.merchant_ids[m]), start, end) for i, m in enumerate(holders)
    ]
    snap, written = service.book(mine, actor="internal")
    assert written == [b.booking_id for b in mine] and snap.version == v + 1
    # planners read capacity net of it: no merchant can have t in that window
    for m in range(len(f.merchant_ids)):
        assert not availability(snap.features, m, w).available[t]
    # the incremental state equals a rebuild from the store
    _same_bookings(snap.features, features_of(service.store))
    # the same booking again: nothing written, nothing refreshed
    snap2, written2 = service.book(mine[:1])
    assert written2 == [] and snap2.version == snap.version
    # the last slot is gone for another merchant: refused, nothing written
    with pytest.raises(BookingRefused, match=f"{tid} is not available"):
        service.book([Booking("bkx", tid, str(f.merchant_ids[other]), start, end)])
    assert service.snapshot.version == snap.version
    # released: free again (not by another merchant), and again equal to a rebuild
    first = str(f.merchant_ids[holders[0]])
    assert service.release(["bk0"], merchant=str(f.merchant_ids[other]))[1] == []
    snap3, gone = service.release(["bk0"], merchant=first)
    assert gone == ["bk0"] and snap3.version == snap.version + 1
    assert availability(snap3.features, other, w).available[t]
    _same_bookings(snap3.features, features_of(service.store))


def test_book_talents_names_its_arguments_and_keys_ids_by_merchant(
    service: EngineService,
) -> None:
    f = service.snapshot.features
    start, end, w = _window(f)
    m = str(f.merchant_ids[_eligible_merchant(f)])
    t, _ = _free_talent(f, _eligible_merchant(f), w)
    tid = str(f.talent_ids[t])
    done = service.book_talents(m, [tid], "plan-1", start=start, end=end)
    assert done.booking_ids == [f"{m}/plan-1/{tid}"] and done.written == done.booking_ids
    again = service.book_talents(m, [tid], "plan-1", start=start, end=end)
    assert again.written == [] and again.snapshot.version == done.snapshot.version
    for kwargs, arg in (
        ({"talents": [], "key": "k"}, "talents"),
        ({"talents": [tid, tid], "key": "k"}, "talents"),
        ({"talents": [tid], "key": " "}, "key"),
    ):
        with pytest.raises(BadArgument, match=f"argument {arg}:"):
            service.book_talents(m, kwargs["talents"], kwargs["key"], start=start, end=end)
    with pytest.raises(BadArgument, match="argument start:"):
        service.book_talents(m, [tid], "k2")
    with pytest.raises(BadArgument, match="argument end:"):
        service.book_talents(m, [tid], "k2", start=end, end=start)
    with pytest.raises(UnknownId, match="Campaign"):
        service.book_talents(m, [tid], "k2", campaign="cp-none")
    # the history's days are done: a booking holds a coming slot
    past = (f.today - timedelta(days=3)).isoformat()
    with pytest.raises(BadArgument, match="argument start: must be after the market's day"):
        service.book_talents(m, [tid], "k3", start=past, end=end)
    with pytest.raises(BadArgument, match="argument start: must be after the market's day"):
        service.book_talents(m, [tid], "k3", start=f.today.isoformat(), end=end)


def test_a_booking_file_carries_the_requests_key(service: EngineService, tmp_path: Path) -> None:
    """booked.csv's booking_id is the idempotency key: a booking imported with the id a request
    would write (``<merchant>/<key>/<talent>``) is that request, already done; and loading the
    file again after the request writes nothing new either."""
    f = service.snapshot.features
    start, end, w = _window(f)
    mi = _eligible_merchant(f)
    m = str(f.merchant_ids[mi])
    t, _ = _free_talent(f, mi, w)
    tid = str(f.talent_ids[t])
    folder = tmp_path / "day"
    folder.mkdir()
    (folder / "booked.csv").write_text(
        f"src,dst,booking_id,start,end,campaign\n{tid},{m},{m}/crm-7/{tid},{start},{end},\n"
    )
    load_folder(folder, service.store)
    count = service.store.counts()["BOOKED"]
    done = service.book_talents(m, [tid], "crm-7", start=start, end=end)
    assert done.booking_ids == [f"{m}/crm-7/{tid}"] and done.written == []
    load_folder(folder, service.store)
    assert service.store.counts()["BOOKED"] == count


def test_compliance_refuses_excluded_merchants_and_talents(service: EngineService) -> None:
    f = service.snapshot.features
    start, end, w = _window(f)
    m = _eligible_merchant(f)
    banned = np.nonzero(f.talent_risk >= 1.0)[0]
    assert len(banned), "the tiny market has excluded talents"
    with pytest.raises(NotEligible, match="excluded for compliance"):
        service.book(
            [Booking("x1", str(f.talent_ids[banned[0]]), str(f.merchant_ids[m]), start, end)]
        )
    bad_m = np.nonzero(f.merchant_risk >= 1.0)[0]
    if len(bad_m):
        t, _ = _free_talent(f, m, w)
        with pytest.raises(NotEligible):
            service.book(
                [Booking("x2", str(f.talent_ids[t]), str(f.merchant_ids[bad_m[0]]), start, end)]
            )
    assert service.store.release(["x1", "x2"]) == []


def test_another_worker_serves_a_booking_from_the_change_feed(
    service: EngineService, tmp_path: Path
) -> None:
    other = EngineService(SQLiteStore(tmp_path / "b.db"), tmp_path / "cache")
    try:
        other.follow(poll_seconds=0.05)
        f = service.snapshot.features
        start, end, w = _window(f)
        m = _eligible_merchant(f)
        t, cap = _free_talent(f, m, w)
        snap, _ = service.book(
            [Booking("f1", str(f.talent_ids[t]), str(f.merchant_ids[m]), start, end)]
        )
        deadline = time.monotonic() + 10
        while other.snapshot.version < snap.version and time.monotonic() < deadline:
            time.sleep(0.02)
        assert other.snapshot.version == snap.version
        assert availability(other.snapshot.features, m, w).free_slots[t] == cap - 1
        _same_bookings(other.snapshot.features, snap.features)
    finally:
        other.close()


def test_windows_are_checked_before_anything_is_written(service: EngineService) -> None:
    f = service.snapshot.features
    m = _eligible_merchant(f)
    day = (f.today + timedelta(days=50)).isoformat()
    before = date.fromisoformat(day) - timedelta(days=3)
    with pytest.raises(Exception, match=r"is before the start"):
        service.book(
            [Booking("w1", str(f.talent_ids[0]), str(f.merchant_ids[m]), day, str(before))]
        )
    with pytest.raises(Exception, match="give at least one booking"):
        service.book([])
