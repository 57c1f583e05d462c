"""Real data held out: which talents will reach a merchant's customers, engine vs baselines.

Runs :func:`kolmatch.evaluation.real.evaluate_real` on ``../shared/data`` (twitch-follows,
twitch-it, musae-twitch-de; protocols in ``kolmatch.evaluation.real.PROTOCOLS``) and prints a
markdown table of NDCG@20 and recall@50 per data set and ranker, mean over merchants with a 95%
bootstrap interval, and each data set's run time. ``--json`` prints the full results.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from kolmatch import jsonio
from kolmatch.evaluation.real import DATASETS, SPLITS, evaluate_real, results_table

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", type=Path, default=SHARED, help="the shared/data folder")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="test", choices=SPLITS)
    p.add_argument("--weights", type=json.loads, default=None, help='JSON, e.g. {"influence": 1}')
    p.add_argument("--work", type=Path, default=None, help="keep converted folders here")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        results = evaluate_real(
            a.data,
            a.work or Path(tmp),
            datasets=a.datasets,
            seed=a.seed,
            weights=a.weights,
            split=a.split,
        )
    if a.json:
        print(jsonio.dumps(results, indent=2))
        return
    print(f"real data, split {a.split}, seed {a.seed} ({time.perf_counter() - t0:.1f} s)\n")
    print(results_table(results))


if __name__ == "__main__":
    main()
