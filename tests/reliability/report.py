"""Render what the reliability tests tried (build/reliability.json) into docs/reliability.md.

    python -m tests.reliability.report [build/reliability.json] [docs/reliability.md]

The document's hand-written part (above the marker line) is kept; the tables
below it are regenerated from the test run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

MARKER = (
    "<!-- generated from a test run by `python -m tests.reliability.report`; do not edit below -->"
)
SECTIONS = [
    "Faults",
    "Bad input: import files",
    "Bad input: GraphQL requests",
    "Access boundaries",
    "Load",
]


def render(run: dict[str, Any]) -> str:
    """The generated part: one table per section, cases in the order the tests ran."""
    out = [
        MARKER,
        "",
        f"Run finished {run['finished']} ({'CI' if run['ci'] else 'local'}; "
        f"{run['cores']} cores, Python {run['python']}).",
        "",
    ]
    cases = _merged(run["cases"])
    names = SECTIONS + sorted({c["section"] for c in cases} - set(SECTIONS))
    for section in names:
        rows = [c for c in cases if c["section"] == section]
        if not rows:
            continue
        out += [
            f"### {section}",
            "",
            "| case | tried | outcome | measured | test |",
            "|---|---:|---|---|---|",
        ]
        for c in rows:
            where = f"`{c['test']}`"
            tried = f"{c['count']:,}" if c["count"] else "—"
            details = "; ".join(c["details"]).replace("|", "/") or ""
            what = c["what"].replace("|", "/")
            out.append(f"| {what} | {tried} | {c['outcome']} | {details} | {where} |")
        total = sum(c["count"] for c in rows)
        failed = [c for c in rows if c["outcome"] not in ("passed",)]
        out += ["", f"{total:,} cases tried; {len(failed)} not passed.", ""]
    return "\n".join(out)


def _merged(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per case and test function: a parametrized test's cases are summed."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for c in cases:
        test = c["test"].split("[")[0]
        key = (c["section"], c["what"], test)
        row = out.setdefault(key, {**c, "test": test, "count": 0, "details": []})
        row["count"] += c["count"]
        if row["outcome"] == "passed" and c["outcome"] != "passed":
            row["outcome"] = c["outcome"]
        row["details"] += [d for d in c["details"] if d not in row["details"]]
    return list(out.values())


def main(argv: list[str]) -> int:
    src = Path(argv[0] if argv else "build/reliability.json")
    doc = Path(argv[1] if len(argv) > 1 else "docs/reliability.md")
    run = json.loads(src.read_text())
    head = doc.read_text().split(MARKER)[0].rstrip() + "\n\n" if doc.exists() else ""
    doc.write_text(head + render(run))
    print(f"wrote {doc} from {src}: {len(run['cases'])} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
