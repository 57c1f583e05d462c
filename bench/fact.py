"""The FACT split against everything to Alliance (today's plan) and an equal four-way split.

For each seed: generate a market (``--scale``), load it into a fresh SQLite store, build the
features and the split's inputs (kolmatch/matching/fact.py), and for merchants with a live
room (at most ``--merchants`` per seed, every eligible one in id order by default), at the
merchant's own stated budget, compare the TRUE expected GMV in the coming 30 days of:

- ``fact``: the FACT split;
- ``alliance``: today's plan (``plan_talent_matrix``, the whole budget on talents);
- ``equal``: each channel capped at a quarter of the budget, spent by the same greedy.

True GMV: Field's extra sessions from the generator's latent room parameters
(``live_rooms.npz``: followers x reach x conversion x price x sessions^(1 - fatigue) x the
market's activity in the window, from the generator's own formula, extended past the history
with its campaign calendar), less what the room's current rate already sells; a talent's from
the features' expected GMV for the merchant (x (1 - risk)), as plans count it, and for a
campaign collaboration x the generator's CAMPAIGN_LIFT (the split itself uses the lift it
measured). The talents' part is therefore the model's own estimate: the bench measures the
allocation, and Field's fit against the truth, not the talent GMV model (docs/scoring.md).

    python bench/fact.py --scale s --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from kolmatch.engine.cache import features_of
from kolmatch.errors import InfeasiblePlan
from kolmatch.graph.market import FACT_READ, read_market
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from kolmatch.loaders.synthetic import (
    CALENDAR,
    CAMPAIGN_LIFT,
    DAYS,
    MARKET_GROWTH,
    SEASON,
    START,
    generate_market,
)
from kolmatch.matching.fact import FactInputs, FactSplit, fact_inputs, fact_split
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.plan import plan_talent_matrix

#: The generator's sessions' noise has mean e^0.02 on GMV (viewers' noise has mean ~1).
GMV_NOISE_MEAN = float(np.exp(0.02))


def true_level(day: date) -> float:
    """The generator's market activity on ``day`` per average day of its history."""

    def raw(d: date) -> float:
        k = (d - START).days
        inside = any(date.fromisoformat(a) <= d <= date.fromisoformat(b) for _, a, b in CALENDAR)
        return (
            (1 + MARKET_GROWTH) ** (k / 365.0)
            * SEASON[d.month - 1]
            * (CAMPAIGN_LIFT if inside else 1.0)
        )

    z = sum(raw(START + timedelta(days=i)) for i in range(DAYS))
    return raw(day) * DAYS / z


def true_field(truth: Any, row: int, level: float, days: int, added: int) -> float:
    """True extra GMV of ``added`` sessions over the room's current rate in a window."""
    if not truth["room"][row] or added == 0:
        return 0.0
    per = (
        truth["followers"][row]
        * truth["reach"][row]
        * truth["conversion"][row]
        * truth["price"][row]
        * GMV_NOISE_MEAN
        * level
    )
    n0 = truth["rate"][row] * days / 30.0

    def sold(n: float) -> float:
        return float(per * n * (n * 30.0 / days) ** -truth["fatigue"][row]) if n > 0 else 0.0

    return sold(n0 + added) - sold(n0)


def true_split(s: FactSplit, truth: Any, row: int, level: float, days: int) -> float:
    out = true_field(truth, row, level, days, s.channel("field").sessions_added)
    for c in s.channels:
        for t in c.talents:
            if t.campaign is None:
                out += t.expected_gmv
            else:  # the split's measured lift, replaced by the generator's
                out += t.expected_gmv / s.campaign_lift * CAMPAIGN_LIFT
    return out


def run(f: MarketFeatures, inputs: FactInputs, truth: Any, limit: int | None) -> dict[str, Any]:
    start = f.today + timedelta(days=1)
    days = 30
    level = float(np.mean([true_level(start + timedelta(days=i)) for i in range(days)]))
    rows: list[dict[str, Any]] = []
    t_fact = t_plan = 0.0
    for m, mid in enumerate(f.merchant_ids):
        row = int(str(mid)[1:])
        if not truth["room"][row] or f.merchant_risk[m] >= 1:
            continue
        if limit is not None and len(rows) >= limit:
            break
        budget = float(f.merchant_budget[m]) if np.isfinite(f.merchant_budget[m]) else 150_000.0
        kw: dict[str, Any] = {
            "budget": budget,
            "field_model": inputs.field_model,
            "lift": inputs.lift,
            "campaign_products": inputs.campaign_products,
            "event_days": inputs.event_days,
        }
        t0 = time.perf_counter()
        split = fact_split(f, str(mid), **kw)
        t_fact += time.perf_counter() - t0
        equal = fact_split(
            f,
            str(mid),
            shares=dict.fromkeys(("field", "alliance", "campaign", "top_kol"), 0.25),
            **kw,
        )
        t0 = time.perf_counter()
        try:
            plan = plan_talent_matrix(f, str(mid), budget=budget)
            alliance = plan.expected_gmv
            alliance_cost = plan.cost
        except InfeasiblePlan:
            alliance, alliance_cost = 0.0, 0.0
        t_plan += time.perf_counter() - t0
        rows.append(
            {
                "merchant": str(mid),
                "budget": budget,
                "fact": true_split(split, truth, row, level, days),
                "fact_spent": split.spent,
                "fact_field": split.channel("field").spend,
                "fact_campaign": split.channel("campaign").spend,
                "fact_top": split.channel("top_kol").spend,
                "equal": true_split(equal, truth, row, level, days),
                "alliance": alliance,
                "alliance_spent": alliance_cost,
            }
        )
    fact = np.array([r["fact"] for r in rows])
    alliance = np.array([r["alliance"] for r in rows])
    equal = np.array([r["equal"] for r in rows])
    return {
        "merchants": len(rows),
        "true_gmv_fact": float(fact.sum()),
        "true_gmv_alliance": float(alliance.sum()),
        "true_gmv_equal": float(equal.sum()),
        "uplift_vs_alliance_total": float(fact.sum() / alliance.sum() - 1),
        "uplift_vs_equal_total": float(fact.sum() / equal.sum() - 1),
        "mean_uplift_vs_alliance": float(np.mean(fact / np.maximum(alliance, 1.0) - 1)),
        "median_uplift_vs_alliance": float(np.median(fact / np.maximum(alliance, 1.0) - 1)),
        "median_uplift_vs_equal": float(np.median(fact / np.maximum(equal, 1.0) - 1)),
        "fact_beats_equal": float(np.mean(fact >= equal)),
        "fact_beats_alliance": float(np.mean(fact >= alliance)),
        "with_field_spend": int(sum(r["fact_field"] > 0 for r in rows)),
        "with_campaign_spend": int(sum(r["fact_campaign"] > 0 for r in rows)),
        "with_top_spend": int(sum(r["fact_top"] > 0 for r in rows)),
        "spent_fact": float(sum(r["fact_spent"] for r in rows)),
        "spent_alliance": float(sum(r["alliance_spent"] for r in rows)),
        "seconds_per_split": t_fact / max(len(rows), 1),
        "seconds_per_plan": t_plan / max(len(rows), 1),
    }


def exponent_error(f: MarketFeatures, inputs: FactInputs, truth: Any) -> dict[str, float]:
    rows = np.array([int(str(m)[1:]) for m in f.merchant_ids])
    room = truth["room"][rows]
    b = inputs.field_model.exponent[room]
    true_b = 1 - truth["fatigue"][rows][room]
    return {
        "rooms": int(room.sum()),
        "exponent_mae": float(np.abs(b - true_b).mean()),
        "exponent_corr": float(np.corrcoef(b, true_b)[0, 1]),
        "pooled_mae": float(np.abs(inputs.field_model.pooled_exponent - true_b).mean()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", default="s")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--merchants", type=int, default=None, help="most merchants per seed")
    a = p.parse_args()
    out = []
    for seed in a.seeds:
        with tempfile.TemporaryDirectory() as d:
            generate_market(a.scale, seed, Path(d) / "market")
            store = SQLiteStore(Path(d) / "g.db")
            load_folder(Path(d) / "market", store)
            f = features_of(store)
            inputs = fact_inputs(read_market(store, FACT_READ), f)
            store.close()
            truth = dict(np.load(Path(d) / "market-truth" / "live_rooms.npz"))
        res = {"seed": seed, "lift": inputs.lift, **exponent_error(f, inputs, truth)}
        res.update(run(f, inputs, truth, a.merchants))
        print(json.dumps(res), flush=True)
        out.append(res)


if __name__ == "__main__":
    main()
