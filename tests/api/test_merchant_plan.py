"""The GraphQL plan: a return floor (minRoi), max_talents, ROI net of commission, what is left."""

from __future__ import annotations

from tests.api.conftest import Api

PLAN = (
    'query($floor: Float) { merchant(id: "m7") { plan(budget: 2000000, minRoi: $floor) { '
    "cost budget roi commission commissionRate minRoi maxTalents unspent unspentNote "
    "unspentReasons { reason count } stopped reproducible leftOut { reason count } "
    "talents { fee expectedGmv commission roi } } } }"
)


def test_plans_state_their_floor_and_what_they_left(api: Api) -> None:
    plan = api.data(PLAN)["merchant"]["plan"]
    assert plan["minRoi"] == 1.0 and plan["reproducible"] and plan["stopped"] != "time limit"
    assert 0 < len(plan["talents"]) <= plan["maxTalents"]
    assert all(t["roi"] >= 1.0 for t in plan["talents"])
    rate = plan["commissionRate"]
    for t in plan["talents"]:
        assert abs(t["commission"] - rate * t["expectedGmv"]) <= 0.01
    assert abs(plan["unspent"] - (plan["budget"] - plan["cost"])) < 1e-6
    assert plan["unspent"] >= 0.5  # m7 takes at most 6 talents: ¥2M is more than they cost
    assert plan["unspentNote"].startswith(f"¥{plan['unspent']:,.0f} unspent: ")
    if "no further eligible talent costs" not in plan["unspentNote"]:
        assert sum(r["count"] for r in plan["unspentReasons"]) > 0


def test_a_higher_floor_is_met_and_a_negative_one_refused(api: Api) -> None:
    plan = api.data(PLAN, variables={"floor": 2.5})["merchant"]["plan"]
    assert plan["minRoi"] == 2.5 and all(t["roi"] >= 2.5 - 1e-4 for t in plan["talents"])
    assert any(r["reason"] == "return below 2.5x" for r in plan["leftOut"])
    errs = api.errors(PLAN, variables={"floor": -1})
    assert errs[0]["extensions"]["code"] == "BAD_ARGUMENT"
    assert errs[0]["message"].startswith("argument minRoi:"), errs  # the API's name, not a flag
    for arg, args in (("budget", "budget: 0"), ("tiers", 'budget: 1e6, tiers: "x=3"')):
        q = f'{{ merchant(id: "m0") {{ plan({args}) {{ cost }} }} }}'
        errs = api.errors(q)
        assert errs[0]["extensions"]["code"] == "BAD_ARGUMENT", errs
        assert errs[0]["message"].startswith(f"argument {arg}:"), errs
