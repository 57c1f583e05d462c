"""A read-only store path and a full disk, for real: a private mount namespace per test.

``unshare -rm`` gives the command its own mount namespace (as a user namespace's
root, so no privileges are needed): there a folder is bind-mounted read-only, or
a small tmpfs stands in for a disk that fills up. The kernel answers EROFS and
ENOSPC exactly as it would on a real volume.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from tests.conftest import snapshot

KOLMATCH = f"{shlex.quote(sys.executable)} -m kolmatch.cli"


def _namespace_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


@pytest.fixture(scope="module", autouse=True)
def _needs_namespaces() -> None:
    if not _namespace_works():
        msg = "these tests need `unshare -rm` (util-linux, user namespaces) to mount for real"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)


def in_namespace(
    script: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a shell script in a private mount namespace; mounts vanish when it ends."""
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


@pytest.fixture
def loaded(tiny_market: Path, tmp_path: Path) -> Path:
    """A folder holding a store with the tiny market in it."""
    d = tmp_path / "store"
    d.mkdir()
    store = SQLiteStore(d / "graph.db")
    load_folder(tiny_market, store)
    store.close()
    return d


def _intact(db: Path, expected: dict[str, object]) -> None:
    with sqlite3.connect(db) as con:  # opening rolls back any hot journal first
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = SQLiteStore(db)
    assert snapshot(store) == expected, "the store changed"
    store.close()


def test_a_load_into_a_read_only_store_fails_clearly_and_changes_nothing(
    loaded: Path, s_market: Path, tmp_path: Path, ledger: Any
) -> None:
    case = ledger.case(
        "Faults", "store folder read-only (EROFS) during a load; reads with a read-only cache"
    )
    store = SQLiteStore(loaded / "graph.db")
    before = snapshot(store)
    store.close()
    d = shlex.quote(str(loaded))
    r = in_namespace(
        f"mount --bind {d} {d} && mount -o remount,ro,bind {d} && "
        f"{KOLMATCH} load {shlex.quote(str(s_market))} --store sqlite:///{d}/graph.db"
    )
    assert r.returncode == 1, r.stderr
    assert f"{loaded}/graph.db" in r.stderr and "readonly" in r.stderr.replace("-", "")
    assert "Traceback" not in r.stderr
    _intact(loaded / "graph.db", before)
    case.tried()

    # reading still works from the read-only store and a read-only cache folder (not cached)
    cache = tmp_path / "cache"
    cache.mkdir()
    c = shlex.quote(str(cache))
    r = in_namespace(
        f"mount --bind {d} {d} && mount -o remount,ro,bind {d} && "
        f"mount --bind {c} {c} && mount -o remount,ro,bind {c} && "
        f"{KOLMATCH} match m0 --top 3 --store sqlite:///{d}/graph.db",
        {"KOLMATCH_CACHE": str(cache)},
    )
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip().splitlines()) >= 3
    assert "cannot write the features cache" in r.stderr and "Read-only file system" in r.stderr
    assert list(cache.iterdir()) == []
    case.tried()


def test_a_load_that_fills_the_disk_fails_clearly_and_changes_nothing(
    loaded: Path, s_market: Path, tmp_path: Path, ledger: Any
) -> None:
    case = ledger.case("Faults", "disk full (ENOSPC) in the middle of a load")
    store = SQLiteStore(loaded / "graph.db")
    before = snapshot(store)
    store.close()
    size_kib = (loaded / "graph.db").stat().st_size // 1024 + 4096  # the s market needs ~100 MiB
    disk, after = tmp_path / "disk", tmp_path / "after"
    disk.mkdir()
    after.mkdir()
    k, src, out = (shlex.quote(str(x)) for x in (disk, loaded, after))
    r = in_namespace(
        f"mount -t tmpfs -o size={size_kib}k tmpfs {k} && cp -a {src}/. {k}/ && "
        f"{KOLMATCH} load {shlex.quote(str(s_market))} --store sqlite:///{k}/graph.db; "
        f"rc=$?; cp -a {k}/. {out}/; exit $rc"
    )
    assert r.returncode == 1, r.stderr
    assert "disk is full" in r.stderr and "nothing was written" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert sorted(p.name for p in after.iterdir()) == ["graph.db"], "debris left behind"
    _intact(after / "graph.db", before)
    case.tried()


def test_a_full_cache_disk_costs_speed_not_answers(
    loaded: Path, tmp_path: Path, ledger: Any
) -> None:
    case = ledger.case("Faults", "feature cache folder full")
    ok = subprocess.run(
        [
            *shlex.split(KOLMATCH),
            "match",
            "m0",
            "--top",
            "3",
            "--store",
            f"sqlite:///{loaded}/graph.db",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "KOLMATCH_CACHE": str(tmp_path / "roomy")},
    )
    assert ok.returncode == 0, ok.stderr
    cache = shlex.quote(str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    r = in_namespace(
        f"mount -t tmpfs -o size=16k tmpfs {cache} && "
        f"{KOLMATCH} match m0 --top 3 --store sqlite:///{loaded}/graph.db; "
        f"rc=$?; ls -A {cache}; exit $rc",
        {"KOLMATCH_CACHE": str(tmp_path / "cache")},
    )
    assert r.returncode == 0, r.stderr
    assert "No space left on device" in r.stderr
    assert r.stdout.startswith(ok.stdout), "a different answer without the cache"
    # what is left fitted whole (the small calibration, written then renamed), nothing half
    left = r.stdout[len(ok.stdout) :].split()
    assert all(n.startswith("calibration-") and n.endswith(".npz") for n in left), left
    case.tried()
