"""The domain model and its documentation agree."""

from __future__ import annotations

import re
from pathlib import Path

from kolmatch.graph.model import NODES, RELATIONSHIPS, tier_of

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
