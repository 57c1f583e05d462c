"""A calibration measured in a process of its own, at the lowest CPU priority.

Measuring a calibration is a full read and build of the market (minutes of CPU at m). Run in
the serving process, it held the interpreter lock against the requests and took both cores
from them: on m with 50 clients and a write a second, reads went from p99 0.7 s to 1.1 s and
a follower lagged up to 4 s (bench/consistency.py). Here a child process does it under
``nice`` 19, so the kernel gives the serving processes the CPU first, and writes its result
beside the cache for the parent to load; the parent kills it when the service closes.

Run as ``python -m kolmatch.engine.recalibration STORE_URI CACHE_DIR`` (what
:func:`measure_calibration_apart` does): prints one JSON line naming the files it wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from kolmatch.engine.cache import (
    Measured,
    cache_folder,
    measure_calibration,
    read_measured,
    write_measured,
)
from kolmatch.errors import Cancelled, StoreError
from kolmatch.graph.open import open_store

__all__ = ["NICENESS", "measure_calibration_apart"]

#: The child's CPU priority (``nice``): the lowest, so serving processes come first.
NICENESS = 19


def measure_calibration_apart(
    uri: str, cache_dir: str | Path | None, stop: threading.Event
) -> Measured:
    """:func:`~kolmatch.engine.cache.measure_calibration` of the store at ``uri``, run in a
    child process at the lowest CPU priority.

    Parameters
    ----------
    uri
        The store's URI (the child opens it; Neo4j's credentials come from the environment,
        which it inherits).
    cache_dir
        The cache folder (as :func:`~kolmatch.engine.cache.load_features`), where the child
        writes its result (removed once read).
    stop
        Once set, the child is killed and :class:`~kolmatch.errors.Cancelled` raised.

    Returns
    -------
    Measured

    Raises
    ------
    StoreError
        If the child failed (the last lines of its error output are in the message).
    Cancelled
        If ``stop`` was set.
    """
    folder = cache_folder(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryFile() as err,
        subprocess.Popen(
            [sys.executable, "-m", "kolmatch.engine.recalibration", uri, str(folder)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        ) as child,
    ):
        try:
            while True:
                try:
                    out, _ = child.communicate(timeout=0.2)
                    break
                except subprocess.TimeoutExpired as waiting:
                    if stop.is_set():
                        msg = "the service closed while a calibration was measured"
                        raise Cancelled(msg) from waiting
        finally:
            if child.poll() is None:
                child.kill()
        if child.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace").strip().splitlines()[-5:]
            raise StoreError(f"measuring a calibration of {uri} failed: {' | '.join(tail)}")
    return read_measured(json.loads(out.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    """The child: measure, write the result beside the cache, print where (one JSON line)."""
    uri, folder = (argv if argv is not None else sys.argv[1:])[:2]
    os.nice(NICENESS)
    store = open_store(uri)
    try:
        m = measure_calibration(store)
    finally:
        store.close()
    print(json.dumps(write_measured(m, Path(folder))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
