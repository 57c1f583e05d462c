"""The change feed: a poll reads only what is new, a trim keeps every state of a version or
none, a rewritten feed is read again, and a follower behind the trimmed part rebuilds."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kolmatch.engine import cache
from kolmatch.engine.cache import ChangeFeed, change_after, record_change
from kolmatch.engine.service import EngineService
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder


def _write(before: int, state: str = "written", **extra: Any) -> dict[str, Any]:
    """A violations write's entry (``after`` follows ``written``)."""
    entry: dict[str, Any] = {"before": before, "id": f"w{before}", "kind": "violations"}
    entry |= {"state": state, **extra}
    if state == "written" and "after" not in extra:
        entry["after"] = before + 1
    return entry


def _untrimmed(entries: list[dict[str, Any]], before: int) -> dict[str, Any] | None:
    """What the feed answers for ``before`` when nothing was trimmed (its documented rule)."""
    found = [e for e in entries if e["before"] == before]
    made = [e for e in found if e["state"] == "written" and e.get("after") == before + 1]
    return (made or found or [None])[-1]


@pytest.fixture
def small_feed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trims after 2 KB, keeping ~0.5 KB: a few entries (one is 80-150 bytes here)."""
    monkeypatch.setattr(cache, "FEED_TRIM_BYTES", 2048)
    monkeypatch.setattr(cache, "FEED_KEEP_BYTES", 512)


def test_a_poll_reads_only_the_bytes_appended_since_the_last(tmp_path: Path) -> None:
    feed = ChangeFeed(tmp_path / "changes.jsonl")
    for v in range(1_000):
        feed.append(_write(v, "pending"))
        feed.append(_write(v))
    size = feed.path.stat().st_size
    assert feed.change_after(500) == _write(500)
    assert (feed.offset, feed.bytes_read) == (size, size)
    # nothing new: nothing read, whatever version is asked
    assert feed.change_after(999) == _write(999)
    assert feed.change_after(1_000) is None
    assert feed.bytes_read == size
    feed.append(_write(1_000, "pending"))
    new = feed.path.stat().st_size - size
    assert feed.change_after(1_000) == _write(1_000, "pending")
    assert feed.bytes_read == size + new
    assert feed.offset == size + new


def test_a_write_that_landed_past_another_s_is_waited_for_until_it_ends(tmp_path: Path) -> None:
    """Writer x starts on version 3 (pending there) and y makes 4 first: x lands on 4. Until
    x's entry says so, version 4 answers ``pending`` (not None: a follower would rebuild);
    then x's entry, recorded on the version it was made on. A write that ended (failed, or
    written elsewhere) no longer holds later versions open."""
    now = time.time()
    feed = ChangeFeed(tmp_path / "changes.jsonl")
    feed.append({"before": 3, "state": "pending", "kind": "collaboration", "id": "x", "at": now})
    feed.append({"before": 3, "state": "pending", "kind": "violations", "id": "y", "at": now})
    feed.append({"before": 3, "state": "written", "kind": "violations", "id": "y", "after": 4})
    assert feed.change_after(3)["id"] == "y"
    unplaced = {"before": 4, "state": "pending", "kind": "unplaced"}
    assert feed.change_after(4) == unplaced
    assert feed.change_after(2) is None  # x started on 3: nothing of it can be on 2
    # a repeat that wrote nothing on 4 does not hide x, still open
    feed.append({"before": 4, "state": "pending", "kind": "bookings", "id": "w", "at": now})
    feed.append({"before": 4, "state": "noop", "kind": "bookings", "id": "w"})
    assert feed.change_after(4) == unplaced
    feed.append({"before": 4, "state": "written", "kind": "collaboration", "id": "x", "after": 5})
    assert feed.change_after(4)["id"] == "x"
    assert feed.change_after(5) is None  # nothing is open: 5 has no write
    feed.append({"before": 5, "state": "pending", "kind": "other", "id": "z", "at": now})
    feed.append({"before": 5, "state": "failed", "kind": "other", "id": "z"})
    assert feed.change_after(6) is None
    assert ChangeFeed(feed.path).change_after(4)["id"] == "x"  # a fresh reader agrees
    # a writer that died pending holds later versions open for FEED_OPEN_SECONDS only
    dead = now - cache.FEED_OPEN_SECONDS - 1
    feed.append({"before": 6, "state": "pending", "kind": "violations", "id": "d", "at": dead})
    assert feed.change_after(7) is None
    feed.append({"before": 6, "state": "pending", "kind": "violations", "id": "e", "at": now})
    assert feed.change_after(7) == {"before": 7, "state": "pending", "kind": "unplaced"}


def test_a_write_that_began_before_a_load_leaves_no_pending_state_behind(
    tmp_path: Path,
) -> None:
    """Writer x reads version 3 (pending there) and waits for a load's lock; the load makes 4
    (it is not in the feed) and x makes 5. Once x ended, version 3 has no state (a follower
    rebuilds past the load) rather than x's pending entry for ever (waited for, then rebuilt
    anyway). Once x is placed on 4 (pending there as soon as its transaction returned), it
    no longer holds 3 open: x asking about the versions before its own does not wait for
    itself, but still for another writer's open write."""
    now = time.time()
    feed = ChangeFeed(tmp_path / "changes.jsonl")
    x = {"before": 3, "state": "pending", "kind": "collaboration", "id": "x", "at": now}
    feed.append(x)
    assert feed.change_after(3)["state"] == "pending"  # (others wait for it: it may make 4)
    feed.append({"before": 3, "state": "pending", "kind": "violations", "id": "y", "at": now})
    feed.append({**x, "before": 4})  # x placed
    unplaced = {"before": 3, "state": "pending", "kind": "unplaced"}
    assert feed.change_after(3) == unplaced  # y may still make 4
    feed.append({"before": 3, "state": "failed", "kind": "violations", "id": "y"})
    assert feed.change_after(3)["state"] == "failed"  # y's, and x left nothing on 3
    assert feed.change_after(4)["state"] == "pending"  # x, placed: others wait for it there
    feed.append({"before": 4, "state": "written", "kind": "collaboration", "id": "x", "after": 5})
    assert feed.change_after(4)["id"] == "x"
    assert feed.change_after(3)["state"] == "failed"  # y's, the latest still there
    fresh = ChangeFeed(feed.path)
    assert fresh.change_after(3)["state"] == "failed" and fresh.change_after(4)["id"] == "x"
    # alone on its version of beginning, z leaves nothing there
    feed.append({"before": 5, "state": "pending", "kind": "collaboration", "id": "z", "at": now})
    feed.append({"before": 6, "state": "written", "kind": "collaboration", "id": "z", "after": 7})
    assert feed.change_after(5) is None
    assert ChangeFeed(feed.path).change_after(5) is None
    # placed: p and q read 7 and queued behind a load (8); p made 9 and q 10. Each is pending
    # again on the version it was made on as soon as its transaction returned: 7 is then the
    # load's alone (no write open there: each writer's check of 7 ends at once, rather than
    # each waiting for the other), and 8 and 9 wait for p and q.
    for w in ("p", "q"):
        feed.append({"before": 7, "state": "pending", "kind": "collaboration", "id": w, "at": now})
    assert feed.change_after(7) == {"before": 7, "state": "pending", "kind": "unplaced"}
    feed.append({"before": 8, "state": "pending", "kind": "collaboration", "id": "p", "at": now})
    feed.append({"before": 9, "state": "pending", "kind": "collaboration", "id": "q", "at": now})
    assert feed.change_after(7) is None
    assert feed.change_after(8)["state"] == feed.change_after(9)["state"] == "pending"
    feed.append({"before": 9, "state": "written", "kind": "other", "id": "q", "after": 10})
    feed.append({"before": 8, "state": "written", "kind": "other", "id": "p", "after": 9})
    for reader in (feed, ChangeFeed(feed.path)):
        assert reader.change_after(7) is None
        assert reader.change_after(8)["id"] == "p" and reader.change_after(9)["id"] == "q"


def test_a_line_being_appended_is_read_once_it_is_whole(tmp_path: Path) -> None:
    feed = ChangeFeed(tmp_path / "changes.jsonl")
    feed.append(_write(0))
    line = json.dumps(_write(1)).encode() + b"\n"
    with open(feed.path, "ab") as fh:
        fh.write(line[:20])
    assert feed.change_after(1) is None
    assert feed.offset == len(json.dumps(_write(0))) + 1  # stopped before the unfinished line
    with open(feed.path, "ab") as fh:
        fh.write(line[20:])
    assert feed.change_after(1) == _write(1)


def test_a_line_a_crashed_writer_left_unfinished_costs_only_that_line(tmp_path: Path) -> None:
    feed = ChangeFeed(tmp_path / "changes.jsonl")
    feed.append(_write(0))
    with open(feed.path, "ab") as fh:
        fh.write(b'{"before": 1, "sta')
    assert feed.change_after(0) == _write(0)
    feed.append(_write(2))  # ends the broken line first: this entry is whole
    assert feed.change_after(2) == _write(2)
    assert feed.change_after(1) is None


@pytest.mark.parametrize("how", ["replaced", "truncated", "rewritten in place"])
def test_a_feed_rewritten_between_two_reads_is_read_from_its_start(
    tmp_path: Path, how: str
) -> None:
    path = tmp_path / "changes.jsonl"
    feed = ChangeFeed(path)
    for v in range(10):
        feed.append(_write(v))
    assert feed.change_after(5) == _write(5)
    # another history of the same versions, longer than what was read (but "truncated")
    other = [
        _write(v, kind="campaigns", id=f"other-{v}") for v in range(3 if how == "truncated" else 30)
    ]
    text = "".join(json.dumps(e) + "\n" for e in other)
    if how == "replaced":  # another file at the path (a trim, a cleared cache folder)
        (tmp_path / "new").write_text(text)
        os.replace(tmp_path / "new", path)
    else:  # the same inode: an offset into it reads on from the middle of another history
        inode = path.stat().st_ino
        path.write_text(text)
        assert path.stat().st_ino == inode
    assert feed.change_after(2) == other[2]
    assert feed.change_after(5) == (None if how == "truncated" else other[5])
    assert feed.offset == path.stat().st_size
    fresh = ChangeFeed(path)
    assert all(feed.change_after(v) == fresh.change_after(v) for v in range(40))


def test_a_deleted_feed_answers_none_and_is_read_anew_when_written_again(tmp_path: Path) -> None:
    feed = ChangeFeed(tmp_path / "changes.jsonl")
    feed.append(_write(0))
    assert feed.change_after(0) == _write(0)
    feed.path.unlink()
    assert feed.change_after(0) is None
    feed.append(_write(0, "failed"))
    assert feed.change_after(0) == _write(0, "failed")


def test_reads_after_a_trim_are_those_of_the_untrimmed_feed_or_none(
    tmp_path: Path, small_feed: None
) -> None:
    """Two writers on some versions (pending, then one written, the other failed or noop):
    after trims, each version's answer is the untrimmed one, or None for every version below
    the trimmed part; the feed stays bounded, and a reader that kept an offset follows."""
    rng = random.Random(7)
    path = tmp_path / "changes.jsonl"
    feed, early = ChangeFeed(path), ChangeFeed(path)
    entries: list[dict[str, Any]] = []
    trims = 0
    for v in range(300):
        batch = [_write(v, "pending")]
        if rng.random() < 0.3:  # a second process wrote on the same version and lost
            batch.insert(1, _write(v, "pending", id=f"x{v}"))
            batch.append(_write(v, rng.choice(["failed", "noop"]), id=f"x{v}"))
        batch.insert(rng.randrange(1, len(batch) + 1), _write(v))
        for e in batch:
            inode = path.stat().st_ino if path.exists() else None
            feed.append(e)
            entries.append(e)
            trims += path.stat().st_ino != inode and inode is not None
        if v % 7 == 0:
            early.change_after(v)  # a reader with an offset into the feed as it was
        assert path.stat().st_size <= cache.FEED_TRIM_BYTES
    assert trims > 10
    header = json.loads(path.read_text().splitlines()[0])
    below = header["below"]
    assert set(header) == {"trimmed", "below"}
    assert 250 < below < 300
    for v in range(301):
        expected = _untrimmed(entries, v) if v >= below else None
        assert feed.change_after(v) == expected, v
        assert early.change_after(v) == expected, v
        assert ChangeFeed(path).change_after(v) == expected, v
    # a trim keeps about FEED_KEEP_BYTES: the last versions, each with every state
    kept = [json.loads(line) for line in path.read_text().splitlines()[1:]]
    assert [e for e in entries if e["before"] >= below] == kept
    # the loser of a trimmed version ends late: its version stays gone, not "failed"
    feed.append(_write(below - 1, "failed", id="late"))
    for reader in (feed, early, ChangeFeed(path)):
        assert reader.change_after(below - 1) is None


def test_the_module_s_feed_is_the_store_s_and_trims_as_it_grows(
    tmp_path: Path, small_feed: None
) -> None:
    record_change("sqlite:///k.db", "g0", tmp_path / "new", _write(0))  # makes its folder
    assert change_after("sqlite:///k.db", "g0", tmp_path / "new", 0) == _write(0)
    for v in range(200):
        record_change("sqlite:///k.db", "g1", tmp_path, _write(v, "pending"))
        record_change("sqlite:///k.db", "g1", tmp_path, _write(v))
    record_change("sqlite:///k.db", "g2", tmp_path, _write(0))
    assert change_after("sqlite:///k.db", "g1", tmp_path, 199) == _write(199)
    assert change_after("sqlite:///k.db", "g1", tmp_path, 0) is None  # trimmed
    assert change_after("sqlite:///k.db", "g2", tmp_path, 0) == _write(0)
    assert change_after("sqlite:///k.db", "g2", tmp_path, 1) is None
    assert sum(p.stat().st_size for p in tmp_path.glob("*.jsonl")) <= cache.FEED_TRIM_BYTES + 100
    assert not list(tmp_path.glob("*.tmp"))  # no debris from the trims


def _append_many(path: str, worker: int, workers: int, n: int, bounds: tuple[int, int]) -> None:
    """A process's writes: versions ``worker, worker + workers, ...``, pending then written."""
    cache.FEED_TRIM_BYTES, cache.FEED_KEEP_BYTES = bounds
    feed = ChangeFeed(Path(path))
    for j in range(n):
        v = worker + workers * j
        feed.append(_write(v, "pending", pad="x" * (j % 50)))
        feed.append(_write(v, pad="x" * (j % 50)))


@pytest.mark.parametrize("bounds", [(1 << 40, 1 << 20), (8192, 2048)], ids=["no trim", "trims"])
def test_processes_append_and_trim_while_one_reads(tmp_path: Path, bounds: tuple[int, int]) -> None:
    """Three processes append (and trim) as three workers do: no line is torn or lost, no
    version is split by a trim, and a reader polling throughout ends as a fresh one."""
    path = tmp_path / "changes.jsonl"
    workers, n = 3, 200
    reader, stop = ChangeFeed(path), threading.Event()

    def poll() -> None:
        while not stop.is_set():
            reader.change_after(0)

    polling = threading.Thread(target=poll)
    polling.start()
    spawn = multiprocessing.get_context("spawn")  # fork would copy this test's threads
    procs = [
        spawn.Process(target=_append_many, args=(str(path), w, workers, n, bounds))
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    stop.set()
    polling.join()
    lines = path.read_text().splitlines()
    entries = [json.loads(line) for line in lines if '"before"' in line]
    if bounds[0] > 1 << 30:  # nothing trimmed: every append is there, whole
        assert len(lines) == len(entries) == 2 * workers * n
    else:
        assert len(entries) < 2 * workers * n
        assert path.stat().st_size <= bounds[0] + 200
    header = json.loads(lines[0]) if "trimmed" in lines[0] else {"below": 0}
    states: dict[int, list[str]] = {}
    for e in entries:
        states.setdefault(e["before"], []).append(e["state"])
    # a version a trim kept has both its states; one it dropped is ignored if written again
    assert all(s == ["pending", "written"] for v, s in states.items() if v >= header["below"])
    fresh = ChangeFeed(path)
    for v in range(workers * n + 1):
        assert reader.change_after(v) == fresh.change_after(v), v


def test_a_follower_behind_the_trimmed_part_of_the_feed_rebuilds(
    tiny_market: Path, tmp_path: Path, small_feed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_a = SQLiteStore(tmp_path / "g.db")
    load_folder(tiny_market, store_a)
    a = EngineService(store_a, tmp_path / "cache")
    b = EngineService(SQLiteStore(tmp_path / "g.db"), tmp_path / "cache")
    start = b.snapshot.version
    talents = a.snapshot.features.talent_ids
    for i in range(12):  # b does not follow meanwhile: it falls behind
        written = a.flag_violation(
            violation_id=f"t-{i}",
            label="Talent",
            target=str(talents[i]),
            kind="counterfeit",
            severity="severe",
            time="2026-06-01",
        )
    uri, graph_id = store_a.uri, store_a.graph_id()
    assert change_after(uri, graph_id, tmp_path / "cache", start) is None  # trimmed
    assert change_after(uri, graph_id, tmp_path / "cache", written.version - 1) is not None
    refreshes: list[dict[str, Any]] = []
    refresh = EngineService.refresh

    def counted(self: EngineService, **kw: Any) -> Any:
        refreshes.append(kw)
        return refresh(self, **kw)

    monkeypatch.setattr(EngineService, "refresh", counted)
    b.follow(poll_seconds=0.05)
    deadline = time.monotonic() + 60
    while b.snapshot.version != written.version:
        assert time.monotonic() < deadline, "the follower did not catch up"
        time.sleep(0.02)
    # not the feed's steps from a gap: a rebuild off the write lock, which takes the features
    # another process cached since (only those are brought up by the feed)
    assert refreshes == [] and b.rebuilds == 1
    risk = b.snapshot.features.talent_risk
    assert risk.tolist() == a.snapshot.features.talent_risk.tolist()
    assert all(risk[b.snapshot.features.talent_row(str(t))] == 1.0 for t in talents[:12])
    b.close()
    a.close()


def test_storing_an_entry_sweeps_a_killed_process_s_leftovers_and_keeps_whole_stores(
    tmp_path: Path,
) -> None:
    """Temporary files older than STALE_TMP_SECONDS go (a fresh one may be being written);
    other stores' entries are kept or dropped a store at a time (two calibrations each)."""
    old, fresh = tmp_path / "tmpold.tmp", tmp_path / "tmpnew.tmp"
    for p in (old, fresh):
        p.write_bytes(b"x")
    os.utime(old, (0, time.time() - cache.STALE_TMP_SECONDS - 60))
    # four other stores with two calibrations each: CACHE_STORES - 1 = 3 of them fit
    for i, store in enumerate(("e", "a", "b", "c")):  # e used longest ago
        for v in (1, 2):
            p = tmp_path / f"calibration-{cache.CACHE_FORMAT}-{store * 24}-v{v}.npz"
            p.write_bytes(b"x")
            os.utime(p, (0, time.time() - 100 + i))
    keep = tmp_path / f"calibration-{cache.CACHE_FORMAT}-{'d' * 24}-v5.npz"
    cache._evict(tmp_path, "calibration", keep, cache.CALIBRATIONS_KEPT)
    assert not old.exists() and fresh.exists()
    left = sorted(p.name for p in tmp_path.glob("calibration-*"))
    assert len(left) == 6 and not any("eee" in n for n in left)  # e went, whole


def test_storing_an_older_version_keeps_the_newer_and_drops_the_older(tmp_path: Path) -> None:
    """Two serving processes cache versions out of order: the newest stays, and the entry
    before is dropped only once the new one is in place."""
    import dataclasses

    import numpy as np

    @dataclasses.dataclass
    class Entry:
        values: np.ndarray

    uri = "sqlite:////nowhere/g.db"

    def path(v: int) -> Path:
        return cache._cache_path(uri, tmp_path, "features", ("g", v))

    cache._store(path(3), "features", Entry(np.arange(3)))
    cache._store(path(5), "features", Entry(np.arange(5)))
    assert not path(3).exists() and path(5).exists()
    cache._store(path(4), "features", Entry(np.arange(4)))  # a slower process, an older one
    assert path(5).exists() and path(4).exists()
    cache._store(path(6), "features", Entry(np.arange(6)))
    assert sorted(p.name for p in tmp_path.glob("features-*")) == [path(6).name]
