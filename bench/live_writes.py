"""A live market's writes (issue 18): how soon a write is served, here and on another worker.

Two engine services on one store, as ``kolmatch serve --workers 2`` runs them: one writes
(recorded collaborations, a severe violation flagged and resolved), the other follows the store
(polling its version, applying writes from the change feed). Once both have ranked every
merchant: a severe violation flagged and resolved (whether the lists were patched at once or
ranked again), then recorded collaborations. Prints each write's latency as its caller sees it
and the delay until the other worker serves that version, p50 / p95 / max.

    python bench/live_writes.py --store sqlite:///m.db --writes 20
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from kolmatch.engine.service import EngineService
from kolmatch.graph.open import open_store
from kolmatch.matching.score import match_merchant


def _stats(xs: list[float]) -> str:
    s = sorted(xs)
    p95 = s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]
    return f"p50 {s[len(s) // 2]:.3f} s, p95 {p95:.3f} s, max {s[-1]:.3f} s (n={len(s)})"


def _until(other: EngineService, version: int, t0: float) -> float:
    while other.snapshot.version < version and time.perf_counter() - t0 < 600:
        time.sleep(0.005)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True)
    p.add_argument("--cache", type=Path, default=Path(".kolmatch/bench-live"))
    p.add_argument("--writes", type=int, default=20)
    a = p.parse_args()
    t0 = time.perf_counter()
    writer = EngineService(open_store(a.store), a.cache)
    print(f"writer's first snapshot: {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    other = EngineService(open_store(a.store), a.cache)
    print(f"second worker's first snapshot (cached): {time.perf_counter() - t0:.1f} s", flush=True)
    other.follow()
    t0 = time.perf_counter()
    writer.wait_ranked(timeout=3600)
    other.wait_ranked(timeout=3600)
    print(f"every merchant ranked (both workers): {time.perf_counter() - t0:.1f} s", flush=True)
    f = writer.snapshot.features
    products = [p for p, m in writer.snapshot.product_merchant.items() if m]
    talents = [str(t) for t in f.talent_ids[:: max(f.n_talents // a.writes, 1)]]
    tag = f"bench-{int(time.time())}"
    # violations first, on ranked lists: a flag patches them (no ranking of every merchant)
    top = match_merchant(f, str(f.merchant_ids[0]), top=1)[0].talent
    for name, call in (
        (
            "flagViolation (severe, the top talent)",
            lambda: writer.flag_violation(
                violation_id=f"{tag}-v",
                label="Talent",
                target=top,
                kind="fraud",
                severity="severe",
                time="2026-11-01",
            ),
        ),
        ("resolveViolation", lambda: writer.resolve_violation(f"{tag}-v")),
    ):
        t0 = time.perf_counter()
        snap = call()
        answered = time.perf_counter() - t0
        patched = snap.rankings is not None
        print(
            f"{name}: answered {answered:.3f} s, served by the other worker "
            f"{_until(other, snap.version, t0):.3f} s, lists "
            f"{'patched at once' if patched else 'ranked again in the background'}",
            flush=True,
        )
        if not patched:
            t0 = time.perf_counter()
            writer.wait_ranked(timeout=3600)
            other.wait_ranked(timeout=3600)
            print(f"  every merchant ranked again {time.perf_counter() - t0:.1f} s later")
    lat, lag = [], []
    for i in range(a.writes):
        t0 = time.perf_counter()
        snap = writer.record_collaboration(
            collab_id=f"{tag}-{i}",
            talent=talents[i % len(talents)],
            product=products[(7 * i) % len(products)],
            gmv=5_000.0 + i,
            orders=20,
            fee=100.0,
            time="2026-11-01",
        )
        lat.append(time.perf_counter() - t0)
        lag.append(_until(other, snap.version, t0))
    print(f"recordCollaboration: answered {_stats(lat)}", flush=True)
    print(f"  served by the other worker {_stats(lag)}", flush=True)
    t0 = time.perf_counter()
    listed = match_merchant(writer.snapshot.features, str(f.merchant_ids[1]), top=20)
    print(f"a live match list (before the background ranking): {time.perf_counter() - t0:.3f} s")
    t0 = time.perf_counter()
    writer.wait_ranked(timeout=3600)
    print(f"background ranking of every merchant done {time.perf_counter() - t0:.1f} s later")
    assert listed
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS {rss:.2f} GiB (both workers in one process)")
    other.close()
    writer.close()


if __name__ == "__main__":
    main()
