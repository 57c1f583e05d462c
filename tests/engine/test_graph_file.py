"""A market graph to and from a folder of Arrow files."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest

from kolmatch.engine.arrays import UnreadableArrays
from kolmatch.engine.graph_file import GRAPH_FILE_FORMAT, read_graph, write_graph
from kolmatch.graph.market import FULL_READ, MarketGraph, read_edges_from, read_market
from kolmatch.graph.projection import EdgeList, NodeTable
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder


def _same_columns(got: dict[str, np.ndarray], want: dict[str, np.ndarray], where: str) -> None:
    assert list(got) == list(want), where
    for name, column in want.items():
        assert got[name].dtype == column.dtype, f"{where}.{name}"
        if column.dtype.kind == "f":
            np.testing.assert_array_equal(got[name], column, err_msg=f"{where}.{name}")
        else:  # text: None where unset
            assert got[name].tolist() == column.tolist(), f"{where}.{name}"


def test_a_graph_read_back_is_the_graph_written(tiny_market: Path, tmp_path: Path) -> None:
    """Every table of the whole market's read comes back as written: ids, columns (NaN and
    None where unset), store keys, identity; its arrays are writable copies, and a read of
    some users' edges on it (by the store's keys) is the read on the graph written."""
    store = SQLiteStore(tmp_path / "s.db")
    load_folder(tiny_market, store)
    g = read_market(store, FULL_READ)
    write_graph(tmp_path / "graph", g)
    back = read_graph(tmp_path / "graph")
    assert back.identity == g.identity
    assert list(back.nodes) == list(g.nodes) and list(back.edges) == list(g.edges)
    for label, t in g.nodes.items():
        b = back.node(label)
        assert b.ids.dtype == t.ids.dtype and b.ids.tolist() == t.ids.tolist(), label
        assert b.key_store == t.key_store == store.uri, label
        assert t.key_rows is not None and b.key_rows is not None
        assert np.array_equal(b.key_rows, t.key_rows) and b.key_rows.dtype == np.int64, label
        _same_columns(b.columns, t.columns, label)
    for key, e in g.edges.items():
        b = back.edge(*key)
        assert np.array_equal(b.src, e.src) and np.array_equal(b.dst, e.dst), key
        assert b.src.dtype == b.dst.dtype == np.int64
        _same_columns(b.columns, e.columns, str(key))
    # unset text was there to come back (unset numbers: the next test)
    tables = [*g.nodes.values(), *g.edges.values()]
    columns = [c for t in tables for c in t.columns.values()]
    assert any(c.dtype == object and (c == None).any() for c in columns)  # noqa: E711
    for t in [*back.nodes.values(), *back.edges.values()]:  # writable copies, not file maps
        assert all(c.flags.writeable for c in t.columns.values())
    back.edge("FOLLOWS", "User").src[0] = 0
    back.node("Product").columns["price"][0] = 1.0
    users = [str(u) for u in g.node("User").ids[[1, 7, 300]]]
    want, got = (
        read_edges_from(store, g, "User", users),
        read_edges_from(store, back, "User", users),
    )
    for key, e in want.edges.items():
        assert np.array_equal(got.edge(*key).dst, e.dst), key
    # mapped (a delta's read): the same graph, its numeric arrays read-only views of the files
    mapped = read_graph(tmp_path / "graph", mapped=True)
    for label, t in g.nodes.items():
        b = mapped.node(label)
        assert b.ids.tolist() == t.ids.tolist() and b.key_rows is not None, label
        assert t.key_rows is not None and np.array_equal(b.key_rows, t.key_rows), label
        _same_columns(b.columns, t.columns, label)
    for key, e in g.edges.items():
        b = mapped.edge(*key)
        assert np.array_equal(b.src, e.src) and np.array_equal(b.dst, e.dst), key
        assert not b.src.flags.writeable and not b.dst.flags.writeable, key
        _same_columns(b.columns, e.columns, str(key))
    price = mapped.node("Product").columns["price"]
    assert price.dtype == np.float64 and not price.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        mapped.edge("FOLLOWS", "User").src[0] = 0
    store.close()


def test_a_graph_folder_is_all_or_nothing_and_refused_when_not_one(tmp_path: Path) -> None:
    """A column neither numeric nor text leaves nothing behind; an existing folder is not
    written over; a folder of another format, a file missing or a column its manifest does
    not name is unreadable (it says where)."""
    users = NodeTable("User", np.array(["a", "b"], dtype=object), {"age": np.array([1, 2])})
    follows = EdgeList("FOLLOWS", "User", np.array([0]), np.array([1]), {})
    bad = MarketGraph(("g", 1), {"User": users}, {("FOLLOWS", "User"): follows})
    with pytest.raises(TypeError, match="User: column 'age': cannot store a int64 column"):
        write_graph(tmp_path / "graph", bad)
    assert list(tmp_path.iterdir()) == []
    good = MarketGraph(("g", 1), {"User": NodeTable("User", users.ids, {})}, bad.edges)
    write_graph(tmp_path / "graph", good)
    with pytest.raises(FileExistsError, match="a graph is written to a new folder"):
        write_graph(tmp_path / "graph", good)
    manifest = tmp_path / "graph" / "graph.json"
    spec = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**spec, "format": 999}))
    with pytest.raises(UnreadableArrays, match=f"not a graph of format {GRAPH_FILE_FORMAT}"):
        read_graph(tmp_path / "graph")
    spec["edges"][0]["columns"] = {"since": "text"}
    manifest.write_text(json.dumps(spec))
    with pytest.raises(UnreadableArrays, match=r"edge-0\.arrow: columns"):
        read_graph(tmp_path / "graph")
    (tmp_path / "graph" / "edge-0.arrow").unlink()
    with pytest.raises(UnreadableArrays, match=r"edge-0\.arrow"):
        read_graph(tmp_path / "graph")
    with pytest.raises(UnreadableArrays, match="nowhere"):
        read_graph(tmp_path / "nowhere")


def _small(tmp_path: Path) -> Path:
    users = NodeTable("User", np.array(["a", "bb"]), {"gender": np.array(["f", None], object)})
    follows = EdgeList("FOLLOWS", "User", np.array([0]), np.array([1]), {})
    talents = NodeTable("Talent", np.array(["t0", "t1"]), {"fee": np.array([1.0, np.nan])})
    g = MarketGraph(("g", 1), {"User": users, "Talent": talents}, {("FOLLOWS", "User"): follows})
    write_graph(tmp_path / "graph", g)
    return tmp_path / "graph"


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda m, d: m["edges"][0].update(file="../outside.arrow"), "is not a file of a graph"),
        (lambda m, d: m["edges"][0].update(file=str(d / "edge-0.arrow")), "is not a file of"),
        (lambda m, d: m.update(nodes=[1, 2]), "TypeError"),
        (lambda m, d: m["nodes"]["User"].update(columns=["gender"]), "ValueError"),
        (lambda m, d: m["nodes"]["User"].update(columns={"gender": "number"}), "not number"),
        (lambda m, d: m["nodes"]["User"].update(ids="<U1"), "ids longer than <U1"),
        (lambda m, d: m["nodes"]["User"].update(ids="<U100000000"), "the longest of 2"),
        (lambda m, d: m["nodes"]["User"].update(ids="<i8"), "ids are not text"),
        (lambda m, d: m.update(identity=None), "TypeError"),
    ],
)
def test_a_graph_folder_s_manifest_is_not_trusted(tmp_path: Path, change: Any, says: str) -> None:
    """A manifest naming a file outside the folder, of another shape, another column kind,
    ids cut short or not text, or edges into rows a table does not have: refused by name."""
    folder = _small(tmp_path)
    (tmp_path / "outside.arrow").write_bytes((folder / "edge-0.arrow").read_bytes())
    manifest = folder / "graph.json"
    spec = json.loads(manifest.read_text())
    change(spec, folder)
    manifest.write_text(json.dumps(spec))
    with pytest.raises(UnreadableArrays, match=re.escape(says)):
        read_graph(folder)


def test_a_graph_folder_s_files_must_be_regular_files(tmp_path: Path) -> None:
    """A link or a pipe where a table's file should be is refused, not followed or waited on;
    a damaged file is refused by its path."""
    folder = _small(tmp_path)
    (folder / "edge-0.arrow").rename(tmp_path / "moved.arrow")
    (folder / "edge-0.arrow").symlink_to(tmp_path / "moved.arrow")
    with pytest.raises(UnreadableArrays, match=r"edge-0\.arrow: not a regular file"):
        read_graph(folder)
    (folder / "edge-0.arrow").unlink()
    os.mkfifo(folder / "edge-0.arrow")
    with pytest.raises(UnreadableArrays, match=r"edge-0\.arrow: not a regular file"):
        read_graph(folder)
    (folder / "edge-0.arrow").unlink()
    (folder / "edge-0.arrow").write_bytes(b"not arrow")
    with pytest.raises(UnreadableArrays, match=r"edge-0\.arrow: "):
        read_graph(folder)


def test_a_small_graph_comes_back_with_its_unset_numbers_and_bad_rows_are_refused(
    tmp_path: Path,
) -> None:
    """NaN and None come back where they were; an edge into a row its table lacks (written
    by hand) is refused on reading."""
    back = read_graph(_small(tmp_path))
    assert np.isnan(back.node("Talent").columns["fee"][1])
    assert back.node("User").columns["gender"].tolist() == ["f", None]
    assert back.node("User").ids.dtype == np.dtype("<U2")
    wrong = EdgeList("FOLLOWS", "User", np.array([0]), np.array([7]), {})
    write_graph(
        tmp_path / "wrong", MarketGraph(back.identity, back.nodes, {("FOLLOWS", "User"): wrong})
    )
    with pytest.raises(UnreadableArrays, match="dst rows not in Talent"):
        read_graph(tmp_path / "wrong")
    with pytest.raises(UnreadableArrays, match="dst rows not in Talent"):
        read_graph(tmp_path / "wrong", mapped=True)  # (checked on the mapping as well)


def test_text_is_written_as_a_dictionary_and_its_indices_are_not_trusted(tmp_path: Path) -> None:
    """A text column is stored once per distinct value (dictionary-encoded) and comes back
    the same; a file whose indices point past its dictionary, or whose strings are not
    UTF-8, is refused, not read out of bounds."""
    folder = _small(tmp_path)
    table = feather.read_table(folder / "node-0.arrow")
    assert pa.types.is_dictionary(table.column("c:gender").type)
    assert pa.types.is_string(table.column("id").type)  # (ids are distinct: plain)
    ids = pa.array(["a", "bb"])
    for gender in (
        pa.DictionaryArray.from_arrays(pa.array([0, 5], pa.int32()), pa.array(["f"]), safe=False),
        pa.DictionaryArray.from_arrays(pa.array([0, -1], pa.int32()), pa.array(["f"]), safe=False),
        pa.Array.from_buffers(
            pa.string(),
            1,
            [None, pa.py_buffer(np.array([0, 2], np.int32)), pa.py_buffer(b"\xff\xfe")],
        ),
    ):
        feather.write_feather(
            pa.table({"id": ids if len(gender) == 2 else ids[:1], "c:gender": gender}),
            folder / "node-0.arrow",
            compression="uncompressed",
        )
        with pytest.raises(UnreadableArrays, match=r"node-0\.arrow"):
            read_graph(folder)
    # another writer's index type: a dictionary of 200 words on int8 indices, and a null
    words = pa.array([f"w{i}" for i in range(200)])
    gender = pa.DictionaryArray.from_arrays(pa.array([127, None], pa.int8()), words)
    feather.write_feather(pa.table({"id": ids, "c:gender": gender}), folder / "node-0.arrow")
    assert read_graph(folder).node("User").columns["gender"].tolist() == ["w127", None]


def test_on_nodes_sees_the_node_tables_before_the_edges_and_its_errors_are_its_own(
    tmp_path: Path,
) -> None:
    """``on_nodes`` gets the node tables alone (the identity read), before the edges; what it
    raises comes out as it raised it, not as an unreadable folder."""
    folder = _small(tmp_path)
    seen: list[MarketGraph] = []
    back = read_graph(folder, seen.append)
    assert len(seen) == 1 and seen[0].identity == back.identity == ("g", 1)
    assert list(seen[0].nodes) == ["User", "Talent"] and seen[0].edges == {}
    assert seen[0].node("User").ids.tolist() == ["a", "bb"]

    def refuse(nodes: MarketGraph) -> None:
        raise KeyError("the caller's own")

    with pytest.raises(KeyError, match="the caller's own"):
        read_graph(folder, refuse)


def test_a_file_claiming_more_rows_than_its_buffers_hold_is_refused(tmp_path: Path) -> None:
    """An edge file whose row counts were raised past its buffers (numbers and ends alone, no
    text) is refused by name, not read past the mapped file (it crashed the process)."""
    n = 777
    users = NodeTable("User", np.array(["a", "b"], dtype=object), {})
    products = NodeTable("Product", np.array(["p"], dtype=object), {})
    bought = EdgeList(
        "PURCHASED",
        "User",
        np.zeros(n, np.int64),
        np.zeros(n, np.int64),
        {"amount": np.arange(n, dtype=np.float64)},
    )
    g = MarketGraph(("g", 3), {"User": users, "Product": products}, {("PURCHASED", "User"): bought})
    write_graph(tmp_path / "graph", g)
    path = tmp_path / "graph" / "edge-0.arrow"
    data = path.read_bytes()
    old, new = n.to_bytes(8, "little"), (50_000_000).to_bytes(8, "little")
    assert data.count(old) >= 2  # (the batch's length and its columns')
    path.write_bytes(data.replace(old, new))
    for mapped in (False, True):
        with pytest.raises(UnreadableArrays, match=r"edge-0\.arrow: .*too small"):
            read_graph(tmp_path / "graph", mapped=mapped)


def test_each_file_is_one_batch_so_a_mapped_read_copies_no_column(tmp_path: Path) -> None:
    """Past Arrow's default batch (64k rows) a table is still one record batch: a mapped read
    takes its numeric columns as views of the file (several batches were one copy each)."""
    n = 200_000
    users = NodeTable("User", np.array([f"u{i:06d}" for i in range(n)], dtype=object), {})
    products = NodeTable("Product", np.array(["p"], dtype=object), {})
    bought = EdgeList(
        "PURCHASED",
        "User",
        np.arange(n, dtype=np.int64),
        np.zeros(n, np.int64),
        {"amount": np.arange(n, dtype=np.float64), "time": np.array(["2026-01-01"] * n, object)},
    )
    g = MarketGraph(("g", 4), {"User": users, "Product": products}, {("PURCHASED", "User"): bought})
    write_graph(tmp_path / "graph", g)
    for path in (tmp_path / "graph").glob("*.arrow"):
        t = feather.read_table(path)
        assert all(c.num_chunks == 1 for c in t.columns), path.name
    got = read_graph(tmp_path / "graph", mapped=True).edge("PURCHASED", "User")
    for a in (got.src, got.dst, got.columns["amount"]):
        assert not a.flags.writeable and not a.flags.owndata
    assert np.array_equal(got.src, bought.src) and got.columns["time"][-1] == "2026-01-01"
