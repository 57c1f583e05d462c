"""Dataclasses of arrays in one ``.npz``: read back equal, memory-mapped copy-on-write."""

from __future__ import annotations

import dataclasses
import json
import mmap
import os
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from kolmatch.engine.arrays import UnreadableArrays, read_arrays, write_arrays


@dataclasses.dataclass
class Sample:
    vector: np.ndarray
    matrix: np.ndarray  # Fortran order
    flags: np.ndarray
    texts: np.ndarray  # fixed-width text
    empty: np.ndarray
    names: np.ndarray  # objects: kept as JSON
    links: sp.csr_matrix
    groups: list[np.ndarray]
    day: date
    rate: float


def _sample() -> Sample:
    rng = np.random.default_rng(7)
    return Sample(
        vector=rng.random(1000),
        matrix=np.asfortranarray(rng.random((40, 30))),
        flags=rng.random(77) > 0.5,
        texts=np.array(["a", "bc", "def"]),
        empty=np.zeros((0, 3), dtype=np.int32),
        names=np.array(["x", None], dtype=object),
        links=sp.random(50, 60, density=0.1, format="csr", random_state=3),
        groups=[np.arange(3), np.zeros(0, dtype=np.int64), np.arange(5, 9)],
        day=date(2026, 12, 3),
        rate=0.25,
    )


def _assert_equal(a: Sample, b: Sample) -> None:
    for field in dataclasses.fields(Sample):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if sp.issparse(x):
            assert (x != y).nnz == 0 and x.shape == y.shape, field.name
        elif isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape, field.name
            assert np.array_equal(x, y), field.name
        elif isinstance(x, list):
            assert len(x) == len(y) and all(np.array_equal(p, q) for p, q in zip(x, y, strict=True))
        else:
            assert x == y, field.name


def _mapped(a: np.ndarray) -> bool:
    base = a.base
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)


@pytest.mark.parametrize("mapped", [True, False])
def test_every_kind_reads_back_equal(tmp_path: Path, mapped: bool) -> None:
    value = _sample()
    write_arrays(tmp_path / "s.npz", value, version=3)
    back = read_arrays(tmp_path / "s.npz", Sample, version=3, mapped=mapped)
    _assert_equal(back, value)
    assert back.matrix.flags.f_contiguous
    numeric = [back.vector, back.matrix, back.flags, back.texts, back.links.data]
    numeric += [back.links.indices, back.links.indptr, *back.groups]
    for a in numeric:
        assert a.flags.aligned and a.flags.writeable  # a product never copies it first
        assert _mapped(a) is mapped
    with np.load(tmp_path / "s.npz", allow_pickle=False) as z:  # an ordinary .npz all the same
        assert np.array_equal(z["vector"], value.vector)


def test_a_file_np_savez_wrote_is_read_its_misaligned_arrays_copied(tmp_path: Path) -> None:
    """An entry written before arrays were aligned: still read, never a misaligned array."""
    path = tmp_path / "s.npz"
    write_arrays(path, _sample(), version=1)
    with np.load(path, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    np.savez(tmp_path / "old.npz", **members)
    back = read_arrays(tmp_path / "old.npz", Sample, version=1)
    _assert_equal(back, _sample())
    assert back.vector.flags.aligned and back.links.data.flags.aligned


def test_a_mapped_array_is_private_once_written(tmp_path: Path) -> None:
    path = tmp_path / "s.npz"
    write_arrays(path, _sample(), version=1)
    before = path.read_bytes()
    first = read_arrays(path, Sample, version=1)
    first.vector[:] = -1.0  # copy-on-write: this process's pages only
    first.links.data[:] = 0.0
    assert path.read_bytes() == before
    again = read_arrays(path, Sample, version=1)
    _assert_equal(again, _sample())


def test_a_file_replaced_or_removed_under_a_mapping_leaves_it_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "s.npz"
    write_arrays(path, _sample(), version=1)
    held = read_arrays(path, Sample, version=1)
    other = dataclasses.replace(_sample(), vector=np.full(1000, 9.0))
    write_arrays(tmp_path / "new.npz", other, version=1)
    os.replace(tmp_path / "new.npz", path)  # how the cache puts a newer entry in place
    _assert_equal(held, _sample())
    assert np.array_equal(read_arrays(path, Sample, version=1).vector, other.vector)
    path.unlink()  # evicted while served
    _assert_equal(held, _sample())


def test_a_compressed_archive_is_read_into_memory(tmp_path: Path) -> None:
    plain, packed = tmp_path / "s.npz", tmp_path / "c.npz"
    write_arrays(plain, _sample(), version=1)
    with np.load(plain, allow_pickle=False) as z:
        np.savez_compressed(packed, **{k: z[k] for k in z.files})
    back = read_arrays(packed, Sample, version=1)
    _assert_equal(back, _sample())
    assert not _mapped(back.vector)


def test_a_damaged_file_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "s.npz"
    write_arrays(path, _sample(), version=1)
    data = bytearray(path.read_bytes())
    at = data.index(b"vector.npy") - 30  # the member's local header
    assert data[at : at + 4] == b"PK\x03\x04"
    data[at : at + 4] = b"XXXX"
    path.write_bytes(bytes(data))
    with pytest.raises(UnreadableArrays, match=r"s\.npz"):
        read_arrays(path, Sample, version=1)
    path.write_bytes(b"not a zip")
    with pytest.raises(UnreadableArrays, match=r"s\.npz"):
        read_arrays(path, Sample, version=1)


def test_another_version_or_class_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.npz"
    write_arrays(path, _sample(), version=1)
    with pytest.raises(UnreadableArrays, match="version 2"):
        read_arrays(path, Sample, version=2)
    with np.load(path, allow_pickle=False) as z:
        header = json.loads(str(z["__meta__"]))
    assert header["class"] == "Sample"
