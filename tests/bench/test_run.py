"""Smoke test of the benchmark: a tiny run produces a well-formed report (numbers not judged)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kolmatch.loaders.synthetic import MODEL_VERSION

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_benchmark_writes_its_report(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "--scale",
            "tiny",
            "--no-neo4j",
            "--work",
            str(tmp_path / "work"),
            "--results",
            str(tmp_path / "results"),
            "--api-seconds",
            "2",
            "--clients",
            "4",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (js,) = (tmp_path / "results").glob("*-tiny.json")
    res = json.loads(js.read_text())
    assert res["machine"]["cores"] >= 1 and "networkx" in res["machine"]["packages"]
    assert res["generate"]["rows"] > 10_000 and res["generate"]["seconds"] > 0
    assert res["sqlite"]["rows"] == res["generate"]["rows"]
    assert res["sqlite"]["reload_same_counts"] is True
    assert res["sqlite"]["peak_mib"] > 10
    assert set(res["models"]) >= {"generate", "sqlite", "match", "assign"}
    assert set(res["models"].values()) == {MODEL_VERSION}
    assert res["match"]["queries"] == 200
    assert 0 < res["match"]["p50_ms"] <= res["match"]["p99_ms"]
    plan = res["plan"]
    assert plan["merchants"] == 5 and plan["max_gap"] <= 0.01
    assert plan["objective_vs_full"] > 0 and plan["reach_vs_followers"] > 0
    assert res["assign"]["auto"]["gap"] <= 0.01 and res["assign"]["stable"]["blocking_pairs"] == 0
    c = res["centrality"]
    assert c["edges"] > 0 and c["max_diff_networkx"] < 1e-4 and c["max_diff_igraph"] < 1e-3
    api = res["api"]
    assert api["paced"]["requests"] > 0 and api["paced"]["errors"] == 0
    assert api["saturated"]["p50_ms"] <= api["saturated"]["p99_ms"]
    md = js.with_suffix(".md").read_text()
    assert md.startswith("# kolmatch benchmark: scale tiny") and "| load SQLite |" in md
    assert "| talent matrix (5 merchants) |" in md and "| assign (stable:" in md


def test_pagerank_runs_alone_over_the_baseline_graph_size(
    tiny_market: Path, tmp_path: Path
) -> None:
    """At l the follow graph (~88M edges) would not fit in networkx's or igraph's Python
    graphs: over ``baseline_edges`` kolmatch's solver runs alone, and the report says why."""
    from bench.run import _md, bench_centrality, machine
    from kolmatch.graph.sqlite_store import SQLiteStore
    from kolmatch.loaders.load import load_folder

    db = tmp_path / "t.db"
    store = SQLiteStore(db)
    load_folder(tiny_market, store)
    store.close()
    alone = bench_centrality(db, baseline_edges=0)
    assert alone["edges"] > 0 and alone["kolmatch_s"] > 0 and alone["baselines"] is False
    assert "networkx_s" not in alone
    both = bench_centrality(db, baseline_edges=alone["edges"])
    assert both["baselines"] is True and both["max_diff_igraph"] < 1e-3
    res = {"scale": "tiny", "date": "2026-12-03", "machine": machine(), "centrality": alone}
    (line,) = [x for x in _md(res).splitlines() if x.startswith("| PageRank")]
    assert "kolmatch alone: networkx and igraph are not run over 0 edges" in line
    res["centrality"] = both
    (line,) = [x for x in _md(res).splitlines() if x.startswith("| PageRank")]
    assert "vs networkx" in line
