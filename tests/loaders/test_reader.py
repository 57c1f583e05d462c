"""Bad input: each case names file, line and field, exits with every problem, and writes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kolmatch.errors import InputError
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from kolmatch.loaders.reader import MAX_PROBLEMS_PER_FILE
from tests.conftest import snapshot


@pytest.fixture
def loaded(tiny_market: Path, sqlite_store: SQLiteStore) -> SQLiteStore:
    load_folder(tiny_market, sqlite_store)
    return sqlite_store


@pytest.fixture
def folder(tiny_market: Path, tmp_path: Path) -> Path:
    out = tmp_path / "in"
    shutil.copytree(tiny_market, out)
    return out


def _replace_line(path: Path, lineno: int, text: str) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[lineno - 1] = text
    path.write_text("\n".join(lines), encoding="utf-8")


def _fails(folder: Path, store: SQLiteStore) -> InputError:
    before = snapshot(store)
    with pytest.raises(InputError) as info:
        load_folder(folder, store)
    assert snapshot(store) == before, "a rejected load changed the store"
    return info.value


def test_missing_required_column(folder: Path, loaded: SQLiteStore) -> None:
    p = folder / "product.csv"
    p.write_text(
        p.read_text().replace("id,name,price,commission_rate", "id,name,commission_rate", 1)
    )
    # the header is checked first; a bad header stops the file before its rows
    err = _fails(folder, loaded)
    assert [str(pr) for pr in err.problems] == [
        "product.csv:1: field 'price': required column is missing from the header"
    ]


def test_wrong_type_names_line_and_field(folder: Path, loaded: SQLiteStore) -> None:
    _replace_line(folder / "talent.csv", 3, "t1,Talent 1,lots,1000,1200,0.2,3,East")
    _replace_line(folder / "product.csv", 5, "p3,Thing,cheap,0.1")
    err = _fails(folder, loaded)
    msgs = [str(p) for p in err.problems]
    assert "talent.csv:3: field 'followers': expected a whole number, got 'lots'" in msgs
    assert "product.csv:5: field 'price': expected a finite number, got 'cheap'" in msgs


def test_unknown_id_in_relationship(folder: Path, loaded: SQLiteStore) -> None:
    with (folder / "follows.csv").open("a") as fh:
        fh.write("u0,t_nobody,2025-05-01\n")
    n = len((folder / "follows.csv").read_text().splitlines())
    err = _fails(folder, loaded)
    assert [str(p) for p in err.problems] == [
        f"follows.csv:{n}: field 'dst': unknown Talent id 't_nobody': not in talent.csv nor in "
        "the store"
    ]


def test_duplicate_id(folder: Path, loaded: SQLiteStore) -> None:
    with (folder / "merchant.csv").open("a") as fh:
        fh.write("m0,Shadow copy,,,1000,1,2,\n")
    err = _fails(folder, loaded)
    (p,) = err.problems
    assert (
        p.file == "merchant.csv"
        and p.field == "id"
        and p.reason.startswith("duplicate id 'm0' (first at line 2)")
    )


def test_duplicate_relationship_key(folder: Path, loaded: SQLiteStore) -> None:
    lines = (folder / "promoted.csv").read_text().splitlines()
    with (folder / "promoted.csv").open("a") as fh:
        fh.write(lines[1] + "\n")
    err = _fails(folder, loaded)
    (p,) = err.problems
    assert p.file == "promoted.csv" and p.field == "collab_id"
    assert p.line == len(lines) + 1 and "of line 2" in p.reason


@pytest.mark.parametrize("content", [b"", b"\n\n"])
def test_empty_file(folder: Path, loaded: SQLiteStore, content: bytes) -> None:
    (folder / "campaign.csv").write_bytes(content)
    err = _fails(folder, loaded)
    assert [str(p) for p in err.problems] == ["campaign.csv: file is empty (no header line)"]


def test_truncated_file_open_quote(folder: Path, loaded: SQLiteStore) -> None:
    p = folder / "category.csv"
    p.write_text(p.read_text() + 'cat99,"Unfinished name\n')
    err = _fails(folder, loaded)
    assert len(err.problems) == 1
    assert err.problems[0].file == "category.csv" and "truncated" in err.problems[0].reason


def test_truncated_file_short_row(folder: Path, loaded: SQLiteStore) -> None:
    p = folder / "content.csv"
    text = p.read_text().rstrip("\n")
    p.write_text(text[: text.rfind(",")])  # cut inside the last row
    err = _fails(folder, loaded)
    (pr,) = err.problems
    n = len(text.splitlines())
    assert (pr.file, pr.line) == ("content.csv", n) and "expected 4 fields" in pr.reason


def test_non_utf8_file(folder: Path, loaded: SQLiteStore) -> None:
    p = folder / "institution.csv"
    p.write_bytes(p.read_bytes() + "a999,Agence Générale\n".encode("latin-1"))
    err = _fails(folder, loaded)
    (pr,) = err.problems
    n = len(p.read_bytes().splitlines())
    assert (pr.file, pr.line) == ("institution.csv", n) and "not valid UTF-8" in pr.reason


def test_unknown_file_name(folder: Path, loaded: SQLiteStore) -> None:
    (folder / "talents.csv").write_text("id,name\nt1,x\n")
    (folder / "notes.txt").write_text("hello")
    err = _fails(folder, loaded)
    msgs = {p.file: p.reason for p in err.problems}
    assert msgs["talents.csv"].startswith("unknown file name; known names: user, talent")
    assert msgs["notes.txt"].startswith("unknown file type")


def test_unknown_column_is_an_error_not_dropped_data(folder: Path, loaded: SQLiteStore) -> None:
    p = folder / "category.csv"
    p.write_text(
        p.read_text()
        .replace("id,name", "id,name,colour", 1)
        .replace("\n", ",red\n")
        .replace("id,name,colour,red", "id,name,colour")
    )
    err = _fails(folder, loaded)
    assert err.problems[0].field == "colour" and "unknown column" in err.problems[0].reason


def test_all_errors_of_a_file_are_reported_capped(folder: Path, loaded: SQLiteStore) -> None:
    p = folder / "user.csv"
    lines = p.read_text().splitlines()
    bad = [lines[0]] + [ln.rsplit(",", 1)[0] + ",big" for ln in lines[1:40]] + lines[40:]
    p.write_text("\n".join(bad) + "\n")
    err = _fails(folder, loaded)
    assert len(err.problems) == MAX_PROBLEMS_PER_FILE
    assert err.truncated == 39 - MAX_PROBLEMS_PER_FILE
    assert [pr.line for pr in err.problems] == list(range(2, 2 + MAX_PROBLEMS_PER_FILE))
    assert "more problems not listed" in str(err)


def test_problems_in_several_files_are_all_reported(folder: Path, loaded: SQLiteStore) -> None:
    _replace_line(folder / "talent.csv", 2, "t0,Talent 0,1,2,3,x,East")
    _replace_line(folder / "violation.csv", 2, "x0,counterfeit,terrible,2025-01-01,true")
    err = _fails(folder, loaded)
    assert {p.file for p in err.problems} == {"talent.csv", "violation.csv"}
    assert any("'terrible' is not one of minor, major, severe" in p.reason for p in err.problems)


def test_bad_date_and_bool(folder: Path, loaded: SQLiteStore) -> None:
    _replace_line(folder / "violation.csv", 2, "x0,counterfeit,minor,31/01/2025,maybe")
    err = _fails(folder, loaded)
    fields = {p.field: p.reason for p in err.problems}
    assert fields["time"].startswith("expected an ISO-8601 date")
    assert fields["resolved"] == "expected true or false, got 'maybe'"


def test_window_ending_before_it_starts(folder: Path, loaded: SQLiteStore) -> None:
    _replace_line(folder / "campaign.csv", 2, "cp0,Backwards,2025-03-10,2025-03-01,gmv,1000,500")
    err = _fails(folder, loaded)
    assert [str(p) for p in err.problems] == [
        "campaign.csv:2: field 'end': end 2025-03-01 is before start 2025-03-10"
    ]


def test_jsonl_accepted_and_checked(tmp_path: Path, sqlite_store: SQLiteStore) -> None:
    d = tmp_path / "j"
    d.mkdir()
    (d / "category.jsonl").write_text(
        '{"id": "c1", "name": "Beauty"}\n{"id": "c2", "name": "Tea"}\n'
    )
    (d / "talent.jsonl").write_text('{"id": "t1", "name": "A", "followers": 12}\n')
    load_folder(d, sqlite_store)
    assert sqlite_store.counts()["Category"] == 2
    (d / "talent.jsonl").write_text('{"id": "t2", "name": "B", "followers": "many"}\n{"id": "t3"\n')
    before = snapshot(sqlite_store)
    with pytest.raises(InputError) as info:
        load_folder(d, sqlite_store)
    assert snapshot(sqlite_store) == before
    msgs = [str(p) for p in info.value.problems]
    assert msgs[0] == "talent.jsonl:1: field 'followers': expected a whole number, got 'many'"
    assert msgs[1].startswith("talent.jsonl:2: not a JSON object (truncated line?)")


def test_bom_and_crlf_are_accepted(tmp_path: Path, sqlite_store: SQLiteStore) -> None:
    d = tmp_path / "b"
    d.mkdir()
    (d / "category.csv").write_bytes(b'\xef\xbb\xbfid,name\r\nc1,Beauty\r\nc2,"Tea, green"\r\n')
    load_folder(d, sqlite_store)
    rows = sqlite_store.node_rows("Category", ("name",))
    assert sorted(zip(rows.ids, rows.columns["name"], strict=True)) == [
        ("c1", "Beauty"),
        ("c2", "Tea, green"),
    ]
