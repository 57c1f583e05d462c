"""The domain model and its documentation agree."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from kolmatch.graph.model import (
    INT_MAX,
    MAX_AMOUNT,
    NODES,
    RELATIONSHIPS,
    Field,
    FieldType,
    NodeSpec,
    node_spec,
    rel_spec,
    tier_of,
)
from kolmatch.graph.model import OrderedFields as R

DOC = Path(__file__).resolve().parents[2] / "docs" / "data-format.md"


def test_every_file_and_field_is_documented() -> None:
    text = DOC.read_text()
    for spec in (*NODES, *RELATIONSHIPS):
        section = text.split(f"### `{spec.file}`", 1)
        assert len(section) == 2, f"{spec.file} has no section"
        body = section[1].split("###", 1)[0]
        documented = set(re.findall(r"^\| (\w+) \| (\w+) \| (yes|no) \|", body, re.M))
        for f in spec.fields:
            assert (f.name, f.type.value, "yes" if f.required else "no") in documented, (
                spec.file,
                f.name,
            )


def test_ids_are_unique_labels_and_files() -> None:
    files = [s.file for s in (*NODES, *RELATIONSHIPS)]
    assert len(files) == len(set(files))


def test_tiers() -> None:
    assert [tier_of(x) for x in (1_000_000, 999_999, 100_000, 99_999)] == [
        "top",
        "mid",
        "mid",
        "micro",
    ]


NUMBERS = (FieldType.INT, FieldType.FLOAT)


def test_every_number_declares_its_range() -> None:
    """A numeric field added without ``low`` (and ``high`` where it has one) fails here."""
    numbers = [(s.file, f) for s in (*NODES, *RELATIONSHIPS) for f in s.fields if f.type in NUMBERS]
    assert len(numbers) > 30
    assert [f"{file}.{f.name}" for file, f in numbers if f.bounds is None] == []
    for _, f in numbers:
        lo, hi = f.bounds or (0, 0)
        assert lo <= hi and lo > -math.inf


def test_every_range_and_row_rule_is_documented() -> None:
    text = DOC.read_text()
    for spec in (*NODES, *RELATIONSHIPS):
        body = text.split(f"### `{spec.file}`", 1)[1].split("###", 1)[0]
        ranges = dict(re.findall(r"^\| (\w+) \| \w+ \| (?:yes|no) \| ([^|]*?) ?\|", body, re.M))
        for f in spec.fields:
            assert ranges[f.name] == f.range_text, (spec.file, f.name)
        for rule in spec.rules:
            assert re.search(rf"^\| {rule.second} \|.*`{rule.first}` \|$", body, re.M), (
                spec.file,
                rule,
            )


#: The float fields that are not money, each with its reason: shares are 0 to 1; watch time
#: is a duration, with no plausibility cap clearly right (as for counts, which keep INT_MAX).
NOT_MONEY = {
    "talent.commission_rate": (0.0, 1.0),
    "product.commission_rate": (0.0, 1.0),
    "engaged_with.watch_s": (0.0, math.inf),
}


def test_every_amount_of_money_is_capped_at_max_amount() -> None:
    """A float field added later is money (capped, as the API's writes are) unless listed."""
    floats = {
        f"{s.file}.{f.name}": f.bounds
        for s in (*NODES, *RELATIONSHIPS)
        for f in s.fields
        if f.type is FieldType.FLOAT
    }
    assert {k: floats[k] for k in NOT_MONEY} == NOT_MONEY
    money = {k: b for k, b in floats.items() if k not in NOT_MONEY}
    assert len(money) == 15 and set(money.values()) == {(0.0, MAX_AMOUNT)}
    counts = [f for s in (*NODES, *RELATIONSHIPS) for f in s.fields if f.type is FieldType.INT]
    assert {f.high for f in counts} == {None, 5}  # counts keep their type's cap; a city tier


def test_a_spec_names_its_fields() -> None:
    assert rel_spec("PROMOTED").field_named("gmv").range_text == "0 to 1e12"
    assert node_spec("Campaign").field_named("kpi_target").bounds == (0.0, MAX_AMOUNT)
    with pytest.raises(KeyError):
        node_spec("Campaign").field_named("id")


@pytest.mark.parametrize(
    "make",
    [
        lambda: Field("name", FieldType.STR, low=0),  # bounds on text
        lambda: Field("n", FieldType.INT, low=0.5),  # a fractional bound on an int
        lambda: Field("share", FieldType.FLOAT, low=1, high=0),  # an empty range
        lambda: Field("share", FieldType.FLOAT, high=1),  # a high bound alone
        lambda: NodeSpec("X", "x", (Field("a", FieldType.INT, low=0),), rules=(R("a", "b"),)),
        lambda: NodeSpec(
            "X",
            "x",
            (Field("a", FieldType.INT, low=0), Field("b", FieldType.DATE)),
            rules=(R("a", "b"),),  # a number against a date
        ),
    ],
)
def test_a_malformed_declaration_is_refused(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()


def test_bounds_and_their_words() -> None:
    tier = node_spec("User").fields[-1]
    assert (tier.name, tier.bounds, tier.range_text) == ("city_tier", (1, 5), "1 to 5")
    amount = rel_spec("PURCHASED").field_named("amount")
    assert amount.bounds == (0.0, MAX_AMOUNT) and amount.range_text == "0 to 1e12"
    assert Field("watch_s", FieldType.FLOAT, low=0).bounds == (0.0, math.inf)
    assert Field("n", FieldType.INT, low=0).bounds == (0, INT_MAX)
    assert R("start", "end").broken_text("2026-02-01", "2026-01-01") == (
        "end 2026-01-01 is before start 2026-02-01"
    )
