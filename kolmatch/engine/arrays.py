"""Dataclasses of arrays to and from one ``.npz`` file: data only, never code.

The feature cache used to be a pickle: loading a pickle runs whatever code its author put in
it, so a cache folder anybody else can write was a way in. An ``.npz`` read with
``allow_pickle=False`` holds numbers and text only. Supported field values: numpy arrays
(object arrays of text are kept as JSON), SciPy CSR matrices, lists of integer arrays, lists
of lists of text, dates, and JSON scalars.

Reading maps the file's arrays rather than copying them (:func:`read_arrays`): ``np.savez``
stores each array uncompressed at an offset of the zip file, so a numeric array is a
copy-on-write memory map of those bytes. Loading m's 0.5 GB of features is then a matter of
milliseconds rather than ~0.4-1.2 s (a worker catching up with another's recalibration did
this under its write lock, and served a version behind meanwhile), and the serving processes
that read one cache file share its pages in the page cache instead of each holding a copy. A
mapped array is private once written to (``mode="c"``): the file never changes under it. The
cache writes a new file and renames it over the old, never in place, so a mapping always sees
the bytes it was opened on; a file removed while mapped keeps its disk space until the last
array of it is dropped.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import zipfile
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp

__all__ = ["UnreadableArrays", "read_arrays", "write_arrays"]

T = TypeVar("T")


class UnreadableArrays(Exception):
    """The file is not a readable, current encoding of the class asked for."""


#: A zip local file header's fixed part: signature, versions, flags, method, time, date, CRC,
#: sizes, then the lengths of the name and of the extra field (APPNOTE 4.3.7).
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")


class _Mapped:
    """The arrays of an uncompressed ``.npz``, memory-mapped copy-on-write, by name; an array
    that cannot be mapped (compressed, empty, of objects) is read from the archive ``z``."""

    def __init__(self, path: Path, z: Any) -> None:
        self._path, self._z = path, z
        self._where: dict[str, tuple[int, np.dtype[Any], tuple[int, ...], bool]] = {}
        with path.open("rb") as fh:
            for info in z.zip.infolist():
                if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(".npy"):
                    continue
                fh.seek(info.header_offset)
                head = _LOCAL_HEADER.unpack(fh.read(_LOCAL_HEADER.size))
                if head[0] != b"PK\x03\x04":
                    raise UnreadableArrays(f"{path}: {info.filename} has no local header")
                fh.seek(info.header_offset + _LOCAL_HEADER.size + head[-2] + head[-1])
                major, _minor = np.lib.format.read_magic(fh)
                read_header = (
                    np.lib.format.read_array_header_1_0
                    if major == 1
                    else np.lib.format.read_array_header_2_0
                )
                shape, fortran, dtype = read_header(fh)
                self._where[info.filename[: -len(".npy")]] = (fh.tell(), dtype, shape, fortran)

    def __getitem__(self, name: str) -> Any:
        where = self._where.get(name)
        if where is None:
            return self._z[name]
        offset, dtype, shape, fortran = where
        if dtype.hasobject or int(np.prod(shape)) == 0:
            return self._z[name]
        mapped = np.memmap(
            self._path,
            dtype=dtype,
            mode="c",
            offset=offset,
            shape=shape,
            order="F" if fortran else "C",
        )
        return mapped.view(np.ndarray)  # a plain array; its base keeps the mapping open


def _encode(name: str, value: Any, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    if isinstance(value, sp.spmatrix | sp.sparray):
        m = sp.csr_matrix(value)
        arrays[f"{name}.data"] = m.data
        arrays[f"{name}.indices"] = m.indices
        arrays[f"{name}.indptr"] = m.indptr
        meta[name] = {"kind": "csr", "shape": list(m.shape)}
    elif isinstance(value, np.ndarray):
        if value.dtype == object:
            meta[name] = {"kind": "object", "values": value.tolist()}
        else:
            arrays[name] = value
            meta[name] = {"kind": "array"}
    elif isinstance(value, date):
        meta[name] = {"kind": "date", "value": value.isoformat()}
    elif isinstance(value, list) and all(isinstance(v, np.ndarray) for v in value):
        lengths = np.array([len(v) for v in value], dtype=np.int64)
        flat = np.concatenate(value) if value else np.zeros(0, dtype=np.int64)
        arrays[f"{name}.flat"] = flat
        arrays[f"{name}.lengths"] = lengths
        meta[name] = {"kind": "arrays"}
    elif isinstance(value, bool | int | float | str | list | dict) or value is None:
        meta[name] = {"kind": "json", "value": value}
    else:
        raise TypeError(f"{name}: cannot store a {type(value).__name__} as data")


def _decode(name: str, spec: dict[str, Any], z: Any) -> Any:
    kind = spec["kind"]
    if kind == "csr":
        shape = tuple(spec["shape"])
        return sp.csr_matrix((z[f"{name}.data"], z[f"{name}.indices"], z[f"{name}.indptr"]), shape)
    if kind == "array":
        return z[name]
    if kind == "object":
        return np.array(spec["values"], dtype=object)
    if kind == "date":
        return date.fromisoformat(spec["value"])
    if kind == "arrays":
        flat, lengths = z[f"{name}.flat"], z[f"{name}.lengths"]
        return np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []
    if kind == "json":
        return spec["value"]
    raise UnreadableArrays(f"{name}: unknown kind {kind!r}")


def write_arrays(path: Path, value: object, *, version: int) -> None:
    """Write a dataclass instance of arrays to ``path`` (an open-for-writing ``.npz`` target).

    Parameters
    ----------
    path
        Where to write (the caller makes it atomic: a temporary file, then a rename).
    value
        A dataclass instance whose fields are of the supported kinds.
    version
        The cache format: a file of another version is unreadable to :func:`read_arrays`.

    Examples
    --------
    >>> import tempfile, dataclasses
    >>> @dataclasses.dataclass
    ... class D:
    ...     a: np.ndarray
    ...     names: np.ndarray
    ...     day: date
    >>> p = Path(tempfile.mkdtemp()) / "d.npz"
    >>> write_arrays(p, D(np.arange(3), np.array(["x", None], dtype=object), date(2026, 1, 2)),
    ...              version=1)
    >>> d = read_arrays(p, D, version=1)
    >>> d.a.tolist(), d.names.tolist(), d.day.isoformat()
    ([0, 1, 2], ['x', None], '2026-01-02')
    """
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        raise TypeError("write_arrays takes a dataclass instance")
    arrays: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for f in dataclasses.fields(value):
        _encode(f.name, getattr(value, f.name), arrays, meta)
    header = {"class": type(value).__name__, "version": version, "fields": meta}
    with path.open("wb") as fh:
        np.savez(fh, __meta__=np.array(json.dumps(header)), **arrays)


def read_arrays(path: Path, cls: type[T], *, version: int, mapped: bool = True) -> T:
    """Read what :func:`write_arrays` wrote, as ``cls``; never runs code from the file.

    Parameters
    ----------
    path
        The ``.npz`` file.
    cls
        The dataclass it holds.
    version
        The cache format expected.
    mapped
        Numeric arrays memory-mapped copy-on-write from the file (see the module's note):
        milliseconds for any size, pages shared with other readers of the file. False reads
        them into memory.

    Raises
    ------
    UnreadableArrays
        If the file is not an ``.npz`` of ``cls`` at ``version`` with every field.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["__meta__"]))
            if header.get("class") != cls.__name__ or header.get("version") != version:
                raise UnreadableArrays(f"{path}: not {cls.__name__} version {version}")
            fields = header["fields"]
            names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
            if set(names) != set(fields):
                raise UnreadableArrays(f"{path}: fields differ from {cls.__name__}'s")
            source = _Mapped(path, z) if mapped else z
            return cls(**{n: _decode(n, fields[n], source) for n in names})
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, struct.error) as exc:
        raise UnreadableArrays(f"{path}: {exc}") from exc
