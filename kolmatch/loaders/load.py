"""Validate a folder of import files completely, then write it to a store in batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kolmatch.errors import InputError
from kolmatch.graph.model import NODE_BY_FILE, NODES, REL_BY_FILE, RELATIONSHIPS, NodeSpec, RelSpec
from kolmatch.graph.store import GraphStore, NodeBatch, RelBatch, WriteBatch
from kolmatch.loaders.reader import ProblemLog, read_rows

__all__ = ["BATCH_ROWS", "ImportFile", "LoadReport", "discover", "load_folder", "validate_folder"]

#: Rows per write batch (one executemany / one UNWIND).
BATCH_ROWS = 10_000
_SUFFIXES = (".csv", ".jsonl")


@dataclass(frozen=True)
class ImportFile:
    """One file of an import folder and the spec it holds."""

    path: Path
    spec: NodeSpec | RelSpec


@dataclass
class LoadReport:
    """What a validation found: valid rows per file."""

    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def discover(folder: Path, log: ProblemLog) -> list[ImportFile]:
    """List the import files of ``folder``: nodes first (model order), then relationships.

    Unknown file names, and two files for the same label, are problems in ``log``.
    """
    if not folder.is_dir():
        log.add(str(folder), 0, "", "not a folder")
        return []
    by_stem: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.is_dir():
            continue
        if p.suffix not in _SUFFIXES:
            log.add(p.name, 0, "", f"unknown file type; import files end in {' or '.join(_SUFFIXES)}")
            continue
        if p.stem not in NODE_BY_FILE and p.stem not in REL_BY_FILE:
            known = ", ".join([n.file for n in NODES] + [r.file for r in RELATIONSHIPS])
            log.add(p.name, 0, "", f"unknown file name; known names: {known}")
            continue
        if p.stem in by_stem:
            log.add(p.name, 0, "", f"same data as {by_stem[p.stem].name}; keep one of them")
            continue
        by_stem[p.stem] = p
    out = [ImportFile(by_stem[n.file], n) for n in NODES if n.file in by_stem]
    out += [ImportFile(by_stem[r.file], r) for r in RELATIONSHIPS if r.file in by_stem]
    return out


def _progress(total: int, desc: str) -> Callable[[int], None]:
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="row", unit_scale=True, leave=False, disable=None)

    def step(n: int) -> None:
        bar.update(n)
        if n == 0:
            bar.close()

    return step


def validate_folder(folder: Path, store: GraphStore, *, progress: bool = False) -> tuple[
        list[ImportFile], LoadReport]:
    """Read every file of ``folder`` and check it; write nothing.

    Checks: file names, headers, value types, duplicate node ids (within the
    folder), duplicate relationship keys, and that every relationship's
    endpoints exist in the folder or already in the store.

    Raises
    ------
    InputError
        With every problem found (capped per file), each naming file, line and field.
    """
    log = ProblemLog()
    files = discover(folder, log)
    report = LoadReport()
    # id -> small int per label, for endpoint checks and duplicate detection.
    index: dict[str, dict[str, int]] = {n.label: {} for n in NODES}
    for f in files:
        name = f.path.name
        n_ok = 0
        if isinstance(f.spec, NodeSpec):
            ids = index[f.spec.label]
            first_line: dict[str, int] = {}
            for line, row in read_rows(f.path, f.spec, log):
                nid = row["id"]
                if nid in ids:
                    log.add(name, line, "id", f"duplicate id {nid!r} (first at line "
                            f"{first_line.get(nid, '?')})")
                    continue
                ids[nid] = len(ids)
                if len(first_line) < 1_000_000:
                    first_line[nid] = line
                n_ok += 1
        else:
            n_ok = _validate_rels(f, index, store, log)
        report.rows[name] = n_ok
    if log:
        raise InputError(log.problems, log.truncated)
    return files, report


def _validate_rels(f: ImportFile, index: dict[str, dict[str, int]], store: GraphStore,
                   log: ProblemLog) -> int:
    spec = f.spec
    assert isinstance(spec, RelSpec)
    name = f.path.name
    unresolved: dict[tuple[str, str], list[tuple[int, str]]] = {}
    cols: tuple[list[int], list[int], list[int]] = ([], [], [])
    lines: list[int] = []
    key_ids: dict[str, int] = {}
    n_ok = 0
    for line, row in read_rows(f.path, spec, log):
        src_label = row.get("src_label", spec.src[0])
        ok = True
        ends = []
        for col, label in (("src", src_label), ("dst", spec.dst)):
            i = index[label].get(row[col])
            if i is None:
                unresolved.setdefault((label, row[col]), []).append((line, col))
                ok = False
                i = -1
            ends.append(i)
        if not ok:
            continue
        n_ok += 1
        # The row's identity as three ints; duplicates are found by sorting once per file.
        third = spec.src.index(src_label)
        if spec.key:
            third += 4 * key_ids.setdefault(row[spec.key], len(key_ids))
        cols[0].append(ends[0])
        cols[1].append(ends[1])
        cols[2].append(third)
        lines.append(line)
    # Endpoints not in the folder may already be in the store.
    by_label: dict[str, list[str]] = {}
    for (label, nid) in unresolved:
        by_label.setdefault(label, []).append(nid)
    for label, ids in by_label.items():
        missing = store.missing_ids(label, ids)
        for nid in ids:
            if nid in missing:
                for line, col in unresolved[(label, nid)]:
                    log.add(name, line, col, f"unknown {label} id {nid!r}: not in "
                            f"{NODES_BY_LABEL_FILE[label]} nor in the store")
            else:
                n_ok += len(unresolved[(label, nid)])
    if lines:
        arr = np.asarray(cols, dtype=np.int64)
        order = np.lexsort(arr[::-1])
        s = arr[:, order]
        dup = np.nonzero((s[:, 1:] == s[:, :-1]).all(axis=0))[0]
        what = f"({spec.key}) " if spec.key else "(same source and target) "
        for j in dup[:50]:
            log.add(name, lines[order[j + 1]], spec.key or "dst",
                    f"duplicate relationship {what}of line {lines[order[j]]}")
    return n_ok


NODES_BY_LABEL_FILE = {n.label: n.file + ".csv" for n in NODES}


def _batches(files: list[ImportFile], step: Callable[[int], None] | None) -> Iterator[WriteBatch]:
    sink = ProblemLog()
    for f in files:
        spec = f.spec
        if isinstance(spec, NodeSpec):
            rows: list[dict[str, object]] = []
            for _, row in read_rows(f.path, spec, sink):
                rows.append(row)
                if len(rows) >= BATCH_ROWS:
                    yield NodeBatch(spec.label, rows)
                    if step:
                        step(len(rows))
                    rows = []
            if rows:
                yield NodeBatch(spec.label, rows)
                if step:
                    step(len(rows))
        else:
            by_src: dict[str, list[dict[str, object]]] = {s: [] for s in spec.src}
            for _, row in read_rows(f.path, spec, sink):
                src_label = str(row.get("src_label", spec.src[0]))
                bucket = by_src[src_label]
                bucket.append(row)
                if len(bucket) >= BATCH_ROWS:
                    yield RelBatch(spec.type, src_label, bucket)
                    if step:
                        step(len(bucket))
                    by_src[src_label] = []
            for src_label, bucket in by_src.items():
                if bucket:
                    yield RelBatch(spec.type, src_label, bucket)
                    if step:
                        step(len(bucket))
    if sink:  # the files changed between validation and writing
        raise InputError(sink.problems, sink.truncated)


def load_folder(folder: str | Path, store: GraphStore, *, progress: bool = False) -> LoadReport:
    """Validate ``folder`` completely, then upsert it into ``store``.

    Nothing is written unless every file is valid. Loading the same folder
    twice leaves the same counts.

    Parameters
    ----------
    folder
        A folder of import files (see ``docs/data-format.md``).
    store
        Where to write.
    progress
        Show a progress bar on a terminal.

    Returns
    -------
    LoadReport
        Rows read per file.

    Raises
    ------
    InputError
        If any file has a problem; the store is unchanged.
    """
    folder = Path(folder)
    store.ensure_schema()
    files, report = validate_folder(folder, store, progress=progress)
    step = _progress(report.total, "load") if progress else None
    store.write(_batches(files, step))
    if step:
        step(0)
    return report
