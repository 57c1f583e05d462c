"""Read a CSV import file as typed columns, checked as the row reader checks it, or not at all.

The row reader (:mod:`kolmatch.loaders.reader`) names every problem by line and field, at
~100k rows a second. This module is its fast path: the file is parsed and checked a block
at a time by Arrow's C++ code (`pyarrow.csv`, `pyarrow.compute`), with checks that are
*stricter* than the row reader's, so that a file it accepts is one the row reader accepts with
the same values. The first thing it is not sure of (a bad value, a number outside its field's
range, a row breaking one of the model's row rules, an empty required field, an id with a space
at an end, a "+12" the row reader would read as 12, a date-time, a quote or blank line in the
header, a row of the wrong width) raises :class:`NotFast`, and the caller reads the file again
with the row reader, which names the problem or accepts the value. Validation of a clean file
stays exact; only its speed changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from kolmatch.graph.model import (
    Field,
    FieldType,
    NodeSpec,
    RelSpec,
    latest_today,
    past_days,
)
from kolmatch.graph.store import arrow_type
from kolmatch.loaders.reader import MAX_FIELD_CHARS, ProblemLog, check_header, fields_of

__all__ = ["BLOCK_BYTES", "NotFast", "all_true", "read_tables"]

#: Bytes of CSV parsed per block (one table yielded per block).
BLOCK_BYTES = 64 << 20

_INT = r"^-?[0-9]+$"
_FLOAT = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# what str.isspace() calls white space, at either end of an id (RE2's \s alone is ASCII)
_SPACE = r"[\s\x0b\x1c-\x1f\x85\p{Z}]"
_EDGE_SPACE = f"^{_SPACE}|{_SPACE}$"
_TRUE = pa.array(["true", "1", "yes", "t", "y"])
_BOOL = pa.array(["true", "1", "yes", "t", "y", "false", "0", "no", "f", "n"])
_ID_COLS = frozenset(("id", "src", "dst"))


class NotFast(Exception):
    """The file holds something the fast path does not decide: read it with the row reader."""


def _header(path: Path, spec: NodeSpec | RelSpec) -> list[str]:
    with path.open("rb") as fh:
        first = fh.readline()
    if first.startswith(b"\xef\xbb\xbf"):
        first = first[3:]
    try:
        text = first.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise NotFast from exc
    if '"' in text or not text.strip():
        raise NotFast
    with path.open("rb") as fh:  # an open quote on a last line without a line break
        fh.seek(max(0, path.stat().st_size - 65536))
        tail = fh.read()
    if tail and not tail.endswith(b"\n") and b'"' in tail[tail.rfind(b"\n") + 1 :]:
        raise NotFast
    header = [h.strip() for h in text.split(",")]
    if not check_header(header, spec, path.name, ProblemLog()):
        raise NotFast
    return header


def all_true(mask: pa.Array | pa.ChunkedArray) -> bool:
    """True if every non-null value of ``mask`` is true.

    Examples
    --------
    >>> all_true(pa.array([True, None])), all_true(pa.array([True, False]))
    (True, False)
    """
    return bool(pc.all(mask).as_py() is not False)


def _among(col: pa.Array, values: pa.Array) -> pa.Array:
    """True where ``col`` is null or one of ``values``."""
    return pc.or_(pc.is_null(col), pc.is_in(col, value_set=values))


def _typed(col: pa.Array, name: str, fld: Field, days: tuple[str, str]) -> pa.Array:
    """The column as the row reader would type it, nulls where it is empty; or NotFast.
    ``days``: the first and last day of a past event (:func:`~kolmatch.graph.model.past_days`
    when the file's reading began)."""
    empty = pc.equal(col, "")
    if fld.required and pc.any(empty).as_py():
        raise NotFast
    if len(col) and pc.max(pc.binary_length(col)).as_py() > MAX_FIELD_CHARS:
        raise NotFast
    if pc.any(empty).as_py():
        col = pc.if_else(empty, pa.scalar(None, pa.string()), col)
    t = fld.type
    if t is FieldType.STR:
        # a line break in a value: legal when quoted, but also what an open quote at the end
        # of a truncated file reads as; the row reader tells them apart
        if pc.any(pc.match_substring_regex(col, "[\r\n]")).as_py():
            raise NotFast
        if name in _ID_COLS and not all_true(pc.invert(pc.match_substring_regex(col, _EDGE_SPACE))):
            raise NotFast
        out = col
    elif t is FieldType.INT:
        if not all_true(pc.match_substring_regex(col, _INT)):
            raise NotFast
        out = pc.cast(col, pa.int64())
    elif t is FieldType.FLOAT:
        if not all_true(pc.match_substring_regex(col, _FLOAT)):
            raise NotFast
        out = pc.cast(col, pa.float64())
        if not all_true(pc.is_finite(out)):
            raise NotFast
    elif t is FieldType.BOOL:
        low = pc.utf8_lower(col)
        if not all_true(_among(low, _BOOL)):
            raise NotFast
        out = pc.if_else(pc.is_null(low), pa.scalar(None, pa.bool_()), pc.is_in(low, _TRUE))
    else:  # DATE: plain dates only (a date-time goes to the row reader)
        if not all_true(pc.match_substring_regex(col, _DATE)):
            raise NotFast
        if not all_true(pc.greater_equal(pc.year(pc.cast(col, pa.date32())), 1)):
            raise NotFast
        if fld.past and len(col):  # (plain ISO days order as text does)
            first, last = pc.min_max(col).values()
            if first.is_valid and (first.as_py() < days[0] or last.as_py() > days[1]):
                raise NotFast
        out = col
    if fld.choices and not all_true(_among(out, pa.array(list(fld.choices)))):
        raise NotFast
    bounds = fld.bounds
    if bounds is not None and len(out):
        # one pass for both ends; an int64 column already holds nothing above INT_MAX
        lo, hi = pc.min_max(out).values()
        if lo.is_valid and (lo.as_py() < bounds[0] or hi.as_py() > bounds[1]):
            raise NotFast
    return out.cast(arrow_type(t)) if t is not FieldType.DATE else out


def read_tables(
    path: Path, spec: NodeSpec | RelSpec, *, block_bytes: int | None = None
) -> Iterator[pa.Table]:
    """Yield the rows of a CSV import file as typed tables, a block at a time.

    Each table has the header's columns (``id`` or ``src``/``dst``, ``src_label`` where the
    type has several source labels, then the properties the file has) typed as
    :func:`kolmatch.graph.store.arrow_type` says, null where a row leaves a value empty.

    Parameters
    ----------
    path
        A ``.csv`` import file.
    spec
        The node or relationship spec it holds.
    block_bytes
        Bytes parsed per table (default :data:`BLOCK_BYTES`).

    Yields
    ------
    pyarrow.Table
        The next block's rows, every value checked as
        :func:`kolmatch.loaders.reader.read_rows` checks it, with the same value.

    Raises
    ------
    NotFast
        At the first row or value the row reader might report or read differently; the
        caller must read the whole file again with :func:`kolmatch.loaders.reader.read_rows`
        (tables already yielded hold rows it accepts, with the same values, in the same order).
    """
    header = _header(path, spec)
    fields = fields_of(spec)
    rules = [r for r in spec.rules if r.first in header and r.second in header]
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(
                skip_rows=1,
                column_names=header,
                block_size=block_bytes or BLOCK_BYTES,
                use_threads=True,
            ),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                check_utf8=True,
            ),
        )
        days = past_days(latest_today())
        for block in reader:
            cols = [_typed(block.column(i), c, fields[c], days) for i, c in enumerate(header)]
            table = pa.Table.from_arrays(cols, names=header)
            for rule in rules:  # ISO dates (plain ones only, here) compare as text
                if pc.any(pc.less(table.column(rule.second), table.column(rule.first))).as_py():
                    raise NotFast
            yield table
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:  # width, quoting, UTF-8, a bad cast
        raise NotFast from exc
