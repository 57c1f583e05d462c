"""Property tests of the import readers: any bytes end in a clean load or a located error.

Every example loads into a store that already holds data, and checks that the
outcome is one of two: the rows are stored exactly as written, or an
``InputError`` lists located problems and the store is unchanged. Anything else
(another exception, a partial load, a value altered on the way) fails.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from kolmatch.errors import InputError
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from kolmatch.loaders.reader import MAX_FIELD_CHARS
from tests.conftest import snapshot

SECTION = "Bad input: import files"
BASE = [("base-1", "Existing Agency"), ("base-2", "Another")]
#: Text that has broken CSV/JSON readers, spreadsheets and query builders before.
NASTY = [
    '"',
    "'",
    "`",
    "\\",
    ",",
    ";",
    "\n",
    "\r\n",
    "\r",
    "\t",
    "\x00",
    "\ufeff",
    "\u2028",
    "\u202e",
    "😀",
    "中文名字",
    "=1+2",
    "=cmd|' /C calc'!A0",
    "+SUM(A1:A2)",
    "-2+3",
    "@SUM(1)",
    "MATCH (n) DETACH DELETE n",
    "x'}) DETACH DELETE n //",
    "`) MATCH (m) SET m.x = 1 //",
    "$rows",
    "{id: 'x'}",
    "'; DROP TABLE node_institution; --",
    "null",
    "None",
    "NaN",
    " lead",
    "trail ",
    "",
]
nasty_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(NASTY),
    st.lists(st.sampled_from(NASTY), min_size=1, max_size=4).map("".join),
)
#: Half the time wrapped so that the documented rules (non-empty, no outer white space) hold.
nasty_id = st.one_of(nasty_text, nasty_text.map(lambda t: f"id{t}x"))
nasty_name = st.one_of(nasty_text, nasty_text.map(lambda t: t or "n"))
COMMON = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _store() -> tuple[SQLiteStore, dict[str, Any]]:
    store = SQLiteStore(Path(":memory:"))
    store.ensure_schema()
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "institution.csv"
        p.write_text("id,name\n" + "".join(f"{i},{n}\n" for i, n in BASE))
        load_folder(d, store)
    return store, snapshot(store)


def _load(files: dict[str, bytes]) -> tuple[SQLiteStore, dict[str, Any], InputError | None]:
    """Load the files into a store holding BASE; any exception but InputError propagates."""
    store, before = _store()
    with tempfile.TemporaryDirectory() as d:
        for name, data in files.items():
            (Path(d) / name).write_bytes(data)
        try:
            load_folder(d, store)
        except InputError as exc:
            assert exc.problems, "an InputError without a problem"
            for p in exc.problems:
                assert p.file in files and p.line >= 0 and p.reason
            assert snapshot(store) == before, "a rejected load changed the store"
            _event(f"refused: {exc.problems[0].reason[:30]}")
            return store, before, exc
    _event("loaded")
    return store, before, None


def _event(text: str) -> None:
    """Tally outcomes in hypothesis' statistics (--hypothesis-show-statistics)."""
    if currently_in_test_context():
        event(text)


def _stored(store: SQLiteStore) -> dict[str, str]:
    rows = store.node_rows("Institution", ["name"])
    return dict(zip(rows.ids, rows.columns["name"], strict=True))


def _problems(rows: list[tuple[str, str]]) -> bool:
    """Would the reader's rules reject any of these rows? (docs/data-format.md)"""
    ids = [i for i, _ in rows]
    return (
        any(not i or i != i.strip() or len(i) > MAX_FIELD_CHARS for i in ids)
        or any(not n or len(n) > MAX_FIELD_CHARS for _, n in rows)
        or len(set(ids)) != len(ids)
        or bool(set(ids) & {i for i, _ in BASE})
    )


@given(data=st.binary(max_size=400), suffix=st.sampled_from([".csv", ".jsonl"]))
@COMMON
def test_random_bytes_load_cleanly_or_are_refused_cleanly(
    data: bytes, suffix: str, ledger: Any
) -> None:
    ledger.case(SECTION, "random bytes as a node file (CSV and JSONL)").tried()
    store, _, err = _load({f"institution{suffix}": data})
    if err is None:  # the bytes happened to be a valid file
        assert set(_stored(store)) >= {i for i, _ in BASE}


@given(data=st.binary(max_size=200), good=st.booleans())
@COMMON
def test_random_bytes_after_a_valid_header_and_row(data: bytes, good: bool, ledger: Any) -> None:
    ledger.case(SECTION, "random bytes after a valid header (and row)").tried()
    head = b"id,name\n" + (b"new-1,Fine\n" if good else b"")
    store, _, err = _load({"institution.csv": head + data})
    if err is None:
        assert _stored(store).get("new-1") == ("Fine" if good else None)


@given(
    rows=st.lists(st.tuples(nasty_id, nasty_name), min_size=1, max_size=6),
    bom=st.booleans(),
    crlf=st.booleans(),
    quoting=st.sampled_from([csv.QUOTE_ALL, csv.QUOTE_MINIMAL]),
)
@example(rows=[("0", "0\r")], bom=False, crlf=False, quoting=csv.QUOTE_MINIMAL)
@COMMON
def test_nasty_text_round_trips_through_csv(
    rows: list[tuple[str, str]], bom: bool, crlf: bool, quoting: int, ledger: Any
) -> None:
    """Quotes, newlines, BOMs, formulas, Cypher and SQL come back as the same plain text."""
    ledger.case(
        SECTION,
        "quotes, embedded newlines, BOM, NUL, formula cells, Cypher/SQL fragments in CSV cells",
    ).tried()
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n" if crlf else "\n", quoting=quoting)
    w.writerow(["id", "name"])
    w.writerows(rows)
    data = ("\ufeff" if bom else "") + buf.getvalue()
    store, _, err = _load({"institution.csv": data.encode()})
    # Python's writer leaves a carriage return unquoted under QUOTE_MINIMAL ("0\r" is written
    # 0,0\r\n): that file says CRLF, and reading the value as "0" is right by RFC 4180
    ambiguous = quoting == csv.QUOTE_MINIMAL and any("\r" in v for row in rows for v in row)
    if err is None:
        assert not _problems(rows)
        stored = _stored(store)
        for i, n in rows:
            assert stored.get(i) == n or ambiguous, "a value changed on the way in"
    else:
        # QUOTE_ALL writes every value readably: only the documented rules may refuse it
        assert _problems(rows) or quoting == csv.QUOTE_MINIMAL, err


@given(
    rows=st.lists(st.tuples(nasty_id, nasty_name), min_size=1, max_size=6),
    ascii_only=st.booleans(),
)
@COMMON
def test_nasty_text_round_trips_through_jsonl(
    rows: list[tuple[str, str]], ascii_only: bool, ledger: Any
) -> None:
    ledger.case(SECTION, "the same nasty text in JSONL (escaped and raw UTF-8)").tried()
    data = "".join(
        json.dumps({"id": i, "name": n}, ensure_ascii=ascii_only) + "\n" for i, n in rows
    )
    store, _, err = _load({"institution.jsonl": data.encode()})
    assert (err is not None) == _problems(rows), err
    if err is None:
        stored = _stored(store)
        assert all(stored[i] == n for i, n in rows)


#: Characters each encoding can write, and that are not ASCII.
ALPHABETS = {
    "latin-1": st.characters(min_codepoint=0xA0, max_codepoint=0xFF),
    "cp1252": st.characters(min_codepoint=0xA0, max_codepoint=0xFF),
    "gbk": st.sampled_from("达人带货直播商家机构抖音电商美妆服饰食品"),
    "big5": st.sampled_from("達人帶貨直播商家機構電商美妝服飾食品"),
    "utf-16": st.characters(min_codepoint=0x80, max_codepoint=0xFFFF, categories=["L", "N"]),
}


@given(
    data=st.data(),
    encoding=st.sampled_from(sorted(ALPHABETS)),
    line=st.integers(min_value=0, max_value=2),
)
@COMMON
def test_mixed_encodings_are_refused_at_their_line(
    data: st.DataObject, encoding: str, line: int, ledger: Any
) -> None:
    ledger.case(
        SECTION, "one line in another encoding (latin-1, cp1252, GBK, Big5, UTF-16)"
    ).tried()
    name = data.draw(st.text(alphabet=ALPHABETS[encoding], min_size=1, max_size=12))
    odd = f"odd,{name}\n".encode(encoding)
    lines = [b"id,name\n", b"a,Alpha\n", b"b,Beta\n"]
    lines.insert(line + 1, odd)
    store, _, err = _load({"institution.csv": b"".join(lines)})
    try:
        text = odd.decode("utf-8")
    except UnicodeDecodeError:
        assert err is not None
        first = err.problems[0]
        assert first.line == line + 2 and "not valid UTF-8" in first.reason, err
    else:  # those bytes are also valid UTF-8 (rare): then they are that text, or refused by rule
        if err is None:
            assert _stored(store)["odd"] == text.split(",", 1)[1].rstrip("\n")


@pytest.mark.parametrize("where", ["id", "name"])
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_huge_fields_are_refused_with_their_place(where: str, fmt: str, ledger: Any) -> None:
    ledger.case(SECTION, "huge fields (over 100,000 characters), CSV and JSONL").tried()
    huge = "x" * (MAX_FIELD_CHARS + 5)
    row = {"id": "ok", "name": "fine", where: huge}
    if fmt == "csv":
        data = f"id,name\nfirst,One\n{row['id']},{row['name']}\n"
    else:
        data = json.dumps({"id": "first", "name": "One"}) + "\n" + json.dumps(row) + "\n"
    _, _, err = _load({f"institution.{fmt}": data.encode()})
    assert err is not None
    p = err.problems[0]
    assert p.line == (3 if fmt == "csv" else 2)
    assert f"longer than {MAX_FIELD_CHARS} characters" in p.reason


def _csv(header: list[str], *rows: list[str]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode()


@given(src=nasty_id, dst=st.one_of(nasty_text, *[st.sampled_from([i for i, _ in BASE])] * 2))
@COMMON
def test_relationship_ids_with_any_text_resolve_or_are_refused(
    src: str, dst: str, ledger: Any
) -> None:
    """A SIGNED_WITH row from a new talent to an agency: stored as given, or refused by rule."""
    ledger.case(SECTION, "relationship endpoints with arbitrary ids (quotes, Cypher)").tried()
    store, _, err = _load(
        {
            "talent.csv": _csv(["id", "name"], [src, "T"]),
            "signed_with.csv": _csv(["src", "dst"], [src, dst]),
        }
    )
    valid_src = not _problems([(src, "T")])
    if err is None:
        assert valid_src and dst in {i for i, _ in BASE}
        e = store.edge_rows("SIGNED_WITH", "Talent", [])
        pairs = {(s, d) for chunk in e for s, d in zip(chunk.src, chunk.dst, strict=True)}
        assert pairs == {(src, dst)}
    else:
        assert not valid_src or dst not in {i for i, _ in BASE}, err
