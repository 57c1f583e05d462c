"""Validate a folder of import files and write it to a store in batches, all or nothing."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kolmatch.errors import InputError
from kolmatch.graph.model import NODE_BY_FILE, NODES, REL_BY_FILE, RELATIONSHIPS, NodeSpec, RelSpec
from kolmatch.graph.store import GraphStore, NodeBatch, RelBatch, WriteBatch
from kolmatch.loaders.columnar import NotFast, all_true, read_tables
from kolmatch.loaders.reader import ProblemLog, Row, read_rows
from kolmatch.progress import silenced, task

__all__ = [
    "BATCH_ROWS",
    "IdLookup",
    "ImportFile",
    "LoadReport",
    "Validation",
    "discover",
    "estimated_rows",
    "load_folder",
    "load_key",
    "paused_gc",
    "progress_bar",
    "validate_folder",
]

#: Rows per write batch (one executemany / one UNWIND).
BATCH_ROWS = 10_000
#: Bytes of each file read to estimate its rows for the progress line (all of a smaller file).
SAMPLE_BYTES = 1 << 20
_SUFFIXES = (".csv", ".jsonl")


@dataclass(frozen=True)
class ImportFile:
    """One file of an import folder and the spec it holds."""

    path: Path
    spec: NodeSpec | RelSpec


@dataclass
class LoadReport:
    """Valid rows per file, and the seconds each phase of the load took.

    Phases: ``write`` (validation and writing in one pass, SQLite); or
    ``validate``, ``nodes`` and ``relationships`` (Neo4j: the relationship
    phase starts when the writer takes the first relationship batch, so the
    split is within the few batches read ahead).
    """

    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the load did with unusual data
    #: What it wrote, for a delta of the features (:mod:`kolmatch.engine.delta`): the labels
    #: of its nodes, the (type, source label) of its relationships, the ids of the users its
    #: relationships start at and of the User nodes it wrote (new users, corrected ones; each
    #: None past :data:`DELTA_USERS_MAX`: a build, not a delta), and the (source id, target
    #: id) of each relationship from a user it wrote, by type (None with ``rel_users``): a
    #: delta takes a type the features read without properties (a follow) from these rather
    #: than reading its users' rows back
    node_labels: set[str] = field(default_factory=set)
    rel_types: set[tuple[str, str]] = field(default_factory=set)
    rel_users: set[str] | None = field(default_factory=set)
    node_users: set[str] | None = field(default_factory=set)
    rel_pairs: dict[tuple[str, str], list[pa.Table]] | None = field(default_factory=dict)

    def pairs(self, rel_type: str, src_label: str) -> pa.Table:
        """The (``src``, ``dst``) ids of the relationships of that type it wrote from users,
        in the order written, a row written twice twice (empty if none).

        Raises
        ------
        ValueError
            If :attr:`rel_pairs` is None (more users than :data:`DELTA_USERS_MAX`).
        """
        if self.rel_pairs is None:
            raise ValueError("the load wrote too many users' relationships to note them")
        parts = self.rel_pairs.get((rel_type, src_label), [])
        if not parts:
            return pa.table({"src": pa.array([], pa.string()), "dst": pa.array([], pa.string())})
        return pa.concat_tables(parts)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


#: Users a load's relationships may start at and still be noted for a delta (LoadReport):
#: past it a delta is no cheaper than a build (at m, 105,255 users' delta was ~9% of one).
DELTA_USERS_MAX = 250_000


def _noted(batches: Iterator[WriteBatch], report: LoadReport) -> Iterator[WriteBatch]:
    """``batches``, what each writes noted in ``report`` (its node labels, relationship
    types, the users they start at and each one's source and target ids) as it goes by."""
    for b in batches:
        if isinstance(b, NodeBatch):
            report.node_labels.add(b.label)
            if b.label == "User" and report.node_users is not None:
                report.node_users.update(b.table.column("id").to_pylist())
                if len(report.node_users) > DELTA_USERS_MAX:
                    report.node_users = None
        else:
            report.rel_types.add((b.rel_type, b.src_label))
            if b.src_label == "User" and report.rel_users is not None:
                report.rel_users.update(pc.unique(b.table.column("src")).to_pylist())
                if report.rel_pairs is not None:
                    report.rel_pairs.setdefault((b.rel_type, b.src_label), []).append(
                        b.table.select(["src", "dst"])
                    )
                if len(report.rel_users) > DELTA_USERS_MAX:
                    report.rel_users = report.rel_pairs = None
        yield b


def discover(folder: Path, log: ProblemLog) -> list[ImportFile]:
    """List the import files of ``folder``: nodes first (model order), then relationships.

    Unknown file names, two files for the same label, and a folder without any import file
    are problems in ``log``.
    """
    if not folder.is_dir():
        log.add(str(folder), 0, "", "not a folder")
        return []
    by_stem: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.is_dir():
            continue
        if p.suffix not in _SUFFIXES:
            log.add(
                p.name, 0, "", f"unknown file type; import files end in {' or '.join(_SUFFIXES)}"
            )
            continue
        if p.stem not in NODE_BY_FILE and p.stem not in REL_BY_FILE:
            known = ", ".join([n.file for n in NODES] + [r.file for r in RELATIONSHIPS])
            log.add(p.name, 0, "", f"unknown file name; known names: {known}")
            continue
        if p.stem in by_stem:
            log.add(p.name, 0, "", f"same data as {by_stem[p.stem].name}; keep one of them")
            continue
        by_stem[p.stem] = p
    if not by_stem and not log:  # loading nothing is a mistaken folder, not a success
        log.add(
            str(folder),
            0,
            "",
            "no import files: a folder of files named after labels and relationship types "
            "(talent.csv, follows.csv, ...; docs/data-format.md)",
        )
    out = [ImportFile(by_stem[n.file], n) for n in NODES if n.file in by_stem]
    out += [ImportFile(by_stem[r.file], r) for r in RELATIONSHIPS if r.file in by_stem]
    return out


def estimated_rows(files: Sequence[ImportFile]) -> int:
    """Rows in ``files``, for the progress line's total: counted in files of at most
    :data:`SAMPLE_BYTES`, estimated from the lines in the first :data:`SAMPLE_BYTES` of larger
    ones (within a few percent for the import files' rows of similar length; a quoted line
    break counts as a row). Reads ~1 MiB a file, where counting every line would read the
    folder twice (~10 GB at l).

    Examples
    --------
    >>> import tempfile
    >>> from kolmatch.graph.model import NODE_BY_FILE
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "category.csv").write_text("id,name\\ncat1,A\\ncat2,B\\n")
    >>> estimated_rows([ImportFile(d / "category.csv", NODE_BY_FILE["category"])])
    2
    """
    total = 0.0
    for f in files:
        try:
            size = f.path.stat().st_size
            with f.path.open("rb") as fh:
                head = fh.read(SAMPLE_BYTES)
        except OSError:  # the reader reports it, in its own words
            continue
        lines = head.count(b"\n") + (1 if head and not head.endswith(b"\n") else 0)
        header = 1 if f.path.suffix == ".csv" and lines else 0
        if size <= len(head):
            total += lines - header
        else:
            total += (lines - header) * size / len(head)
    return round(total)


class _Batcher:
    """Groups valid rows into write batches per (label or type, source label)."""

    def __init__(self) -> None:
        self.pending: dict[tuple[str, str], list[Row]] = {}

    def add(self, spec: NodeSpec | RelSpec, src_label: str, row: Row) -> WriteBatch | None:
        key = (spec.label if isinstance(spec, NodeSpec) else spec.type, src_label)
        rows = self.pending.setdefault(key, [])
        rows.append(row)
        if len(rows) >= BATCH_ROWS:
            del self.pending[key]
            return self._batch(spec, src_label, rows)
        return None

    def flush(self, spec: NodeSpec | RelSpec) -> Iterator[WriteBatch]:
        name = spec.label if isinstance(spec, NodeSpec) else spec.type
        for (k, src_label), rows in list(self.pending.items()):
            if k == name:
                del self.pending[(k, src_label)]
                yield self._batch(spec, src_label, rows)

    @staticmethod
    def _batch(spec: NodeSpec | RelSpec, src_label: str, rows: list[Row]) -> WriteBatch:
        if isinstance(spec, NodeSpec):
            return NodeBatch.of(spec.label, rows)
        return RelBatch.of(spec.type, src_label, rows)


class IdLookup(Protocol):
    """What validation asks of the graph a folder goes into (a GraphStore has it)."""

    def missing_ids(self, label: str, ids: Sequence[str]) -> set[str]: ...


class Validation:
    """One pass over the files: checks every row and yields the valid ones in batches.

    Checks: file names, headers, value types, duplicate node ids within the
    folder, duplicate relationship keys within a file, and that every
    relationship's endpoints are in the folder or already in ``store`` (the
    graph the folder goes into). Problems go to ``log``; the caller must not
    keep what was yielded if ``log`` is not empty at the end.

    A CSV file is read by the columnar fast path (:mod:`kolmatch.loaders.columnar`) until
    it meets anything it does not decide; the file is then read again by the row reader,
    which names each problem by line and field. Rows the fast path yielded are not yielded
    again (the row reader yields the same rows first, in the same order), so a store writing
    the batches as they come (SQLite's one transaction) writes each row once.
    """

    def __init__(self, folder: Path, store: IdLookup) -> None:
        self.store = store
        self.log = ProblemLog()
        self.files = discover(folder, self.log)
        self.report = LoadReport()
        # the folder's ids per label, numbered in file order: a dict (row reader) or an
        # Arrow array (fast path), each made from the other when asked for
        self._index: dict[str, dict[str, int]] = {}
        self._ids: dict[str, pa.Array] = {}
        self.fast_files: list[str] = []  # read by the fast path to the end (for reports)

    def index(self, label: str) -> dict[str, int]:
        """The folder's ids of ``label`` read so far, each to its number (file order)."""
        if label not in self._index:
            ids = self._ids.get(label)
            pyids = ids.to_pylist() if ids is not None else []
            self._index[label] = dict(zip(pyids, range(len(pyids)), strict=True))
        return self._index[label]

    def ids(self, label: str) -> pa.Array:
        """The folder's ids of ``label`` read so far, in file order, as an Arrow array."""
        if label not in self._ids:
            self._ids[label] = pa.array(list(self._index.get(label, {})), pa.string())
        return self._ids[label]

    def _set_ids(self, label: str, ids: pa.Array | None, index: dict[str, int] | None) -> None:
        self._ids.pop(label, None)
        self._index.pop(label, None)
        if ids is not None:
            self._ids[label] = ids
        if index is not None:
            self._index[label] = index

    def batches(self, step: Callable[[int], None] | None = None) -> Iterator[WriteBatch]:
        batcher = _Batcher()
        for f in self.files:
            for batch in self._file_batches(f, batcher):
                yield batch
                if step:
                    step(len(batch))

    def _file_batches(self, f: ImportFile, batcher: _Batcher) -> Iterator[WriteBatch]:
        done = 0
        if f.path.suffix == ".csv":
            try:
                for b in self._fast(f):
                    done += len(b)
                    yield b
                self.fast_files.append(f.path.name)
                return
            except NotFast:
                if isinstance(f.spec, NodeSpec):
                    self._set_ids(f.spec.label, None, None)  # the row reader numbers them again
        yield from self._slow(f, batcher, skip=done)

    def _slow(self, f: ImportFile, batcher: _Batcher, skip: int) -> Iterator[WriteBatch]:
        """The row reader's pass over ``f``, not yielding its first ``skip`` valid rows."""
        rows = self._nodes(f) if isinstance(f.spec, NodeSpec) else self._rels(f)
        n = 0
        per_product: Counter[str] = Counter()
        for src_label, row in rows:
            n += 1
            if f.spec.file == "in_category":
                per_product[row["src"]] += 1
            if n <= skip:
                continue
            batch = batcher.add(f.spec, src_label, row)
            if batch is not None:
                yield batch
        yield from batcher.flush(f.spec)
        self._counted(f, n, sum(1 for k in per_product.values() if k > 1))

    def _counted(self, f: ImportFile, n: int, several: int) -> None:
        self.report.rows[f.path.name] = n
        if several:
            self.report.notes.append(
                f"{f.path.name}: {several:,} product{'s are' if several > 1 else ' is'} in several "
                "categories; each weighs 1/k in each of its k categories (docs/scoring.md)"
            )

    def _fast(self, f: ImportFile) -> Iterator[WriteBatch]:
        """The columnar pass over ``f``; raises NotFast where the row reader must decide."""
        if isinstance(f.spec, NodeSpec):
            yield from self._fast_nodes(f, f.spec)
        else:
            yield from self._fast_rels(f, f.spec)

    def _fast_nodes(self, f: ImportFile, spec: NodeSpec) -> Iterator[WriteBatch]:
        chunks: list[pa.Array] = []
        for table in read_tables(f.path, spec):
            chunks.append(table.column("id").combine_chunks())
            for i in range(0, table.num_rows, BATCH_ROWS):
                yield NodeBatch(spec.label, table.slice(i, BATCH_ROWS))
        ids = pa.concat_arrays(chunks) if chunks else pa.array([], pa.string())
        if pc.count_distinct(ids).as_py() != len(ids):
            raise NotFast  # duplicate ids: the row reader names their lines
        self._set_ids(spec.label, ids, None)
        self._counted(f, len(ids), 0)

    def _fast_rels(self, f: ImportFile, spec: RelSpec) -> Iterator[WriteBatch]:
        dst_ids = self.ids(spec.dst)
        src_ids = {label: self.ids(label) for label in spec.src}
        ident: list[tuple[pa.Array, pa.Array, pa.Array, pa.Array | None]] = []
        later: list[pa.Table] = []  # rows with an endpoint not in the folder
        n = 0
        srcs: list[pa.Array] = []
        for table in read_tables(f.path, spec):
            n += table.num_rows
            d = pc.index_in(table.column("dst"), value_set=dst_ids)
            if spec.polymorphic:
                third = pc.index_in(table.column("src_label"), value_set=pa.array(list(spec.src)))
                s = pa.nulls(table.num_rows, pa.int32())
                for k, label in enumerate(spec.src):
                    at = pc.index_in(table.column("src"), value_set=src_ids[label])
                    s = pc.if_else(pc.equal(third, k), at, s)
            else:
                third = pa.array(np.zeros(table.num_rows, np.int32))
                s = pc.index_in(table.column("src"), value_set=src_ids[spec.src[0]])
            ok = pc.and_(pc.is_valid(s), pc.is_valid(d))
            if not all_true(ok):
                later.append(table.filter(pc.invert(ok)))
                table = table.filter(ok)
                s, d, third = s.filter(ok), d.filter(ok), third.filter(ok)
            key = table.column(spec.key).combine_chunks() if spec.key else None
            ident.append((_flat(s), _flat(d), _flat(third), key))
            if spec.file == "in_category":
                srcs.append(table.column("src").combine_chunks())
            yield from _rel_batches(spec, table)
        if later:
            rest = pa.concat_tables(later)
            self._in_store(spec, rest)
            # a row with an end in the store repeats no row with both in the folder: these are
            # checked among themselves, their ends numbered by their ids
            src, dst = (
                pc.dictionary_encode(rest.column(end).combine_chunks()).indices
                for end in ("src", "dst")
            )
            third = (
                pc.index_in(rest.column("src_label"), value_set=pa.array(list(spec.src)))
                if spec.polymorphic
                else pa.array(np.zeros(rest.num_rows, np.int32))
            )
            key = rest.column(spec.key).combine_chunks() if spec.key else None
            if _duplicated(spec, [(src, dst, _flat(third), key)]):
                raise NotFast  # the row reader names the lines
            yield from _rel_batches(spec, rest)
            if spec.file == "in_category":
                srcs.append(rest.column("src").combine_chunks())
        if ident and _duplicated(spec, ident):
            raise NotFast  # the row reader names the lines
        several = 0
        if srcs:
            counts = pc.value_counts(pa.concat_arrays(srcs)).field("counts")
            several = int(pc.sum(pc.greater(counts, 1)).as_py() or 0)
        self._counted(f, n, several)

    def _in_store(self, spec: RelSpec, rows: pa.Table) -> None:
        """Raise NotFast unless every endpoint of ``rows`` missing from the folder is in the
        store."""
        wanted: dict[str, set[str]] = {}
        labels = (
            rows.column("src_label").to_pylist()
            if spec.polymorphic
            else [spec.src[0]] * rows.num_rows
        )
        for label, src, dst in zip(
            labels, rows.column("src").to_pylist(), rows.column("dst").to_pylist(), strict=True
        ):
            for v, lab in ((src, label), (dst, spec.dst)):
                if v not in self.index(lab):
                    wanted.setdefault(lab, set()).add(v)
        for label, ids in wanted.items():
            if self.store.missing_ids(label, sorted(ids)):
                raise NotFast

    def _nodes(self, f: ImportFile) -> Iterator[tuple[str, Row]]:
        spec = f.spec
        assert isinstance(spec, NodeSpec)
        name, ids = f.path.name, self.index(spec.label)
        # one file per label (discover() refuses a second), so ids number this file's rows
        first_lines: list[int] = []
        for line, row in read_rows(f.path, spec, self.log):
            nid = row["id"]
            if nid in ids:
                self.log.add(
                    name,
                    line,
                    "id",
                    f"duplicate id {nid!r} (first at line {first_lines[ids[nid]]})",
                )
                continue
            ids[nid] = len(ids)
            first_lines.append(line)
            yield spec.label, row
        self._set_ids(spec.label, None, ids)

    def _rels(self, f: ImportFile) -> Iterator[tuple[str, Row]]:
        spec = f.spec
        assert isinstance(spec, RelSpec)
        name, log = f.path.name, self.log
        index = {label: self.index(label) for label in (*spec.src, spec.dst)}
        unresolved: list[tuple[int, str, Row]] = []
        ident: tuple[list[int], list[int], list[int]] = ([], [], [])
        lines: list[int] = []
        key_ids: dict[str, int] = {}
        dst_ids = index[spec.dst]

        def identified(line: int, src_label: str, row: Row, s: int, d: int) -> None:
            # The row's identity as three ints; duplicates are found by sorting once per file.
            third = spec.src.index(src_label)
            if spec.key:
                third += 4 * key_ids.setdefault(row[spec.key], len(key_ids))
            ident[0].append(s)
            ident[1].append(d)
            ident[2].append(third)
            lines.append(line)

        for line, row in read_rows(f.path, spec, log):
            src_label = row.get("src_label", spec.src[0])
            s = index[src_label].get(row["src"])
            d = dst_ids.get(row["dst"])
            if s is None or d is None:
                unresolved.append((line, src_label, row))
                continue
            identified(line, src_label, row, s, d)
            yield src_label, row
        # rows whose ends are in the store: in the duplicate check too (ends named by negative
        # numbers of their own), as rows of the folder's are
        store_ends: dict[tuple[str, str], int] = {}

        def end(label: str, node_id: str) -> int:
            at = index[label].get(node_id)
            if at is None:
                at = -1 - store_ends.setdefault((label, node_id), len(store_ends))
            return at

        for line, src_label, row in self._resolve_in_store(name, spec, unresolved):
            identified(line, src_label, row, end(src_label, row["src"]), end(spec.dst, row["dst"]))
            yield src_label, row
        if lines:
            arr = np.asarray(ident, dtype=np.int64)
            order = np.lexsort(arr[::-1])
            srt = arr[:, order]
            dup = np.nonzero((srt[:, 1:] == srt[:, :-1]).all(axis=0))[0]
            what = f"(same {spec.key}) " if spec.key else "(same source and target) "
            for j in dup:
                log.add(
                    name,
                    lines[order[j + 1]],
                    spec.key or "dst",
                    f"duplicate relationship {what}of line {lines[order[j]]}",
                )

    def _resolve_in_store(
        self, name: str, spec: RelSpec, unresolved: list[tuple[int, str, Row]]
    ) -> Iterator[tuple[int, str, Row]]:
        """Endpoints not in the folder may already be in the store: the rows whose ends all
        are, with their lines."""
        wanted: dict[str, set[str]] = {}
        for _, src_label, row in unresolved:
            for col, label in (("src", src_label), ("dst", spec.dst)):
                if row[col] not in self.index(label):
                    wanted.setdefault(label, set()).add(row[col])
        missing = {
            label: self.store.missing_ids(label, sorted(ids)) for label, ids in wanted.items()
        }
        for line, src_label, row in unresolved:
            ok = True
            for col, label in (("src", src_label), ("dst", spec.dst)):
                if row[col] in missing.get(label, ()):
                    self.log.add(
                        name,
                        line,
                        col,
                        f"unknown {label} id {row[col]!r}: not in "
                        f"{node_spec_file(label)} nor in the store",
                    )
                    ok = False
            if ok:
                yield line, src_label, row


def _flat(a: pa.Array | pa.ChunkedArray) -> pa.Array:
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


def _rel_batches(spec: RelSpec, table: pa.Table) -> Iterator[RelBatch]:
    """``table``'s rows in write batches, one source label each (no ``src_label`` column)."""
    if spec.polymorphic:
        parts = [
            (
                label,
                table.filter(pc.equal(table.column("src_label"), label)).drop_columns(
                    ["src_label"]
                ),
            )
            for label in spec.src
        ]
    else:
        parts = [(spec.src[0], table)]
    for label, part in parts:
        for i in range(0, part.num_rows, BATCH_ROWS):
            yield RelBatch(spec.type, label, part.slice(i, BATCH_ROWS))


def _duplicated(
    spec: RelSpec, ident: list[tuple[pa.Array, pa.Array, pa.Array, pa.Array | None]]
) -> bool:
    """True if two rows share source, target (and key): the same identity as the row reader's."""
    s = np.concatenate([x[0].to_numpy(zero_copy_only=False) for x in ident]).astype(np.int64)
    d = np.concatenate([x[1].to_numpy(zero_copy_only=False) for x in ident]).astype(np.int64)
    third = np.concatenate([x[2].to_numpy(zero_copy_only=False) for x in ident]).astype(np.int64)
    if spec.key:
        keys = pa.concat_arrays([x[3] for x in ident if x[3] is not None])
        codes = pc.dictionary_encode(keys).indices.to_numpy(zero_copy_only=False)
        third = third + 4 * codes.astype(np.int64)
    if len(s) < 2:
        return False
    # one int64 per row where the three fit (they do up to ~10^6 x 10^6 x 10^6), else a lexsort
    ns, nd, nt = (int(x.max()) + 1 for x in (s, d, third))
    if ns * nd * nt < 2**62:
        one = np.sort((s * nd + d) * nt + third)
        return bool((one[1:] == one[:-1]).any())
    order = np.lexsort((third, d, s))
    srt = np.stack([s[order], d[order], third[order]])
    return bool((srt[:, 1:] == srt[:, :-1]).all(axis=0).any())


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a validation pass.

    A pass allocates a container (row dict, batch list) per row while holding
    the id indexes of millions of nodes; each full collection walks all of
    them. Rows hold no cycles (reference counting frees them), so pausing
    costs no memory: on the m market (20.5M rows) it cut writing the offline
    importer's input from ~430 s to ~290 s. Not used around a store's writes
    (a driver's own objects may form cycles), nor where it was not measured to
    help: the SQLite load of m, which its writes dominate.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def node_spec_file(label: str) -> str:
    """The import file stem of a node label, for messages."""
    return next(n.file for n in NODES if n.label == label) + ".csv"


def _raise_if(log: ProblemLog) -> None:
    if log:
        raise InputError(log.problems, log.truncated)


def validate_folder(folder: str | Path, store: GraphStore) -> LoadReport:
    """Read and check every file of ``folder``; write nothing.

    Raises
    ------
    InputError
        With every problem found (capped per file), each naming file, line and field.
    """
    v = Validation(Path(folder), store)
    with paused_gc(), task("validating", estimated_rows(v.files), unit="rows") as shown:
        for b in v.batches():
            shown.advance(len(b))
    _raise_if(v.log)
    return v.report


def progress_bar(desc: str) -> Callable[[int], None]:
    """A callback that advances a progress bar (shown on a terminal only) by rows.

    Kept for :mod:`kolmatch.loaders.neo4j_import`; :func:`load_folder` reports through
    :mod:`kolmatch.progress`, with a total.
    """
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit="row", unit_scale=True, leave=False, disable=None)
    return lambda n: bar.update(n)


def load_folder(
    folder: str | Path,
    store: GraphStore,
    *,
    progress: bool = False,
    replace_unfinished: bool = False,
) -> LoadReport:
    """Validate ``folder`` completely and upsert it into ``store``: all of it or nothing.

    On a transactional store (SQLite) validation and writing are one pass in one
    transaction, rolled back on any problem. On Neo4j the folder is validated
    first and written only if valid, in idempotent batches, so a write that
    fails part-way can be run again to completion. Loading the same folder
    twice leaves the same counts.

    Parameters
    ----------
    folder
        A folder of import files (see ``docs/data-format.md``).
    store
        Where to write.
    progress
        Report progress (:mod:`kolmatch.progress`: rows of the folder's estimated total, on a
        terminal or as ``KOLMATCH_PROGRESS`` says); False reports nothing.
    replace_unfinished
        Neo4j: start even though another load is unfinished, forgetting it (see
        :meth:`kolmatch.graph.neo4j_store.Neo4jStore.write`).

    Returns
    -------
    LoadReport
        Rows read per file, seconds per phase.

    Raises
    ------
    InputError
        If any file has a problem; the store is unchanged.
    """
    with contextlib.nullcontext() if progress else silenced():
        return _load_folder(Path(folder), store, replace_unfinished)


def _load_folder(folder: Path, store: GraphStore, replace_unfinished: bool) -> LoadReport:
    if getattr(store, "atomic_writes", False):
        v = Validation(folder, store)
        with task("loading", estimated_rows(v.files), unit="rows") as shown:
            store.ensure_schema()  # in the step: it may wait for another writer's lock
            t0 = time.perf_counter()

            def checked() -> Iterator[WriteBatch]:
                yield from _noted(v.batches(shown.advance), v.report)  # an advance per batch
                _raise_if(v.log)  # raised inside the write: the transaction rolls back

            store.write(checked())
        v.report.seconds["write"] = time.perf_counter() - t0
        return v.report
    store.ensure_schema()
    t0 = time.perf_counter()
    report = validate_folder(folder, store)
    t1 = time.perf_counter()
    v = Validation(folder, store)
    rels_from: list[float] = []

    def timed() -> Iterator[WriteBatch]:
        for b in _noted(v.batches(shown.advance), report):
            if not rels_from and isinstance(b, RelBatch):
                rels_from.append(time.perf_counter())
            yield b

    with task("loading", estimated_rows(v.files), unit="rows") as shown:
        store.write(
            timed(),
            key=load_key(folder, [f.path for f in v.files]),
            replace_unfinished=replace_unfinished,
        )
    t3 = time.perf_counter()
    t2 = rels_from[0] if rels_from else t3
    report.seconds.update(validate=t1 - t0, nodes=t2 - t1, relationships=t3 - t2)
    return report


def load_key(folder: Path, files: list[Path]) -> str:
    """Names a load among unfinished ones: the folder and a digest of its files' names, sizes
    and modification times, so the same load run again (and only it) completes it."""
    h = hashlib.sha256()
    for p in files:
        st = p.stat()
        h.update(f"{p.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return f"{folder.resolve()} ({h.hexdigest()[:12]})"
