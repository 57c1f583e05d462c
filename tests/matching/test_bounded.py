"""Work bounded by its request: cooperative cancellation and costing before work."""

from __future__ import annotations

import threading
import time

import pytest

from kolmatch.errors import Cancel, Cancelled, LimitExceeded
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.market import assign_market, assignment_pairs
from kolmatch.matching.plan import plan_talent_matrix


def _cancelled_after(seconds: float) -> Cancel:
    c = Cancel()
    threading.Timer(seconds, c.cancel, args=("test",)).start()
    return c


def test_a_cancelled_token_stops_a_plan_before_it_solves(tiny_features: MarketFeatures) -> None:
    c = Cancel()
    c.cancel("the request timed out")
    with pytest.raises(Cancelled, match="the request timed out"):
        plan_talent_matrix(tiny_features, "m0", budget=1e6, cancel=c)


def test_a_passed_deadline_cancels_too(tiny_features: MarketFeatures) -> None:
    with pytest.raises(Cancelled):
        plan_talent_matrix(
            tiny_features, "m0", budget=1e6, cancel=Cancel(deadline=time.monotonic() - 1)
        )


def test_an_unset_token_changes_nothing(tiny_features: MarketFeatures) -> None:
    plain = plan_talent_matrix(tiny_features, "m0", budget=1e6)
    tokened = plan_talent_matrix(tiny_features, "m0", budget=1e6, cancel=Cancel())
    assert tokened.talents == plain.talents and tokened.objective == plain.objective


@pytest.mark.parametrize("method", ["stable", "lagrangian"])
def test_assignment_loops_stop_within_a_second(s_features: MarketFeatures, method: str) -> None:
    # the loops of these methods check the token; HiGHS (milp) runs in a killable process
    c = _cancelled_after(0.3)
    t0 = time.perf_counter()
    with pytest.raises(Cancelled):
        assign_market(s_features, method=method, candidates=14, cancel=c)
    assert time.perf_counter() - t0 < 1.3


def test_a_plan_over_its_ceiling_is_refused_before_solving(tiny_features: MarketFeatures) -> None:
    with pytest.raises(LimitExceeded) as err:
        plan_talent_matrix(tiny_features, "m0", budget=1e6, max_reach=1)
    assert err.value.argument == "--candidates" and err.value.ceiling == 1
    assert err.value.figure > 1 and "reach pairs" in str(err.value)


def test_an_assignment_is_costed_before_it_is_built(tiny_features: MarketFeatures) -> None:
    pairs = assignment_pairs(tiny_features, candidates=10)
    built = assign_market(tiny_features, candidates=10)
    assert built.candidates <= pairs
    t0 = time.perf_counter()
    with pytest.raises(LimitExceeded) as err:
        assign_market(tiny_features, candidates=10, max_pairs=pairs - 1)
    assert err.value.figure == pairs and time.perf_counter() - t0 < 0.5
