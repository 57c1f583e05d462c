"""bench/consistency.py: two real server processes, paced readers and two writers sending at the
same moments; every write makes a version of its own and every answer reflects the writes
answered more than a second before it (issue 18, step 3)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.consistency import Log, staleness
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder

ROOT = Path(__file__).resolve().parents[2]


def test_staleness_counts_from_the_first_write_a_read_does_not_reflect() -> None:
    log = Log(writes=[("a", 0.0, 1.0, 5), ("b", 1.0, 2.0, 6), ("c", 2.0, 3.0, 7)])
    log.reads = [
        (0.0, 0.9, 4),  # before any write was answered
        (0.0, 2.5, 4),  # behind both answered writes: from the first
        (2.0, 3.5, 6),  # behind c only
        (3.0, 3.1, 7),  # current
        (3.0, 3.2, 9),  # newer than any write this client saw (another's): not stale
    ]
    assert [round(s, 3) for s in staleness(log)] == [0.0, 1.5, 0.5, 0.0, 0.0]


def test_two_workers_serve_every_write_within_a_second(tiny_market: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    store = SQLiteStore(db)
    load_folder(tiny_market, store)
    store.close()
    args = ["--store", f"sqlite:///{db}", "--cache", str(tmp_path / "cache"), "--workers", "2"]
    args += ["--clients", "10", "--writes", "9", "--write-interval", "0.3", "--flag-every", "4"]
    args += ["--writers", "2"]  # writes at once, to either worker: each its own version
    args += ["--warmup", "1", "--json", "--start-timeout", "300"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.consistency", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["errors"] == []
    assert out["writes"] == {"flagViolation": 2, "resolveViolation": 2, "recordCollaboration": 5}
    feed = [
        json.loads(line)
        for path in (tmp_path / "cache").glob("changes-*.jsonl")
        for line in path.read_text().splitlines()
    ]
    # each write made a version of its own (the feed's: a write answers the version it made,
    # or a later one when the other worker's write landed right after and it served both)
    made = sorted(e["after"] for e in feed if e.get("state") == "written" and "id" in e)
    assert len(made) == len(set(made)) == 9
    # the versions no write made are recalibrations (tiny: 5 collaborations of 113 take the
    # collaborations on record past RECALIBRATE_SHARE), each written once, by one worker
    calibrations = [e["after"] for e in feed if e.get("kind") == "calibration" and "after" in e]
    assert len(calibrations) == len(set(calibrations))
    assert set(range(made[0], made[-1] + 1)) - set(made) <= set(calibrations)
    versions = out["write_versions"]
    assert len(versions) == 9 and set(versions) <= set(made) | set(calibrations)
    assert out["reads"] > 50 and out["versions_read"] >= 5
    assert out["stale_beyond_bound"] == 0 and out["max_staleness_s"] <= 1.0
