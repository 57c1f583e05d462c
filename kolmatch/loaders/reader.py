"""Read and type-check one import file (CSV with a header, or JSONL), reporting problems by line."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from kolmatch.errors import InputProblem
from kolmatch.graph.model import (
    INT_MAX,
    Field,
    FieldType,
    NodeSpec,
    OrderedFields,
    RelSpec,
    latest_today,
    past_day_problem,
    past_days,
)

__all__ = [
    "MAX_FIELD_CHARS",
    "MAX_PROBLEMS_PER_FILE",
    "ProblemLog",
    "Row",
    "check_header",
    "columns_of",
    "fields_of",
    "out_of_range",
    "read_rows",
]

#: How many problems one file lists before the rest are only counted.
MAX_PROBLEMS_PER_FILE = 20
#: Longest field accepted, in characters (a guard against runaway quoting).
MAX_FIELD_CHARS = 100_000

Row = dict[str, Any]
Spec = NodeSpec | RelSpec

csv.field_size_limit(MAX_FIELD_CHARS + 1)


@dataclass
class ProblemLog:
    """Problems found so far, listed up to a cap per file and counted past it."""

    cap: int = MAX_PROBLEMS_PER_FILE
    problems: list[InputProblem] = field(default_factory=list)
    truncated: int = 0
    _per_file: dict[str, int] = field(default_factory=dict)

    def add(self, file: str, line: int, fld: str, reason: str) -> None:
        n = self._per_file.get(file, 0)
        self._per_file[file] = n + 1
        if n < self.cap:
            self.problems.append(InputProblem(file, line, fld, reason))
        else:
            self.truncated += 1

    def count(self, file: str) -> int:
        return self._per_file.get(file, 0)

    def __bool__(self) -> bool:
        return bool(self.problems) or self.truncated > 0


def columns_of(spec: Spec) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return the (required, optional) column names of a spec's import file.

    Examples
    --------
    >>> from kolmatch.graph.model import rel_spec
    >>> columns_of(rel_spec("FOLLOWS"))
    (('src', 'dst'), ('since',))
    """
    if isinstance(spec, NodeSpec):
        base: tuple[str, ...] = ("id",)
    else:
        base = ("src_label", "src", "dst") if spec.polymorphic else ("src", "dst")
    required = base + tuple(f.name for f in spec.fields if f.required)
    optional = tuple(f.name for f in spec.fields if not f.required)
    return required, optional


_ID_COLS = frozenset(("id", "src", "dst"))
_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n"}


def _to_int(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if v.is_integer():
            return int(v)
        raise ValueError
    return int(str(v).strip())


def _to_float(v: Any) -> float:
    if isinstance(v, bool):
        raise ValueError
    x = float(v) if isinstance(v, int | float) else float(str(v).strip())
    if not math.isfinite(x):
        raise ValueError
    return x


def _to_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError


def _to_date(v: Any) -> str:
    s = str(v).strip()
    if len(s) == 10:
        return date.fromisoformat(s).isoformat()
    return datetime.fromisoformat(s).isoformat()


def _to_str(v: Any) -> str:
    if isinstance(v, dict | list):
        raise ValueError
    return v if isinstance(v, str) else json.dumps(v)


_CONVERT: dict[FieldType, Callable[[Any], Any]] = {
    FieldType.STR: _to_str,
    FieldType.INT: _to_int,
    FieldType.FLOAT: _to_float,
    FieldType.BOOL: _to_bool,
    FieldType.DATE: _to_date,
}
_EXPECT = {
    FieldType.STR: "text",
    FieldType.INT: "a whole number",
    FieldType.FLOAT: "a finite number",
    FieldType.BOOL: "true or false",
    FieldType.DATE: "an ISO-8601 date (YYYY-MM-DD) or date-time",
}


def fields_of(spec: Spec) -> dict[str, Field]:
    """The typed columns of a spec's import file, by name (ids, source label, properties)."""
    out = (
        {"id": Field("id", FieldType.STR, True)}
        if isinstance(spec, NodeSpec)
        else {
            "src": Field("src", FieldType.STR, True),
            "dst": Field("dst", FieldType.STR, True),
        }
    )
    if isinstance(spec, RelSpec) and spec.polymorphic:
        out["src_label"] = Field("src_label", FieldType.STR, True, choices=spec.src)
    out.update({f.name: f for f in spec.fields})
    return out


def out_of_range(fld: Field, value: float) -> str:
    """The reason a number outside its field's declared range is refused, naming both.

    Examples
    --------
    >>> out_of_range(Field("amount", FieldType.FLOAT, low=0), -5.0)
    '-5.0 is out of range: must be 0 or more'
    >>> out_of_range(Field("rate", FieldType.FLOAT, low=0, high=1), 1.5)
    '1.5 is out of range: must be 0 to 1'
    """
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    if fld.type is FieldType.INT and fld.high is None and value > INT_MAX:
        return f"{shown} is out of range: larger than the largest whole number stored ({INT_MAX})"
    return f"{shown} is out of range: must be {fld.range_text}"


def _decoded_lines(path: Path, name: str, log: ProblemLog) -> Iterator[str]:
    """Yield the file's lines decoded as UTF-8; stop with a problem at the first bad byte."""
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                log.add(
                    name,
                    lineno,
                    "",
                    f"not valid UTF-8 (byte {exc.start} of the line); save the file as UTF-8",
                )
                return


def check_header(header: list[str], spec: Spec, name: str, log: ProblemLog) -> bool:
    """Record in ``log`` what is wrong with a file's header (line 1); True if nothing is."""
    required, optional = columns_of(spec)
    ok = True
    seen: set[str] = set()
    for col in header:
        if col in seen:
            log.add(name, 1, col, "column appears twice in the header")
            ok = False
        seen.add(col)
        if col not in required and col not in optional:
            log.add(
                name, 1, col, f"unknown column; known columns: {', '.join(required + optional)}"
            )
            ok = False
    for col in required:
        if col not in seen:
            log.add(name, 1, col, "required column is missing from the header")
            ok = False
    return ok


def _typed_row(
    raw: dict[str, Any],
    fields: dict[str, Field],
    rules: tuple[OrderedFields, ...],
    name: str,
    line: int,
    log: ProblemLog,
    today: date,
) -> Row | None:
    """The row typed, or None with each of its problems in ``log``; a rule is checked where
    both its values are good, so a row with another bad value still has it named. ``today``:
    the last day a past event's date may have (:func:`~kolmatch.graph.model.latest_today`
    when the file's reading began)."""
    row: Row = {}
    ok = True
    for col, fld in fields.items():
        v = raw.get(col)
        if v is None or (isinstance(v, str) and v == ""):
            if fld.required:
                log.add(name, line, col, "required value is empty")
                ok = False
            continue
        if isinstance(v, str) and len(v) > MAX_FIELD_CHARS:
            log.add(name, line, col, f"value longer than {MAX_FIELD_CHARS} characters")
            ok = False
            continue
        try:
            value = _CONVERT[fld.type](v)
        except (ValueError, TypeError, OverflowError):
            shown = str(v)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            log.add(name, line, col, f"expected {_EXPECT[fld.type]}, got {shown!r}")
            ok = False
            continue
        if fld.choices and value not in fld.choices:
            log.add(name, line, col, f"{value!r} is not one of {', '.join(fld.choices)}")
            ok = False
            continue
        bounds = fld.bounds
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            log.add(name, line, col, out_of_range(fld, value))
            ok = False
            continue
        if fld.past and (why := past_day_problem(value, today)):
            log.add(name, line, col, why)
            ok = False
            continue
        if fld.type is FieldType.STR and col in ("id", "src", "dst") and value.strip() != value:
            log.add(name, line, col, "id has leading or trailing white space")
            ok = False
            continue
        row[col] = value
    for rule in rules:
        if _broken(rule, row):
            log.add(name, line, rule.second, rule.broken_text(row[rule.first], row[rule.second]))
            ok = False
    return row if ok else None


def _broken(rule: OrderedFields, row: Row) -> bool:
    """Whether ``row`` gives both of ``rule``'s values, out of order (ISO dates as text)."""
    first, second = row.get(rule.first), row.get(rule.second)
    return first is not None and second is not None and second < first


def _csv_converters() -> dict[FieldType, Callable[[str], Any] | None]:
    """Converters specialised for CSV text (None: keep the string); dates are cached per file."""
    dates: dict[str, str] = {}

    def to_date(v: str) -> str:
        d = dates.get(v)
        if d is None:
            d = _to_date(v)
            if len(dates) < 100_000:
                dates[v] = d
        return d

    def to_float(v: str) -> float:
        x = float(v)
        if x - x != 0.0:  # inf or nan
            raise ValueError
        return x

    return {
        FieldType.STR: None,
        FieldType.INT: int,
        FieldType.FLOAT: to_float,
        FieldType.BOOL: _to_bool,
        FieldType.DATE: to_date,
    }


def _read_csv(path: Path, spec: Spec, name: str, log: ProblemLog) -> Iterator[tuple[int, Row]]:
    fields = fields_of(spec)
    reader = csv.reader(_decoded_lines(path, name, log), strict=True)
    try:
        header = next(reader, None)
        while header is not None and not any(h.strip() for h in header):  # blank lines
            header = next(reader, None)
    except csv.Error as exc:
        log.add(name, 1, "", f"malformed CSV header: {exc}")
        return
    if header is None:
        if log.count(name) == 0:
            log.add(name, 0, "", "file is empty (no header line)")
        return
    header = [h.strip() for h in header]
    if not check_header(header, spec, name, log):
        return
    width = len(header)
    conv = _csv_converters()
    plan = [
        (i, col, conv[fields[col].type], fields[col], fields[col].bounds)
        for i, col in enumerate(header)
    ]
    today = latest_today()
    first_day, last_day = past_days(today)  # (the fast path's copy of past_day_problem)
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                why = f"a value longer than {MAX_FIELD_CHARS} characters (or a quote left open)"
            else:
                why = f"malformed CSV (file truncated or a quote left open?): {exc}"
            log.add(name, reader.line_num, "", why)
            return
        line = reader.line_num
        if not values:
            continue
        if len(values) != width:
            log.add(name, line, "", f"expected {width} fields as in the header, got {len(values)}")
            continue
        row: Row = {}
        x: Any
        for i, col, fn, fld, bounds in plan:
            v = values[i]
            if not v:
                if fld.required:
                    break
                continue
            if len(v) > MAX_FIELD_CHARS:
                break
            if fn is None:
                if col in _ID_COLS and (v[0].isspace() or v[-1].isspace()):
                    break
                x = v
            else:
                try:
                    x = fn(v)
                except (ValueError, TypeError, OverflowError):
                    break
            if fld.choices and x not in fld.choices:
                break
            if bounds is not None and not bounds[0] <= x <= bounds[1]:
                break
            if fld.past and not first_day <= x[:10] <= last_day:
                break
            row[col] = x
        else:
            if not any(_broken(rule, row) for rule in spec.rules):
                yield line, row
                continue
        # Something is wrong with this row: the slow path names every problem (or accepts it).
        slow = _typed_row(
            dict(zip(header, values, strict=True)), fields, spec.rules, name, line, log, today
        )
        if slow is not None:
            yield line, slow


def _read_jsonl(path: Path, spec: Spec, name: str, log: ProblemLog) -> Iterator[tuple[int, Row]]:
    fields = fields_of(spec)
    required, optional = columns_of(spec)
    known = set(required) | set(optional)
    today = latest_today()
    any_line = False
    for line, text in enumerate(_decoded_lines(path, name, log), start=1):
        if not text.strip():
            continue
        any_line = True
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            log.add(name, line, "", f"not a JSON object (truncated line?): {exc.msg}")
            continue
        if not isinstance(obj, dict):
            log.add(name, line, "", "each line must be a JSON object")
            continue
        unknown = [k for k in obj if k not in known]
        for k in unknown:
            log.add(name, line, str(k), f"unknown field; known fields: {', '.join(sorted(known))}")
        if unknown:
            continue
        row = _typed_row(obj, fields, spec.rules, name, line, log, today)
        if row is not None:
            yield line, row
    if not any_line and log.count(name) == 0:
        log.add(name, 0, "", "file is empty (no JSON lines)")


def read_rows(path: Path, spec: Spec, log: ProblemLog) -> Iterator[tuple[int, Row]]:
    """Yield ``(line, row)`` for each valid row of an import file.

    Rows with problems (an empty required value, a value of the wrong type, outside its
    choices or its field's range, a row breaking one of the spec's rules) are not yielded;
    their problems go to ``log`` with the file name, line and field. A malformed file stops
    at its first structural problem (a bad byte, an open quote).

    Parameters
    ----------
    path
        A ``.csv`` or ``.jsonl`` file.
    spec
        The node or relationship spec the file holds.
    log
        Where problems are recorded.

    Yields
    ------
    tuple of (int, dict)
        The 1-based line number and the typed values by column; empty
        optional values are left out.
    """
    name = path.name
    if path.suffix == ".jsonl":
        yield from _read_jsonl(path, spec, name, log)
    else:
        yield from _read_csv(path, spec, name, log)
