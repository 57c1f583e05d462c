"""The offline importer's input: written from validated rows, refused whole when a file is bad;
and, against a real server of its own, an import that equals a transactional load."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from kolmatch.errors import InputError, StoreError
from kolmatch.graph.model import NODES
from kolmatch.graph.neo4j_store import Neo4jStore
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.graph.store import STORE_FORMAT
from kolmatch.loaders.load import load_folder, validate_folder
from kolmatch.loaders.neo4j_import import ARGS_FILE, write_import_files
from tests.conftest import Neo4jServer, assert_same_projections, snapshot


def _read(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


def _folder(tmp_path: Path, files: dict[str, str]) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    for name, text in files.items():
        (d / name).write_text(text, encoding="utf-8")
    return d


def test_every_valid_row_is_written_once_with_typed_headers(
    tiny_market: Path, sqlite_store: SQLiteStore, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    r = write_import_files(tiny_market, out, uid="u1")
    report = validate_folder(tiny_market, sqlite_store)
    assert r.report.rows == report.rows
    assert sum(r.nodes.values()) + sum(r.relationships.values()) == report.total
    users = _read(out / "nodes-User.csv")
    assert users[0] == ["id:ID(User)", "gender:string", "age_band:string", "city_tier:long"]
    assert len(users) - 1 == r.nodes["User"]
    follows = _read(out / "rels-FOLLOWS-User.csv")
    assert follows[0][:2] == [":START_ID(User)", ":END_ID(Talent)"]
    assert len(follows) - 1 == r.relationships["FOLLOWS"]
    # one relationship type from three source labels: one file each, one argument each
    args = (out / ARGS_FILE).read_text().splitlines()
    assert args == r.args
    assert sum(a.startswith("--relationships=HAS_VIOLATION=") for a in args) == 3
    assert args[0] == f"--nodes=KolmatchMeta={out / 'meta-KolmatchMeta.csv'}"
    assert _read(out / "meta-KolmatchMeta.csv")[1] == ["graph", "1", "u1", str(STORE_FORMAT)]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial folder


def test_values_are_written_in_the_importer_s_syntax(tmp_path: Path) -> None:
    d = _folder(
        tmp_path,
        {
            "talent.csv": 'id,name,followers,fee\nt1,"Say ""hi"", then go",12,0.1\nt2,Two,,1e-7\n',
            "violation.csv": "id,kind,severity,time,resolved\n"
            "x1,fake,minor,2025-01-02,yes\nx2,fake,severe,2025-01-03T04:05:06,0\n",
            "has_violation.csv": "src_label,src,dst\nTalent,t1,x1\nTalent,t2,x2\n",
        },
    )
    out = tmp_path / "out"
    r = write_import_files(d, out, uid="u")
    talents = _read(out / "nodes-Talent.csv")
    assert talents[1][:4] == ["t1", 'Say "hi", then go', "12", "0.1"]
    assert talents[2][:4] == ["t2", "Two", "", "1e-7"]  # empty: no property; Java reads 1e-7
    assert [row[4] for row in _read(out / "nodes-Violation.csv")[1:]] == ["true", "false"]
    assert _read(out / "nodes-Violation.csv")[2][3] == "2025-01-03T04:05:06"
    assert _read(out / "rels-HAS_VIOLATION-Talent.csv")[1:] == [["t1", "x1"], ["t2", "x2"]]
    assert "--multiline-fields=true" not in r.args


def test_a_line_break_in_a_value_turns_on_multiline_fields(tmp_path: Path) -> None:
    d = _folder(tmp_path, {"category.csv": 'id,name\nc1,"two\nlines"\nc2,one\n'})
    r = write_import_files(d, tmp_path / "out", uid="u")
    assert r.args[-1] == "--multiline-fields=true"
    assert _read(tmp_path / "out" / "nodes-Category.csv")[1] == ["c1", "two\nlines"]


def test_a_bad_folder_writes_nothing_and_keeps_the_last_output(
    tiny_market: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    write_import_files(tiny_market, out, uid="first")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    d = _folder(
        tmp_path,
        {
            "talent.csv": "id,name,followers\nt1,One,12\nt2,Two,many\n",
            "institution.csv": "id,name\ni1,Agency\n",
            # the folder's graph is all there is: an endpoint elsewhere is unknown
            "signed_with.csv": "src,dst\nt1,i1\nt1,i9\n",
        },
    )
    with pytest.raises(InputError) as exc:
        write_import_files(d, out, uid="second")
    text = str(exc.value)
    assert "talent.csv:3: field 'followers'" in text
    assert "signed_with.csv:3: field 'dst'" in text and "'i9'" in text
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_an_output_folder_of_something_else_is_refused(tiny_market: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(StoreError, match="not empty"):
        write_import_files(tiny_market, out, uid="u")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


@pytest.mark.neo4j
@pytest.mark.slow
def test_offline_import_equals_a_transactional_load(
    own_neo4j: Neo4jServer, tiny_market: Path, sqlite_store: SQLiteStore, tmp_path: Path
) -> None:
    store = Neo4jStore(own_neo4j.uri, ("neo4j", own_neo4j.password))
    try:
        # any node counts, not only kolmatch's: the import would replace the whole database
        store._driver.execute_query("CREATE (:Foreign {note: 'not ours'})")
        r = own_neo4j.run("import", str(tiny_market))
        assert r.returncode == 2 and "holds 1 node(s)" in r.stderr, r.stderr
        q = "MATCH (n:Foreign) RETURN n.note AS note"
        assert [x["note"] for x in store._driver.execute_query(q).records] == ["not ours"]
        store._driver.execute_query("MATCH (n:Foreign) DELETE n")

        r = own_neo4j.run("import", str(tiny_market))
        assert r.returncode == 0, r.stderr
        load_folder(tiny_market, sqlite_store)
        assert store.version() == 1 and len(store.graph_id()) == 32
        assert_same_projections(sqlite_store, store)
        names = {
            rec["name"]
            for rec in store._driver.execute_query("SHOW CONSTRAINTS YIELD name").records
        }
        assert names >= {f"{n.file}_id" for n in NODES}

        # later loads are transactional and MERGE over what the import wrote
        load_folder(tiny_market, store)
        assert store.counts() == sqlite_store.counts()
        assert store.version() == 2
        held: Any = snapshot(store)

        # a second import would replace the graph: refused, and nothing changes
        r = own_neo4j.run("import", str(tiny_market))
        assert r.returncode == 2 and "refused" in r.stderr and "--replace" in r.stderr
        # a bad folder stops at validation, even with --replace; the server keeps running
        bad = tmp_path / "bad"
        bad.mkdir()
        (bad / "talent.csv").write_text("id,name,followers\nt1,One,lots\n")
        r = own_neo4j.run("import", str(bad), "--replace")
        assert r.returncode == 2 and "talent.csv:2: field 'followers'" in r.stderr
        assert snapshot(store) == held and store.version() == 2
    finally:
        store.close()
