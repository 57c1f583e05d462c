"""The evaluation: truth scores rankings; the engine beats the anchor tools' naive ways."""

from __future__ import annotations

from pathlib import Path

from kolmatch.matching.evaluate import evaluate, load_truth
from kolmatch.matching.features import MarketFeatures


def test_engine_beats_category_baseline_on_tiny(
    tiny_features: MarketFeatures, tiny_market: Path
) -> None:
    truth = load_truth(tiny_market.with_name(tiny_market.name + "-truth"), tiny_features)
    ev = evaluate(tiny_features, truth, k=10, merchants=20)
    assert ev.merchants == 20
    assert all(0.0 <= v <= 1.0 + 1e-9 for v in ev.capture.values())
    assert ev.capture["engine"] > ev.capture["category+followers"]
    assert ev.capture["engine"] > ev.capture["engagement_rate"]
    assert ev.capture["engine"] > 0.6
    assert ev.hidden_need_auc > 0.6
