"""A market graph to and from a folder of Arrow files: data only, never code.

A delta load (docs/scale.md, "Delta loads") needs the graph of the version before it: the
changed users' rows are read again and spliced into it
(:meth:`~kolmatch.graph.market.MarketGraph.with_rows_from`). Reading the whole market from
the store is what a delta avoids (at m, ~32 s from SQLite); from these files it is ~1 s
(0.66 GB, written in ~1.6 s), measured on the m market's ``FEATURES_READ`` graph.

One Arrow IPC file per node table and per edge list, uncompressed, and ``graph.json`` naming
them with the format, the graph's identity and each column's kind. Numeric columns are
float64 (NaN where unset); text columns are dictionary-encoded Arrow strings (None where
unset): a date or a talent id repeats over millions of rows, and a reader makes one Python
string per distinct value, not per row (at m the engagements' dates came back in 0.96 s as
strings, 0.09 s from a dictionary). A reader gets the arrays
:func:`~kolmatch.graph.market.read_market` gives (a NaN in a text column comes back None). A
node table's store keys (``key_rows``, by which a read by user looks rows up) are kept too.
The folder is written under a temporary name and renamed into place: a reader sees
all of it or none (a writer killed meanwhile leaves a hidden ``.<name>-*`` folder behind). A
folder is its writer's alone (0700), as the cache's other files are.

A reader trusts nothing in the folder: the manifest may name only the files a writer names
(no path, link, pipe or device), each column must be of the Arrow type its kind is written as
and hold the rows it claims (text: Arrow's full validation, offsets, UTF-8, dictionary
indices), ids must fit the text type named, no wider than the longest, and edge and key rows
must be rows of their tables. The identity is the manifest's: a caller compares it with the
store's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather

from kolmatch.engine.arrays import UnreadableArrays
from kolmatch.errors import StoreError
from kolmatch.graph.market import MarketGraph
from kolmatch.graph.model import rel_spec
from kolmatch.graph.projection import EdgeList, NodeTable

__all__ = ["GRAPH_FILE_FORMAT", "is_graph_folder", "read_graph", "write_graph"]

#: Bumped whenever the files' layout changes: a folder of another format is unreadable.
GRAPH_FILE_FORMAT = 2

#: The file naming the tables.
_MANIFEST = "graph.json"


def write_graph(folder: Path, g: MarketGraph) -> None:
    """Write ``g`` to ``folder`` (which must not exist), all of it or nothing.

    Parameters
    ----------
    folder
        Where to write: a new folder (its parent must exist).
    g
        The graph.

    Raises
    ------
    FileExistsError
        If ``folder`` exists.
    TypeError
        If a column is neither numeric nor text (nothing is left behind).
    OSError
        If it cannot be written (nothing is left behind).

    Examples
    --------
    >>> import tempfile
    >>> users = NodeTable("User", np.array(["a", "b"], dtype=object),
    ...                   {"gender": np.array(["f", None], dtype=object)})
    >>> follows = EdgeList("FOLLOWS", "User", np.array([1]), np.array([0]), {})
    >>> g = MarketGraph(("g", 3), {"User": users}, {("FOLLOWS", "User"): follows})
    >>> at = Path(tempfile.mkdtemp()) / "graph"
    >>> write_graph(at, g)
    >>> back = read_graph(at)
    >>> back.identity, back.node("User").columns["gender"].tolist()
    (('g', 3), ['f', None])
    >>> import shutil; shutil.rmtree(at.parent)
    """
    if folder.exists():
        raise FileExistsError(f"{folder} exists: a graph is written to a new folder")
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        nodes: dict[str, Any] = {}
        for i, (label, t) in enumerate(g.nodes.items()):
            name = f"node-{i}.arrow"
            nodes[label] = {
                "file": name,
                "columns": _write_table(work / name, label, {"id": t.ids}, t.columns),
                "key_store": t.key_store,
                "ids": np.asarray(t.ids).dtype.str,  # (numpy text, as read_market gives)
            }
            if t.key_rows is not None:
                nodes[label]["keys"] = f"keys-{i}.arrow"
                keys = pa.table({"row": pa.array(np.asarray(t.key_rows, dtype=np.int64))})
                _write_one_batch(keys, work / f"keys-{i}.arrow")
        edges = []
        for i, ((rel, src), e) in enumerate(g.edges.items()):
            name = f"edge-{i}.arrow"
            ends = {"src": np.asarray(e.src, np.int64), "dst": np.asarray(e.dst, np.int64)}
            columns = _write_table(work / name, f"{rel} from {src}", ends, e.columns)
            edges.append({"type": rel, "from": src, "file": name, "columns": columns})
        manifest = {
            "format": GRAPH_FILE_FORMAT,
            "identity": list(g.identity),
            "nodes": nodes,
            "edges": edges,
        }
        (work / _MANIFEST).write_text(json.dumps(manifest, indent=1))
        # (the folder is its writer's alone, 0700 from mkdtemp, as the cache's other files are)
        os.rename(work, folder)  # (fails if another writer put the folder there meanwhile)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _write_table(
    path: Path, where: str, ends: dict[str, Any], columns: dict[str, Any]
) -> dict[str, str]:
    """One Arrow file of ``ends`` (ids or rows) and ``columns`` (as ``c:<name>``); the
    columns' kinds (``number`` or ``text``)."""
    kinds: dict[str, str] = {}
    arrays: dict[str, pa.Array] = {k: _arrow(where, k, v) for k, v in ends.items()}
    for name, values in columns.items():
        values = np.asarray(values)
        if values.dtype.kind == "f":
            kinds[name] = "number"
        elif values.dtype.kind in "OUS":
            kinds[name] = "text"
        else:
            raise TypeError(f"{where}: column {name!r}: cannot store a {values.dtype} column")
        arrays[f"c:{name}"] = _arrow(where, name, values, dictionary=kinds[name] == "text")
    _write_one_batch(pa.table(arrays), path)
    return kinds


def _write_one_batch(table: pa.Table, path: Path) -> None:
    """``table`` as one uncompressed record batch: a reader maps each numeric column as one
    array (``read_graph(mapped=True)``), where Arrow's default batches of 64k rows (127 for
    the m market's engagements) made every column a concatenated copy."""
    feather.write_feather(table, path, compression="uncompressed", chunksize=max(table.num_rows, 1))


def _arrow(where: str, name: str, values: Any, dictionary: bool = False) -> pa.Array:
    """``values`` as an Arrow array: text (str or None) as Arrow strings (dictionary-encoded
    if ``dictionary``), numbers as they are.

    Raises
    ------
    TypeError
        If a text column holds other values (dates, numbers, bytes that are not UTF-8).
    """
    values = np.asarray(values)
    if values.dtype.kind in "OUS":
        try:
            text = pa.array(values, type=pa.string(), from_pandas=True)
            return text.dictionary_encode() if dictionary else text
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeError) as exc:
            raise TypeError(f"{where}: column {name!r}: not text ({exc})") from exc
    return pa.array(values)


def is_graph_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a graph's manifest (written whole: :func:`write_graph`);
    nothing is read or checked (:func:`read_graph` does that).

    Parameters
    ----------
    folder
        Where a graph may be.
    """
    return (folder / _MANIFEST).is_file()


def read_graph(
    folder: Path,
    on_nodes: Callable[[MarketGraph], object] | None = None,
    *,
    mapped: bool = False,
) -> MarketGraph:
    """Read what :func:`write_graph` wrote; never runs code from the folder.

    Parameters
    ----------
    folder
        The graph's folder.
    on_nodes
        Called with the graph of its node tables alone (no edges yet), once they are read and
        before the edges are: a caller may start work on them meanwhile (a delta's read of
        some users' rows from the store). What it raises is the caller's.
    mapped
        Numeric columns (edge ends, numbers, store keys) as read-only views of the files,
        memory-mapped, not copies: for a caller that only reads them (a delta, which makes new
        arrays of what it changes). The files are checked as ever, on the mapping. A folder's
        files are replaced by renaming a new folder into place, never written over, so a
        mapping outlives their eviction. At m this spares 0.66 GB of new memory, each
        gigabyte of which took this machine 0.7 to 2.9 s to touch in a fresh process.

    Returns
    -------
    MarketGraph
        Its arrays its own (copies, writable), as :func:`~kolmatch.graph.market.read_market`
        gives them; with ``mapped`` its numeric arrays read-only.

    Raises
    ------
    UnreadableArrays
        If the folder is not a graph of :data:`GRAPH_FILE_FORMAT`, or a file is missing or
        not what its manifest says.
    """
    try:
        manifest = json.loads((folder / _MANIFEST).read_text())
        if not isinstance(manifest, dict) or manifest.get("format") != GRAPH_FILE_FORMAT:
            raise UnreadableArrays(f"{folder}: not a graph of format {GRAPH_FILE_FORMAT}")
        graph_id, version = manifest["identity"]
        identity = (str(graph_id), int(version))
        nodes = {}
        for label, spec in dict(manifest["nodes"]).items():
            t = _read_table(_member(folder, spec["file"]), (), ("id",), spec["columns"], mapped)
            keys = None
            if "keys" in spec:
                keys = _read_table(_member(folder, spec["keys"]), ("row",), (), {}, mapped)["row"]
                if len(keys) and (keys.min() < -1 or keys.max() >= len(t["id"])):
                    raise UnreadableArrays(f"{folder / spec['keys']}: keys of rows not in {label}")
            columns = {k: t[f"c:{k}"] for k in spec["columns"]}
            ids_type = np.dtype(spec["ids"])
            if ids_type.kind not in "UO" or None in t["id"]:
                raise UnreadableArrays(f"{folder / spec['file']}: ids are not text of {ids_type}")
            longest = max(map(len, t["id"]), default=1)
            if ids_type.kind == "U" and ids_type.itemsize > 4 * max(longest, 1):
                # (as read_market gives them: as wide as the longest; wider is no writer's, and
                # would allocate what the manifest asks)
                raise UnreadableArrays(
                    f"{folder / spec['file']}: ids of {ids_type}, the longest of {longest}"
                )
            ids = t["id"].astype(ids_type)
            if ids_type.kind == "U" and not (ids == t["id"]).all():  # (none cut short)
                raise UnreadableArrays(f"{folder / spec['file']}: ids longer than {ids_type}")
            nodes[label] = NodeTable(label, ids, columns, keys, spec["key_store"])
        if on_nodes is not None:
            try:
                on_nodes(MarketGraph(identity, nodes, {}))
            except Exception as exc:
                raise _Callers(exc) from None
        edges = {}
        for spec in manifest["edges"]:
            t = _read_table(
                _member(folder, spec["file"]), ("src", "dst"), (), spec["columns"], mapped
            )
            columns = {k: t[f"c:{k}"] for k in spec["columns"]}
            key = (str(spec["type"]), str(spec["from"]))
            for end, label in (("src", key[1]), ("dst", rel_spec(key[0]).dst)):
                n = len(nodes[label]) if label in nodes else None
                if len(t[end]) and (t[end].min() < 0 or (n is not None and t[end].max() >= n)):
                    raise UnreadableArrays(f"{folder / spec['file']}: {end} rows not in {label}")
            edges[key] = EdgeList(key[0], key[1], t["src"], t["dst"], columns)
        return MarketGraph(identity, nodes, edges)
    except _Callers as callers:
        raise callers.exc from callers.exc.__cause__  # (as on_nodes raised it)
    except UnreadableArrays:
        raise
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        RecursionError,
        IndexError,
        StoreError,
        pa.ArrowException,
    ) as exc:
        raise UnreadableArrays(f"{folder}: {type(exc).__name__}: {exc}") from exc


class _Callers(Exception):
    """What ``on_nodes`` raised, carried past the reader's own refusals."""

    def __init__(self, exc: Exception) -> None:
        super().__init__(exc)
        self.exc = exc


#: The names :func:`write_graph` gives its files: a manifest naming anything else (another
#: folder's file, a path) is refused.
_MEMBER = re.compile(r"(node|edge|keys)-[0-9]+\.arrow")


def _member(folder: Path, name: object) -> Path:
    """The file ``name`` of the folder, if it is one :func:`write_graph` writes and a regular
    file (not a link, a pipe or a device)."""
    if not isinstance(name, str) or not _MEMBER.fullmatch(name):
        raise UnreadableArrays(f"{folder}: {name!r} is not a file of a graph folder")
    path = folder / name
    if not stat.S_ISREG(path.lstat().st_mode):
        raise UnreadableArrays(f"{path}: not a regular file")
    return path


def _read_table(
    path: Path,
    ints: tuple[str, ...],
    texts: tuple[str, ...],
    kinds: dict[str, str],
    mapped: bool = False,
) -> dict[str, Any]:
    """The columns of one file: ``ints`` as int64, ``texts`` (Arrow strings) and text
    ``kinds`` (dictionary-encoded strings) as object arrays, number ``kinds`` as float64
    (``c:<name>``); every one a copy of its own, but with ``mapped`` the numeric ones (views of
    the mapped file, read-only, where it holds them in one piece). Each column must be of the
    Arrow type its kind is written as."""
    try:
        table = feather.read_table(path, memory_map=True)
        # (buffers as long as the rows the file claims: numpy would read past them otherwise)
        table.validate()
    except (OSError, pa.ArrowException) as exc:
        raise UnreadableArrays(f"{path}: {exc}") from exc
    kinds = dict(kinds)
    want = {
        **dict.fromkeys(ints, "int"),
        **dict.fromkeys(texts, "text"),
        **{f"c:{k}": kind for k, kind in kinds.items()},
    }
    if sorted(table.column_names) != sorted(want):
        raise UnreadableArrays(f"{path}: columns {table.column_names}, not {list(want)}")
    out: dict[str, Any] = {}
    for name, kind in want.items():
        column = table.column(name)
        try:
            out[name] = _column(column, kind, mapped)
        except pa.ArrowException as exc:
            raise UnreadableArrays(f"{path}: column {name!r}: {exc}") from exc
        if out[name] is None:
            raise UnreadableArrays(f"{path}: column {name!r} of {column.type}, not {kind}")
    return out


def _column(column: pa.ChunkedArray, kind: str, mapped: bool = False) -> np.ndarray | None:
    """The numpy array of a column of that kind, a copy of its own (None: not that kind);
    ``mapped``: a numeric one as a read-only view where Arrow gives one (one chunk, no nulls,
    the type's own width)."""
    dtype: type[np.generic] | None = None
    if kind == "int" and pa.types.is_integer(column.type):
        dtype = np.int64
    elif kind == "number" and pa.types.is_floating(column.type):
        dtype = np.float64
    if dtype is not None:
        if not mapped:
            return np.array(column.to_numpy(), dtype=dtype)  # (a copy: writable)
        out = np.asarray(column.to_numpy(), dtype=dtype)
        out.flags.writeable = False  # (a view of the file, or Arrow's own copy: read-only)
        return out
    if kind == "text" and (pa.types.is_string(column.type) or pa.types.is_null(column.type)):
        column.validate(full=True)  # (offsets and UTF-8: a file is not trusted)
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)
    if (
        kind == "text"
        and pa.types.is_dictionary(column.type)
        and pa.types.is_string(column.type.value_type)
    ):
        return _words(column)
    return None


def _words(column: pa.ChunkedArray) -> np.ndarray:
    """A dictionary-encoded text column as an object array (None where null): each distinct
    string made once, its rows pointing at it."""
    column.validate(full=True)  # (indices within the dictionary: a file is not trusted)
    column = column.unify_dictionaries()
    if column.num_chunks == 0:
        return np.empty(0, dtype=object)
    dictionary = column.chunk(0).dictionary
    words = np.empty(len(dictionary) + 1, dtype=object)  # (the last: None, for nulls)
    words[:-1] = dictionary.to_numpy(zero_copy_only=False)
    if column.null_count == 0 and column.num_chunks == 1:
        # (the indices as they are, no int64 copy and no null fill: ~130 MB fewer at m for
        # the engagements' dates; validated above)
        taken: np.ndarray = words.take(column.chunk(0).indices.to_numpy())
        return taken
    indices = pa.chunked_array([c.indices.cast(pa.int64()) for c in column.chunks], pa.int64())
    out: np.ndarray = words[indices.fill_null(len(dictionary)).to_numpy()]
    return out
