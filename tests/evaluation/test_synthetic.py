"""The evaluation: truth scores rankings; the engine beats the anchor tools' naive ways."""

from __future__ import annotations

from pathlib import Path

import pytest

from kolmatch.evaluation.synthetic import evaluate, load_truth
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.score import DEFAULT_WEIGHTS


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


def test_issue_targets_on_the_s_market(s_features: MarketFeatures, s_market: Path) -> None:
    # the issue's targets on s: >= 80% of the oracle-best GMV, >= 1.5x the follower-count
    # baseline. Seed 5 is not the seed the weights and priors were chosen on (1); measured
    # there: engine 95.0%, followers 59.0%, 1.55x (oracle-best / followers: 1.62x)
    truth = load_truth(s_market.with_name(s_market.name + "-truth"), s_features)
    ev = evaluate(s_features, truth, k=20, merchants=300)
    assert ev.merchants == 300
    assert ev.capture["engine"] >= 0.8
    assert ev.vs_followers >= 1.5
    assert ev.vs_followers <= ev.oracle_vs_followers
    assert ev.capture["engine"] > max(v for n, v in ev.capture.items() if n != "engine")
    assert ev.hidden_need_auc > 0.75


def test_weights_reach_the_engine_ranking(tiny_features: MarketFeatures, tiny_market: Path) -> None:
    truth = load_truth(tiny_market.with_name(tiny_market.name + "-truth"), tiny_features)
    base = evaluate(tiny_features, truth, k=10, merchants=20)
    # ranking by the risk penalty alone is not the engine's ranking
    only_risk = {k: 0.0 for k in DEFAULT_WEIGHTS if k != "risk"}
    other = evaluate(tiny_features, truth, k=10, merchants=20, weights=only_risk)
    assert other.capture["engine"] < base.capture["engine"]
    assert other.capture["followers"] == base.capture["followers"]
    with pytest.raises(ValueError, match="unknown signal weights"):
        evaluate(tiny_features, truth, k=10, merchants=2, weights={"fame": 1.0})
