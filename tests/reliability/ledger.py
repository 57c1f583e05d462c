"""What the reliability tests tried, recorded as they run, for docs/reliability.md.

A test asks for the ``ledger`` fixture and says what it tries::

    def test_x(ledger):
        case = ledger.case("Faults", "SQLite load killed with SIGKILL mid-transaction")
        case.tried()          # once per case tried (property tests: once per example)

The session's outcome of each test (passed / failed / skipped) is joined to its
entries when the session ends, and the whole is written as JSON to
``$KOLMATCH_RELIABILITY_JSON`` (default ``build/reliability.json``);
``python -m tests.reliability.report`` renders it into docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["LEDGER", "Case", "Ledger"]


@dataclass
class Case:
    """One kind of fault, bad input, boundary or load, as one test tries it."""

    section: str
    what: str
    test: str
    count: int = 0
    outcome: str = "not run"
    details: list[str] = field(default_factory=list)

    def tried(self, n: int = 1) -> None:
        """Count ``n`` more cases tried."""
        self.count += n

    def note(self, text: str) -> None:
        """A measured figure or detail to show beside the case."""
        self.details.append(text)


@dataclass
class Ledger:
    """Every case of the session, by test id."""

    cases: list[Case] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)

    def case(self, section: str, what: str, test: str) -> Case:
        for c in self.cases:
            if (c.section, c.what, c.test) == (section, what, test):
                return c
        c = Case(section, what, test)
        self.cases.append(c)
        return c

    def write(self, root: Path) -> Path | None:
        if not self.cases:
            return None
        for c in self.cases:
            c.outcome = self.outcomes.get(c.test, "not run")
        path = Path(os.environ.get("KOLMATCH_RELIABILITY_JSON") or root / "build/reliability.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        run = {
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "ci": os.environ.get("CI", "").lower() == "true",
            "cases": [asdict(c) for c in self.cases],
        }
        path.write_text(json.dumps(run, indent=1) + "\n")
        return path


LEDGER = Ledger()


class TestLedger:
    """The fixture's face: the ledger bound to one test."""

    __test__ = False  # not a test class

    def __init__(self, test: str) -> None:
        self.test = test

    def case(self, section: str, what: str) -> Case:
        return LEDGER.case(section, what, self.test)
