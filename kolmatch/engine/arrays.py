"""Dataclasses of arrays to and from one ``.npz`` file: data only, never code.

The feature cache used to be a pickle: loading a pickle runs whatever code its author put in
it, so a cache folder anybody else can write was a way in. An ``.npz`` read with
``allow_pickle=False`` holds numbers and text only. Supported field values: numpy arrays
(object arrays of text are kept as JSON), SciPy CSR matrices, lists of integer arrays, lists
of lists of text, dates, and JSON scalars.

Reading maps the file's arrays rather than copying them (:func:`read_arrays`): each array is
stored uncompressed, at an offset of the zip file aligned to :data:`ALIGN` bytes, so a numeric
array is a view of one copy-on-write memory map of the file (one file descriptor per file).
Loading m's 0.5 GB of features is then a matter of milliseconds rather than ~0.4-1.2 s (a
worker catching up with another's recalibration did this under its write lock, and served a
version behind meanwhile), and the serving processes that read one cache file share its pages
in the page cache instead of each holding a copy. A mapped array is private once written to
(``ACCESS_COPY``): the file never changes under it. The cache writes a new file and renames it
over the old, never in place, so a mapping always sees the bytes it was opened on; a file
removed while mapped keeps its disk space until the last array of it is dropped.
"""

from __future__ import annotations

import dataclasses
import json
import mmap
import struct
import zipfile
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import numpy as np
import scipy.sparse as sp

__all__ = ["UnreadableArrays", "read_arrays", "write_arrays"]

T = TypeVar("T")


class UnreadableArrays(Exception):
    """The file is not a readable, current encoding of the class asked for."""


#: A zip local file header's fixed part: signature, versions, flags, method, time, date, CRC,
#: sizes, then the lengths of the name and of the extra field (APPNOTE 4.3.7).
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")


#: Where each array's bytes start in a file :func:`write_arrays` writes: a multiple of this
#: (numpy pads its own header to it). A misaligned array (``np.savez`` puts them wherever the
#: zip headers end) makes every product with it copy it first: measured at m, a mapped
#: misaligned (T, C) matrix allocated its full size at each ``@``, and reads under load went
#: from p50 154 to 416 ms.
ALIGN = 64
#: The id of the extra field that pads a zip member's local header (the one Android's
#: zipalign uses for the same purpose); zip readers skip extra fields they do not know.
_PAD_FIELD = 0xD935
#: The zip64 extra field zipfile adds to every local header it writes with ``force_zip64``.
_ZIP64_FIELD = 20


class _Mapped:
    """The arrays of an uncompressed ``.npz`` by name, as views of one copy-on-write memory map
    of the open file ``fh``; an array that cannot be mapped (compressed, empty, of objects,
    misaligned as ``np.savez`` writes them, or on a file system that cannot map) is read
    from the archive ``z``."""

    def __init__(self, fh: BinaryIO, z: Any, path: Path) -> None:
        self._z = z
        self._where: dict[str, tuple[int, np.dtype[Any], tuple[int, ...], bool]] = {}
        try:  # one map (one file descriptor) per file, of the inode np.load read
            self._map: mmap.mmap | None = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
        except (OSError, ValueError):
            self._map = None
            return
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
        if where is None or self._map is None:
            return self._z[name]
        offset, dtype, shape, fortran = where
        count = int(np.prod(shape))
        if dtype.hasobject or count == 0 or offset % max(dtype.alignment, 1):
            return self._z[name]
        flat = np.frombuffer(self._map, dtype=dtype, count=count, offset=offset)
        return flat.reshape(shape, order="F" if fortran else "C")


def _write_member(zf: zipfile.ZipFile, fh: BinaryIO, name: str, array: np.ndarray) -> None:
    """Add ``array`` to ``zf`` (writing ``fh``) as ``name.npy``, its bytes at a multiple of
    :data:`ALIGN` in the file: the local header is padded with an extra field."""
    info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    data = fh.tell() + _LOCAL_HEADER.size + len(info.filename.encode()) + _ZIP64_FIELD
    pad = -data % ALIGN
    if 0 < pad < 4:  # an extra field is at least its 4-byte head
        pad += ALIGN
    if pad:
        info.extra = struct.pack("<HH", _PAD_FIELD, pad - 4) + bytes(pad - 4)
    with zf.open(info, "w", force_zip64=True) as out:
        np.lib.format.write_array(out, np.asanyarray(array), allow_pickle=False)


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
    members = {"__meta__": np.array(json.dumps(header)), **arrays}
    with path.open("wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
        for name, array in members.items():
            _write_member(zf, fh, name, array)


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
        with path.open("rb") as fh, np.load(fh, allow_pickle=False) as z:
            header = json.loads(str(z["__meta__"]))
            if header.get("class") != cls.__name__ or header.get("version") != version:
                raise UnreadableArrays(f"{path}: not {cls.__name__} version {version}")
            fields = header["fields"]
            names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
            if set(names) != set(fields):
                raise UnreadableArrays(f"{path}: fields differ from {cls.__name__}'s")
            source = _Mapped(fh, z, path) if mapped else z
            return cls(**{n: _decode(n, fields[n], source) for n in names})
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, struct.error) as exc:
        raise UnreadableArrays(f"{path}: {exc}") from exc
