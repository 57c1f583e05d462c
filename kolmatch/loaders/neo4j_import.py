"""Validated import files as the CSV input of Neo4j's offline importer (a first load, fast).

``neo4j-admin database import full`` writes a whole database at once, without
transactions: on this project's 2-core machine it loads the m market's
relationships several times faster than the transactional load can. It only
fills an empty (or replaced) database with the server stopped, so it is the
first load of a local server (``scripts/neo4j import FOLDER``); every later
load goes through :func:`kolmatch.loaders.load.load_folder`.

The folder is validated exactly as :func:`~kolmatch.loaders.load.load_folder`
validates it (same checks, same messages), except that every relationship
endpoint must be in the folder itself: the database it fills holds nothing.
What is written is the validated, typed rows, so the imported graph holds the
same values as a transactional load of the same folder.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from kolmatch.errors import InputError, StoreError
from kolmatch.graph.model import FieldType, NodeSpec, RelSpec, node_spec, rel_spec
from kolmatch.graph.store import STORE_FORMAT, NodeBatch, WriteBatch, arrow_type
from kolmatch.loaders.load import LoadReport, Validation, paused_gc, progress_bar

__all__ = ["ARGS_FILE", "ImportFiles", "write_import_files"]

#: The importer's arguments, one per line, in the output folder (``scripts/neo4j import`` reads it).
ARGS_FILE = "import.args"
#: Version of the imported graph; caches key on the store URI, this and the graph's ``uid``.
_IMPORTED_VERSION = 1

# The import tool's header types for the model's field types (dates stay ISO text, as in SQLite).
_HEADER_TYPE = {
    FieldType.STR: "string",
    FieldType.INT: "long",
    FieldType.FLOAT: "double",
    FieldType.BOOL: "boolean",
    FieldType.DATE: "string",
}


@dataclass
class ImportFiles:
    """What :func:`write_import_files` wrote: the importer's arguments and rows per input file."""

    folder: Path
    args: list[str]
    report: LoadReport
    nodes: dict[str, int] = field(default_factory=dict)
    relationships: dict[str, int] = field(default_factory=dict)


class _NothingStored:
    """The empty graph an offline import fills: every id is missing from it."""

    def missing_ids(self, label: str, ids: Sequence[str]) -> set[str]:
        return set(ids)


class _Out:
    """One output CSV: a typed header, then a row per node or relationship."""

    def __init__(
        self,
        path: Path,
        lead: tuple[str, ...],
        header: list[str],
        fields: Sequence[tuple[str, FieldType]],
    ) -> None:
        self.path = path
        # the row's id columns (("id",) or ("src", "dst")), then its properties
        self.columns = [*lead, *(name for name, _ in fields)]
        self.types = [pa.string()] * len(lead) + [arrow_type(t) for _, t in fields]
        self.texts = [c for c, t in zip(self.columns, self.types, strict=True) if t == pa.string()]
        self.fh: IO[bytes] = path.open("wb")
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(header)
        self.fh.write(buf.getvalue().encode("utf-8"))
        self.rows = 0
        self.multiline = False

    def write(self, b: WriteBatch) -> None:
        # Arrow writes a null as an unquoted empty field (the importer sets no property, as a
        # transactional load does), text quoted, booleans as true/false, ints as digits and
        # floats as their shortest round-trip text
        have = b.table.column_names
        cols = [
            b.table.column(c) if c in have else pa.nulls(len(b), t)
            for c, t in zip(self.columns, self.types, strict=True)
        ]
        table = pa.Table.from_arrays(cols, names=self.columns)
        if not self.multiline:  # a value holds a line break: the importer must be told
            self.multiline = any(
                pc.any(pc.match_substring_regex(table.column(c), "[\r\n]")).as_py()
                for c in self.texts
            )
        pacsv.write_csv(table, self.fh, write_options=pacsv.WriteOptions(include_header=False))
        self.rows += len(b)


def _node_out(folder: Path, spec: NodeSpec) -> _Out:
    header = [f"id:ID({spec.label})"] + [f"{f.name}:{_HEADER_TYPE[f.type]}" for f in spec.fields]
    return _Out(
        folder / f"nodes-{spec.label}.csv",
        ("id",),
        header,
        [(f.name, f.type) for f in spec.fields],
    )


def _rel_out(folder: Path, spec: RelSpec, src_label: str) -> _Out:
    header = [f":START_ID({src_label})", f":END_ID({spec.dst})"] + [
        f"{f.name}:{_HEADER_TYPE[f.type]}" for f in spec.fields
    ]
    return _Out(
        folder / f"rels-{spec.type}-{src_label}.csv",
        ("src", "dst"),
        header,
        [(f.name, f.type) for f in spec.fields],
    )


def write_import_files(
    source: str | Path, out: str | Path, *, uid: str, progress: bool = False
) -> ImportFiles:
    """Validate the import folder ``source`` and write it as Neo4j importer input in ``out``.

    ``out`` receives one CSV per label (``nodes-Label.csv``, ids in the label's
    own ID space) and per relationship type and source label
    (``rels-TYPE-Source.csv``), a ``KolmatchMeta`` node holding the graph's
    version and ``uid``, and :data:`ARGS_FILE`: the ``--nodes`` /
    ``--relationships`` arguments of ``neo4j-admin database import full``, one
    per line. Files are written under a temporary name and renamed into place
    only when the whole folder is valid.

    Parameters
    ----------
    source
        A folder of import files (``docs/data-format.md``).
    out
        The output folder: must not exist, be empty, or hold an earlier output
        of this function (which is replaced).
    uid
        The imported graph's identity (the feature cache keys on it).
    progress
        Show a progress bar on a terminal.

    Returns
    -------
    ImportFiles
        The importer's arguments and the rows written per label and type.

    Raises
    ------
    InputError
        If any file has a problem (each names file, line and field); ``out`` is
        left as it was.
    StoreError
        If ``out`` is a folder of something else.
    """
    source, out = Path(source), Path(out).resolve()
    if out.exists() and any(out.iterdir()) and not (out / ARGS_FILE).is_file():
        raise StoreError(
            f"{out}: not empty and not an earlier output of import-files; name a new folder"
        )
    if "\n" in str(out):
        raise StoreError(f"{out!r}: a folder name with a line break cannot go in {ARGS_FILE}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    outs: dict[tuple[str, str], _Out] = {}
    try:
        v = Validation(source, _NothingStored())
        step = progress_bar("import-files") if progress else None
        with paused_gc():
            for b in v.batches(step):
                if isinstance(b, NodeBatch):
                    key = (b.label, "")
                    if key not in outs:
                        outs[key] = _node_out(tmp, node_spec(b.label))
                else:
                    key = (b.rel_type, b.src_label)
                    if key not in outs:
                        outs[key] = _rel_out(tmp, rel_spec(b.rel_type), b.src_label)
                outs[key].write(b)
        if v.log:
            raise InputError(v.log.problems, v.log.truncated)
        for o in outs.values():
            o.fh.close()
        meta = tmp / "meta-KolmatchMeta.csv"
        meta.write_text(
            "id:ID(KolmatchMeta),version:long,uid:string,format:long\n"
            f"graph,{_IMPORTED_VERSION},{uid},{STORE_FORMAT}\n",
            encoding="utf-8",
        )
        result = ImportFiles(out, [], v.report)
        args = [f"--nodes=KolmatchMeta={out / meta.name}"]
        for (name, src), o in outs.items():
            final = out / o.path.name
            if src:
                args.append(f"--relationships={name}={final}")
                result.relationships[name] = result.relationships.get(name, 0) + o.rows
            else:
                args.append(f"--nodes={name}={final}")
                result.nodes[name] = o.rows
        if any(o.multiline for o in outs.values()):
            args.append("--multiline-fields=true")  # slower; only when a value holds a line break
        result.args = args
        (tmp / ARGS_FILE).write_text("".join(a + "\n" for a in args), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
        return result
    finally:
        for o in outs.values():
            o.fh.close()
        shutil.rmtree(tmp, ignore_errors=True)
