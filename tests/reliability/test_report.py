"""The reliability report renders a test run's ledger into docs/reliability.md's tables."""

from __future__ import annotations

import json
from pathlib import Path

from tests.reliability.report import MARKER, main

RUN = {
    "finished": "2026-11-30T04:00:00+00:00",
    "cores": 2,
    "python": "3.11.7",
    "ci": True,
    "cases": [
        {
            "section": "Faults",
            "what": "a | kill",
            "test": "tests/x.py::test_a[p]",
            "count": 3,
            "outcome": "passed",
            "details": ["took 1 s"],
        },
        {
            "section": "Faults",
            "what": "a | kill",
            "test": "tests/x.py::test_a[q]",
            "count": 2,
            "outcome": "passed",
            "details": ["took 1 s", "again"],
        },
        {
            "section": "Load",
            "what": "soak",
            "test": "tests/y.py::test_b",
            "count": 1200,
            "outcome": "failed",
            "details": [],
        },
    ],
}


def test_the_report_keeps_the_prose_and_regenerates_the_tables(tmp_path: Path) -> None:
    src, doc = tmp_path / "run.json", tmp_path / "reliability.md"
    src.write_text(json.dumps(RUN))
    doc.write_text(f"# Reliability\n\nProse.\n\n{MARKER}\n\nold tables\n")
    assert main([str(src), str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("# Reliability\n\nProse.\n\n" + MARKER) and "old tables" not in text
    assert "| a / kill | 5 | passed | took 1 s; again | `tests/x.py::test_a` |" in text
    assert "| soak | 1,200 | failed |  | `tests/y.py::test_b` |" in text
    assert "1,200 cases tried; 1 not passed." in text
    assert "CI; 2 cores" in text
    assert main([str(src), str(doc)]) == 0 and doc.read_text() == text  # idempotent
