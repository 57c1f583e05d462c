"""Match-list latency while clients send expensive plans, and CPU after a timed-out one.

Serves a store with the real app (uvicorn, loopback), then for ``--seconds``: ``--planners``
clients each send plans for the s market's slowest merchants back to back (each times out
or is refused), while one client asks for a merchant's match list every 50 ms. Prints the
match lists' p50 / p99 latency and the server's CPU in the second after the last plan's
timeout. ``--plans`` names other merchants and budgets (another market: ``m0:1e6,m9:3e5``).
Usage::

    python -m bench.bounded_work --store sqlite:////tmp/s.db --seconds 30
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import uvicorn

from kolmatch.api.app import create_app
from kolmatch.api.auth import KeyRing, Principal
from kolmatch.api.limits import Limits
from kolmatch.engine.jobs import SolverPool
from kolmatch.engine.service import EngineService
from kolmatch.graph.open import open_store

#: Plans measured at 8-38 s idle on the s market (seed 5): each outlives a 10 s timeout.
SLOW_PLANS = [("m0", 1e6), ("m167", 3e5), ("m210", 3e5), ("m135", 3e5), ("m5", 1e6)]


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--planners", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--solver-processes", type=int, default=1)
    ap.add_argument("--plans", default=None, help="merchant:budget,... (default: the s market's)")
    ap.add_argument("--reader", default="m1", help="the merchant whose match list is timed")
    a = ap.parse_args()
    plans = SLOW_PLANS
    if a.plans:
        try:
            plans = [(m, float(b)) for m, b in (x.split(":") for x in a.plans.split(","))]
        except ValueError:
            raise SystemExit(f"--plans {a.plans!r}: expected merchant:budget,...") from None

    service = EngineService(open_store(a.store), a.cache)
    ring = KeyRing({"k": Principal.parse("internal")})
    limits = Limits(timeout_s=a.timeout, rate_per_s=0, internal_rate_per_s=0)
    app = create_app(
        service, ring, production=False, limits=limits, solvers=SolverPool(a.solver_processes)
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=8765, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url, head = "http://127.0.0.1:8765/graphql", {"Authorization": "Bearer k"}
    stop = time.monotonic() + a.seconds
    codes: dict[str, int] = {}
    last_plan_end = [0.0]

    def planner(i: int) -> None:
        with httpx.Client(timeout=120) as c:
            k = i
            while time.monotonic() < stop:
                m, budget = plans[k % len(plans)]
                q = f'{{ merchant(id: "{m}") {{ plan(budget: {budget}, minRoi: 0) {{ cost }} }} }}'
                body = c.post(url, json={"query": q}, headers=head).json()
                code = body["errors"][0]["extensions"]["code"] if "errors" in body else "OK"
                codes[code] = codes.get(code, 0) + 1
                last_plan_end[0] = time.monotonic()
                k += 1

    lat: list[float] = []
    threads = [threading.Thread(target=planner, args=(i,)) for i in range(a.planners)]
    for t in threads:
        t.start()
    with httpx.Client(timeout=120) as c:
        q = f'{{ matchLists(merchantIds: ["{a.reader}"], first: 10) {{ matches {{ rank }} }} }}'
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            r = c.post(url, json={"query": q}, headers=head)
            lat.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200 and "errors" not in r.json(), r.text
            time.sleep(0.05)
    for t in threads:
        t.join()
    time.sleep(1.0)
    me = os.getpid()
    before = _cpu(me)
    time.sleep(1.0)
    idle = _cpu(me) - before
    x = np.array(lat)
    print(
        f"{a.planners} planners, {a.seconds:g} s, timeout {a.timeout:g} s, "
        f"{a.solver_processes} solver process(es), {os.cpu_count()} cores"
    )
    print(f"plan answers: {codes}")
    print(
        f"match lists: n={len(x)} p50={np.percentile(x, 50):.1f} ms "
        f"p99={np.percentile(x, 99):.1f} ms max={x.max():.1f} ms"
    )
    print(f"server CPU in the second after the last plan's answer + 1 s: {idle:.2f} s")
    server.should_exit = True


if __name__ == "__main__":
    main()
