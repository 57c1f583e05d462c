"""Smoke test of the benchmark: a tiny run produces a well-formed report (numbers not judged)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_only_generate_updates_todays_report_and_keeps_its_other_steps(tmp_path: Path) -> None:
    """``--only generate`` measures the market's generation alone (l's longest missing row)
    into today's report, whose other steps stay as an earlier run wrote them."""
    from datetime import date

    results = tmp_path / "results"
    results.mkdir()
    stem = results / f"{date.today().isoformat()}-tiny"
    kept = {"seconds": 1.5, "rows": 7, "peak_mib": 3.0, "stable": {"blocking_pairs": 0}}
    earlier = {"scale": "tiny", "date": date.today().isoformat(), "assign_kept": kept}
    stem.with_suffix(".json").write_text(json.dumps(earlier))
    argv = [sys.executable, str(ROOT / "bench" / "run.py"), "--scale", "tiny", "--from-neo4j"]
    argv += ["--work", str(tmp_path / "work"), "--results", str(results), "--only", "generate"]
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    res = json.loads(stem.with_suffix(".json").read_text())
    assert res["assign_kept"] == kept  # the earlier run's step, untouched
    gen = res["generate"]
    market = tmp_path / "work" / "market-tiny"
    lines = sum(p.read_bytes().count(b"\n") - 1 for p in market.glob("*.csv"))  # no headers
    assert gen["rows"] == lines > 10_000 and gen["peak_mib"] > 10 and gen["bytes"] > 0
    assert res["disk"]["generate"][market.name] > 0
    assert res["models"]["generate"] == MODEL_VERSION
    md = stem.with_suffix(".md").read_text().splitlines()
    (line,) = [x for x in md if x.startswith(f"| generate | {gen['rows']:,} |")]
    assert f"| {gen['peak_mib']:,.0f} |" in line  # the step's table row, its peak in it


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


@pytest.mark.neo4j
@pytest.mark.slow
def test_the_neo4j_route_reads_the_imported_store_at_every_step(tmp_path: Path) -> None:
    """``make bench SCALE=l``'s route at tiny: generate, the offline import, then features,
    plan and assign each from the imported store (a server of its own per step, its memory
    apart), no SQLite anywhere, and the footprint on disk after each step."""
    if shutil.which("java") is None or shutil.which("mvn") is None:
        msg = "the Neo4j route starts a Neo4j server of its own: it needs Java 17+ and Maven"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    env = {
        **os.environ,
        "NEO4J_HEAP": "512m",
        "NEO4J_PAGECACHE": "256m",
        "NEO4J_IMPORT_HEAP": "512m",
        "NEO4J_IMPORT_MEMORY": "512m",
    }
    work = tmp_path / "work"
    args = ["--scale", "tiny", "--from-neo4j", "--work", str(work)]
    args += ["--results", str(tmp_path / "results"), "--queries", "20", "--plans", "2"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), *args],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (js,) = (tmp_path / "results").glob("*-tiny.json")
    res = json.loads(js.read_text())
    assert "sqlite" not in res and "match" not in res and "neo4j" not in res
    imp = res["neo4j_import"]
    assert imp["rows"] == res["generate"]["rows"]
    assert imp["kolmatch_peak_mib"] > 10 and imp["neo4j_peak_mib"] > 100
    store = sum(
        f.stat().st_size for f in (work / "neo4j-import" / "data").rglob("*") if f.is_file()
    )
    assert imp["disk_peak_mib"] * 2**20 >= store  # the store, and the CSVs before it
    feats = res["neo4j_features"]
    assert feats["queries"] == 20 and 0 < feats["p50_ms"] <= feats["p99_ms"]
    assert feats["server_heap"] == "512m" and feats["server_peak_mib"] > 100
    assert res["plan"]["store"] == "neo4j" and res["plan"]["merchants"] == 2
    assert res["plan"]["max_gap"] <= 0.01 and res["plan"]["server_peak_mib"] > 100
    assert res["assign"]["store"] == "neo4j"
    assert res["assign"]["stable"]["blocking_pairs"] == 0
    assert list(res["disk"]) == ["generate", "neo4j-import", "neo4j-features", "plan", "assign"]
    assert res["disk"]["neo4j-import"]["neo4j-import"] > 0
    assert res["disk"]["plan"]["cache-neo4j"] > 0 and res["route"] == "neo4j"
    # plan and assign read the features the features step cached (one server port for the
    # run folder: the cache names its entries by the store's URI), not a build of their own
    assert len(list((work / "cache-neo4j").glob("features-*"))) == 1
    assert not (work / "neo4j-import" / "neo4j.pid").exists()  # every step stopped its server
    assert not (work / "tiny.db").exists() and not (work / "cache").exists()
    md = js.with_suffix(".md").read_text()
    assert "| talent matrix (2 merchants), read from Neo4j (imported store) |" in md
    assert "| assign (stable: stable (merchants propose)), read from Neo4j" in md
    assert "On disk after each step" in md and "| after | `cache-neo4j` |" in md
    assert "Route: Neo4j (`bench/run.py --from-neo4j`" in md
    refused = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), *args, "--only", "api"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "--only api: reads SQLite" in refused.stderr
    # the Dask bench reads the same store (its server stopped before the builds) and keeps
    # the in-process features on disk while the cluster builds: l's way
    out = tmp_path / "dask.json"
    dask = [sys.executable, str(ROOT / "bench" / "dask_features.py"), "--repeat", "1"]
    dask += ["--neo4j-run-dir", str(work / "neo4j-import"), "--spill", str(tmp_path / "spill")]
    done = subprocess.run([*dask, "--json", str(out)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    d = json.loads(out.read_text())
    assert d["store"].startswith("bolt://127.0.0.1:") and d["users"] > 0
    assert d["largest_relative_difference"] <= 1e-9
    assert d["shared_arrays"] == "mapped from one file"
    assert 0 < d["machine_used_peak_mib_dask"] <= d["machine_total_mib"]
    assert min(d["peak_rss_mb_workers"]) > 0 and d["peak_rss_mb_read"] > 0
    assert not list((tmp_path / "spill").iterdir())  # the spilled features deleted
    assert not (work / "neo4j-import" / "neo4j.pid").exists()  # its server stopped


def test_a_run_folder_keeps_its_port_past_its_last_server_s_closed_connections(
    tmp_path: Path,
) -> None:
    """The port a run folder's server had stays its own when the server's closed connections
    linger in TIME-WAIT (the server closed first, as a stopped server does): the feature cache
    names entries by the store's URI, so a moved port would rebuild the features at every
    step. A port something listens on is given up for a free one."""
    from bench.run import run_dir_port

    run_dir = tmp_path / "neo4j-import"
    port = run_dir_port(run_dir)
    assert (run_dir / "bench-port").read_text().strip() == str(port)
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        with socket.create_connection(("127.0.0.1", port)) as client:
            conn, _ = server.accept()
            conn.close()  # the server's side closes first: its end waits in TIME-WAIT
            client.recv(1)
    with socket.socket() as plain, pytest.raises(OSError):  # a plain bind says taken
        plain.bind(("127.0.0.1", port))
    assert run_dir_port(run_dir) == port
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", port))
        taken.listen()
        moved = run_dir_port(run_dir)
    assert moved != port and (run_dir / "bench-port").read_text().strip() == str(moved)
