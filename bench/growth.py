"""The growth forecast on held-out months of generated markets, against the naive last year.

For each seed: generate a market (``--scale``), load it into a fresh SQLite store, read its
sales by month (a merchant's: its purchases plus its live room's), hold out the last
``--holdout`` months, forecast them from the rest (kolmatch/matching/growth.py) and score the
forecast and the last-year baseline: WAPE over owner-months, over owners' held-out totals, and
the error of the market's total. ``--season-on purchases`` fits the seasonal index on the
purchases alone instead of the market's whole GMV (the report's choice), to compare.

    python bench/growth.py --scale s --seeds 1 2 3 --holdout 3
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import asdict
from pathlib import Path

from kolmatch.graph.market import GROWTH_READ, read_market
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from kolmatch.loaders.synthetic import generate_market
from kolmatch.matching.growth import backtest, monthly_gmv


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", default="s")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--holdout", type=int, default=3)
    p.add_argument("--season-on", choices=["all", "purchases"], default="all")
    a = p.parse_args()
    rows = []
    for seed in a.seeds:
        with tempfile.TemporaryDirectory() as d:
            generate_market(a.scale, seed, Path(d) / "market")
            store = SQLiteStore(Path(d) / "g.db")
            load_folder(Path(d) / "market", store)
            s = monthly_gmv(read_market(store, GROWTH_READ))
            store.close()
        market = s.merchant.sum(axis=0)
        if a.season_on == "purchases":
            market = market - s.merchant_room.sum(axis=0)
        room = float(s.merchant_room.sum() / s.merchant.sum())
        print(f"{a.scale} seed {seed}: live rooms' share of merchants' GMV {room:.1%}")
        for who, series in (("merchants", s.merchant), ("talents", s.talent)):
            b = backtest(series, s.months, a.holdout, market=market)
            rows.append(
                {
                    "scale": a.scale,
                    "seed": seed,
                    "season_on": a.season_on,
                    "room_share": room,
                    "owners": who,
                    **asdict(b),
                }
            )
            print(
                f"{a.scale} seed {seed} {who:9}: WAPE owner-months {b.forecast_wape:.3f} "
                f"(last year {b.last_year_wape:.3f}), owners' totals "
                f"{b.forecast_owner_wape:.3f} ({b.last_year_owner_wape:.3f}), market total "
                f"{b.forecast_total_error:+.3f} ({b.last_year_total_error:+.3f})"
            )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
