"""bench/bulk_load.py: the delta it writes is a day's new rows, and two real server processes
serve the load while readers read and a writer writes (issue 18)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.bulk_load import write_delta
from kolmatch.graph.market import ReadSpec, read_market
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder

ROOT = Path(__file__).resolve().parents[2]
EDGES = ReadSpec({"User": ()}, {("FOLLOWS", "User"): (), ("PURCHASED", "User"): ()})


def test_the_delta_is_new_rows_a_load_adds(tiny_market: Path, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    load_folder(tiny_market, store)
    g = read_market(store, EDGES)
    follows, purchases = len(g.edge("FOLLOWS", "User")), len(g.edge("PURCHASED", "User"))
    rows = write_delta(store.uri, tmp_path / "delta", 0.05)
    assert rows == {"follows": round(0.05 * follows), "purchased": round(0.05 * purchases)}
    assert sorted(p.name for p in (tmp_path / "delta").iterdir()) == [
        "follows.csv",
        "purchased.csv",
    ]
    load_folder(tmp_path / "delta", store)
    after = read_market(store, EDGES)
    assert len(after.edge("FOLLOWS", "User")) == follows + rows["follows"]  # none held before
    assert len(after.edge("PURCHASED", "User")) == purchases + rows["purchased"]
    store.close()


def test_two_workers_serve_a_bulk_load_and_keep_answering(
    tiny_market: Path, tmp_path: Path
) -> None:
    db = tmp_path / "t.db"
    store = SQLiteStore(db)
    load_folder(tiny_market, store)
    store.close()
    args = ["--store", f"sqlite:///{db}", "--cache", str(tmp_path / "cache"), "--workers", "2"]
    args += ["--clients", "8", "--write-interval", "0.3", "--share", "0.05", "--warmup", "2"]
    args += ["--tail", "2", "--timeout", "300", "--start-timeout", "300", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.bulk_load", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["errors"] == [] and out["server"] == []
    assert out["served"] and out["served_after_s"] < 120  # both workers serve the load
    assert out["writes_answered"] > 0 and out["reads_during"] > 0
