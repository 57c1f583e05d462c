"""The columnar fast path reads what the row reader reads, or hands the file back to it."""

from __future__ import annotations

import csv
import io
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kolmatch.errors import InputError
from kolmatch.graph.model import Field, FieldType, NodeSpec, RelSpec, node_spec, rel_spec
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.graph.store import arrow_type
from kolmatch.loaders import columnar
from kolmatch.loaders.columnar import NotFast, read_tables
from kolmatch.loaders.load import Validation, load_folder
from kolmatch.loaders.reader import ProblemLog, fields_of, read_rows

# values the two readers could tell apart: signs, spaces, underscores, other scripts' digits,
# impossible dates, date-times, overflow, infinities, quotes, commas and line breaks
TRICKY: dict[FieldType, list[str]] = {
    FieldType.INT: [
        *("0", "12", "-3", "007", "+12", " 12", "12 ", "1_000", "１２", "1.0", "abc"),
        *("99999999999999999999", ""),
        # at and past the model's bounds (city_tier 1 to 5, counts 0 or more, int64's top)
        *("1", "5", "6", "-1", "9223372036854775807", "9223372036854775808"),
    ],
    FieldType.FLOAT: [
        *("1.5", "-0.0", ".5", "5.", "1e3", "1E-3", "+1", "inf", "nan", "1e999"),
        *(" 2", "1_0", "0x10", "x", ""),
        *("0", "1", "1.0", "1.0000000000000002", "-5e-324", "-5.00"),  # the bounds of 0..1
    ],
    FieldType.DATE: [
        *("2026-01-01", "2024-02-29", "2026-02-30", "2026-1-1", "0000-01-01"),
        *("2026-01-01T10:00:00", "20260101", "2026-01-01 ", ""),
    ],
    FieldType.BOOL: ["true", "True", "YES", "y", "0", "no", " true", "maybe", ""],
    FieldType.STR: ["a", "汉字", "a,b", 'q"uote', "line\nbreak", " x", "x\u3000", "\u00a0x", ""],
}
# plain values, several times as likely as tricky ones, so that files are often all plain
PLAIN: dict[FieldType, list[str]] = {
    FieldType.INT: ["0", "12", "-3", "007"],
    FieldType.FLOAT: ["1.5", ".5", "1e3", "-0.0", "7"],
    FieldType.DATE: ["2026-01-01", "2024-02-29"],
    FieldType.BOOL: ["true", "0", "No", "Y"],
    FieldType.STR: ["a", "汉字", "a,b", 'q"uote'],
}
PLAIN_IDS = ["u1", "u2", "t1", "汉"]
IDS = ["u1", "u2", "t1", "t 2", " u3", "u4 ", "u5\u2003", "", "u,6", 'u"7', "u\n8"]

SPECS: list[NodeSpec | RelSpec] = [
    node_spec("User"),
    node_spec("Talent"),  # ranges 0 or more and 0 to 1
    node_spec("Merchant"),  # the row rule min_talents <= max_talents
    node_spec("Violation"),
    rel_spec("PROMOTED"),
    rel_spec("BOOKED"),
    rel_spec("HAS_VIOLATION"),
]


def _values(spec: NodeSpec | RelSpec, tricky: bool) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, fld in fields_of(spec).items():
        if name in ("id", "src", "dst"):
            out[name] = PLAIN_IDS * 6 + IDS * tricky
        elif fld.choices:
            out[name] = [*fld.choices] * 6 + [fld.choices[0].upper(), "", "other"] * tricky
        else:
            out[name] = _plain(fld) * 6 + TRICKY[fld.type] * tricky
    return out


def _plain(fld: Field) -> list[str]:
    """Plain values of ``fld``'s type within its range (a city tier's 1 to 5, say)."""
    if fld.bounds is None:
        return PLAIN[fld.type]
    lo, hi = fld.bounds
    inside = [v for v in PLAIN[fld.type] if lo <= float(v) <= hi]
    return [*inside, str(lo), str(hi) if hi < math.inf else "5"]


@st.composite
def _file(draw: st.DrawFn) -> tuple[NodeSpec | RelSpec, str]:
    spec = draw(st.sampled_from(SPECS))
    values = _values(spec, draw(st.booleans()))
    names = [n for n in values if draw(st.booleans()) or fields_of(spec)[n].required]
    rows = draw(
        st.lists(
            st.fixed_dictionaries({n: st.sampled_from(values[n]) for n in names}),
            min_size=0,
            max_size=30,
        )
    )
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    w.writerow(names)
    w.writerows([r[n] for n in names] for r in rows)
    return spec, buf.getvalue()


def _rows_of(tables: list[Any]) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in row.items() if v is not None} for t in tables for row in t.to_pylist()
    ]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=_file(), block=st.sampled_from([256, 1024, 1 << 20]))
def test_the_fast_path_reads_what_the_row_reader_reads(
    tmp_path: Path, case: tuple[NodeSpec | RelSpec, str], block: int
) -> None:
    spec, text = case
    path = tmp_path / f"{spec.file}.csv"
    path.write_text(text, encoding="utf-8")
    log = ProblemLog()
    slow = [row for _, row in read_rows(path, spec, log)]
    tables: list[Any] = []
    try:
        for t in read_tables(path, spec, block_bytes=block):
            tables.append(t)
    except NotFast:
        # what it did yield is what the row reader yields first, in the same order
        assert _rows_of(tables) == slow[: len(_rows_of(tables))]
        return
    assert not log, f"the fast path accepted a file the row reader reports: {log.problems}"
    assert _rows_of(tables) == slow
    for t in tables:  # typed as the store expects
        for name in t.column_names:
            assert t.schema.field(name).type == arrow_type(fields_of(spec)[name].type)


def _cases() -> list[tuple[NodeSpec | RelSpec, str, str]]:
    out = []
    for spec in SPECS:
        for name, values in _values(spec, True).items():
            out += [(spec, name, v) for v in dict.fromkeys(values)]
    return out


@pytest.mark.parametrize(("spec", "column", "value"), _cases())
def test_each_tricky_value_alone(
    tmp_path: Path, spec: NodeSpec | RelSpec, column: str, value: str
) -> None:
    plain = _values(spec, False)
    names = list(plain)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(names)
    for i in range(3):
        w.writerow([value if (n == column and i == 1) else plain[n][i % 2] for n in names])
    path = tmp_path / f"{spec.file}.csv"
    path.write_text(buf.getvalue(), encoding="utf-8")
    log = ProblemLog()
    slow = [row for _, row in read_rows(path, spec, log)]
    try:
        fast = _rows_of(list(read_tables(path, spec)))
    except NotFast:
        return
    assert not log and fast == slow


def test_a_clean_market_is_read_by_the_fast_path_alone(tiny_market: Path, tmp_path: Path) -> None:
    v = Validation(tiny_market, SQLiteStore(tmp_path / "g.db"))
    rows = sum(len(b) for b in v.batches())
    assert not v.log
    assert sorted(v.fast_files) == sorted(f.path.name for f in v.files)
    assert rows == v.report.total > 0


@pytest.fixture
def folder(tiny_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    out = tmp_path / "in"
    shutil.copytree(tiny_market, out)
    monkeypatch.setattr(columnar, "BLOCK_BYTES", 4096)  # several blocks a file
    return out


def _append(path: Path, line: str) -> int:
    """Add a line at the end of ``path``; returns its line number."""
    text = path.read_text(encoding="utf-8")
    path.write_text(text + line + "\n", encoding="utf-8")
    return text.count("\n") + 1


def test_a_value_only_the_row_reader_reads_is_written_once(folder: Path, tmp_path: Path) -> None:
    follows = folder / "follows.csv"
    assert follows.stat().st_size > 3 * 4096
    # a date-time in the last block: blocks before it were yielded by the fast path
    lines = follows.read_text(encoding="utf-8").rstrip("\n").split("\n")
    src, dst, *_ = lines[-1].split(",")
    lines[-1] = f"{src},{dst},2026-03-01T08:30:00"
    follows.write_text("\n".join(lines) + "\n", encoding="utf-8")
    store = SQLiteStore(tmp_path / "g.db")
    report = load_folder(folder, store)
    assert report.rows["follows.csv"] == len(lines) - 1
    assert store.counts()["FOLLOWS"] == len(lines) - 1  # nothing written twice, nothing lost


def test_a_bad_value_in_a_later_block_is_named_by_line(folder: Path, tmp_path: Path) -> None:
    follows = folder / "follows.csv"
    line = _append(follows, "u0,t0,2026-02-30")
    store = SQLiteStore(tmp_path / "g.db")
    with pytest.raises(InputError) as info:
        load_folder(folder, store)
    (p,) = info.value.problems
    assert (p.file, p.line, p.field) == ("follows.csv", line, "since")


def test_a_duplicate_found_at_the_end_is_named_by_both_lines(folder: Path, tmp_path: Path) -> None:
    follows = folder / "follows.csv"
    second = follows.read_text(encoding="utf-8").split("\n")[1]
    src, dst = second.split(",")[:2]
    line = _append(follows, f"{src},{dst},")
    with pytest.raises(InputError) as info:
        load_folder(folder, SQLiteStore(tmp_path / "g.db"))
    (p,) = info.value.problems
    assert (p.file, p.line) == ("follows.csv", line)
    assert "duplicate relationship" in p.reason and "of line 2" in p.reason
