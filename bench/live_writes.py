"""A live market's writes (issue 18): how soon a write is served, here and on another worker.

Two engine services on one store, as ``kolmatch serve --workers 2`` runs them: each in its own
process (its own interpreter and lock, as uvicorn's workers are). One writes; the other
follows the store (polling its version, applying writes from the change feed) and reports
each version it starts serving. Once both have ranked every merchant: ``--flags`` severe
violations flagged against the top talent of a merchant and each resolved (whether the lists
were patched at once or are ranked again behind), then ``--writes`` recorded collaborations.
Prints each write's latency as its caller sees it and the delay until the other worker
serves that version, p50 / p95 / max. Then ``--ranked-after`` collaborations more, each
waited on until the writer serves its version ranked again (match lists lookups again: the
lists patched for the talent, or every merchant ranked, after the ranking's quiet second), and
how many of those were patched. Both workers settle their snapshots' objects as the server's
do (``EngineService(settle=True)``).

    python bench/live_writes.py --store sqlite:////tmp/m.db --flags 10 --writes 20
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import queue
import resource
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from kolmatch.engine.service import EngineService, Snapshot
from kolmatch.graph.open import open_store
from kolmatch.matching.score import match_merchant


def _stats(xs: list[float]) -> str:
    s = sorted(xs)
    p95 = s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]
    return f"p50 {s[len(s) // 2]:.3f} s, p95 {p95:.3f} s, max {s[-1]:.3f} s (n={len(s)})"


def _other_worker(store: str, cache: Path, out: Any, stop: Any) -> None:
    """The second worker: serve, follow, and report (version, monotonic time) of each swap."""
    svc = EngineService(open_store(store), cache, settle=True)
    svc.wait_ranked(timeout=3600)
    svc.follow()
    seen = svc.snapshot.version
    out.put(("ready", seen, time.monotonic()))
    while not stop.is_set():
        v = svc.snapshot.version
        if v != seen:
            out.put(("served", v, time.monotonic()))
            seen = v
        time.sleep(0.002)
    svc.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    out.put(("peak", peak, time.monotonic()))


class _Other:
    """The parent's view of the other worker's reports."""

    def __init__(self, q: Any, proc: Any) -> None:
        self.q, self.proc, self.version = q, proc, -1

    def get(self, timeout: float) -> tuple[str, Any, float]:
        """The next report; exits if the worker died first or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                kind, value, at = self.q.get(timeout=1.0)
                return str(kind), value, float(at)
            except queue.Empty:
                if not self.proc.is_alive():
                    raise SystemExit(
                        f"the other worker exited (code {self.proc.exitcode})"
                    ) from None
                if time.monotonic() > deadline:
                    raise SystemExit(f"the other worker sent nothing for {timeout:g} s") from None

    def served_after(self, version: int, t0: float) -> float:
        """Seconds from ``t0`` (monotonic) until the other worker served ``version``."""
        at = time.monotonic()
        while self.version < version:
            _, self.version, at = self.get(timeout=600)
        return max(at - t0, 0.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True)
    p.add_argument("--cache", type=Path, default=Path(".kolmatch/bench-live"))
    p.add_argument("--flags", type=int, default=10)
    p.add_argument("--writes", type=int, default=20)
    p.add_argument("--ranked-after", type=int, default=5)
    a = p.parse_args()
    t0 = time.perf_counter()
    writer = EngineService(open_store(a.store), a.cache, settle=True)
    writer.wait_ranked(timeout=3600)
    print(
        f"writer's first snapshot, every merchant ranked: {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    t0 = time.perf_counter()
    ctx = mp.get_context("spawn")
    reports, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_other_worker, args=(a.store, a.cache, reports, stop))
    proc.start()
    other = _Other(reports, proc)
    kind, version, _ = other.get(timeout=3600)
    assert kind == "ready" and version == writer.snapshot.version, (kind, version)
    other.version = version
    print(
        f"second worker's first snapshot (cached), a process: {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    f = writer.snapshot.features
    if a.flags > len(f.merchant_ids):
        raise SystemExit(f"--flags {a.flags}: the market has {len(f.merchant_ids)} merchants")
    tag = f"bench-{int(time.time())}"
    timings: dict[str, list[float]] = {}
    ranked_again = 0
    for i in range(a.flags):
        # the top talent of merchant i, on ranked or live lists: a severe flag excludes it
        top = match_merchant(writer.snapshot.features, str(f.merchant_ids[i]), top=1)[0].talent
        vid = f"{tag}-v{i}"
        flag = partial(
            writer.flag_violation,
            violation_id=vid,
            label="Talent",
            target=top,
            kind="fraud",
            severity="severe",
            time="2026-11-01",
        )
        resolve = partial(writer.resolve_violation, vid)
        calls: tuple[tuple[str, Callable[[], Snapshot]], ...] = (
            ("flagViolation", flag),
            ("resolveViolation", resolve),
        )
        for name, call in calls:
            t0 = time.monotonic()
            snap = call()
            timings.setdefault(f"{name}: answered", []).append(time.monotonic() - t0)
            timings.setdefault(f"{name}: served by the other worker", []).append(
                other.served_after(snap.version, t0)
            )
            ranked_again += snap.rankings is None
    lat, lag = [], []
    talents = [str(t) for t in f.talent_ids[:: max(f.n_talents // max(a.writes, 1), 1)]]
    products = [p for p, m in writer.snapshot.product_merchant.items() if m]
    for i in range(a.writes):
        t0 = time.monotonic()
        snap = writer.record_collaboration(
            collab_id=f"{tag}-{i}",
            talent=talents[i % len(talents)],
            product=products[(7 * i) % len(products)],
            gmv=5_000.0 + i,
            orders=20,
            fee=100.0,
            time="2026-11-01",
        )
        lat.append(time.monotonic() - t0)
        lag.append(other.served_after(snap.version, t0))
    timings["recordCollaboration: answered"] = lat
    timings["recordCollaboration: served by the other worker"] = lag
    writer.wait_ranked(timeout=3600)
    patched = writer.rankings_patched
    for i in range(a.ranked_after):
        t0 = time.monotonic()
        snap = writer.record_collaboration(
            collab_id=f"{tag}-r{i}",
            talent=talents[(3 * i + 1) % len(talents)],
            product=products[(11 * i + 3) % len(products)],
            gmv=50_000.0 * (i + 1),
            orders=200,
            fee=100.0,
            time="2026-11-02",
        )
        while writer.snapshot.version == snap.version and writer.snapshot.rankings is None:
            time.sleep(0.01)
        timings.setdefault("recordCollaboration: served ranked again", []).append(
            time.monotonic() - t0
        )
    print(
        f"of {a.ranked_after} collaborations, rankings patched after "
        f"{writer.rankings_patched - patched} (the rest: every merchant ranked)"
    )
    for name, xs in timings.items():
        if xs:
            print(f"{name}: {_stats(xs)}", flush=True)
    print(f"writes after which lists were ranked again behind (live meanwhile): {ranked_again}")
    t0 = time.perf_counter()
    listed = match_merchant(writer.snapshot.features, str(f.merchant_ids[1]), top=20)
    print(f"a live match list (before the background ranking): {time.perf_counter() - t0:.3f} s")
    assert listed
    stop.set()
    while True:
        kind, value, _ = other.get(timeout=120)
        if kind == "peak":
            break
    proc.join(timeout=120)
    writer.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS: writer {rss:.2f} GiB, other worker {value:.2f} GiB")


if __name__ == "__main__":
    main()
