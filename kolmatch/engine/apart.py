"""Full builds in a process of their own: the serving process goes on serving.

Measuring a calibration, or rebuilding the features after a bulk load, is a full read and
build of the market (minutes of CPU at m). Run in the serving process, it held the interpreter
lock against the requests and took both cores from them: on m with 50 clients and a write a
second, reads went from p99 0.7 s to 1.1 s and a follower lagged up to 4 s
(bench/consistency.py); a rebuild under the write lock stalled every write for minutes. Here a
child process does it (a calibration under ``nice`` 19, so the kernel gives the serving
processes the CPU first; a rebuild at their priority: :data:`BUILD_NICENESS`), and writes its
result beside the cache for the parent to load; the parent kills it when the service closes,
and it exits by itself if the parent dies.

Run as ``python -m kolmatch.engine.apart measure|build STORE_URI CACHE_DIR [FD]`` (what
:func:`measure_calibration_apart` and :func:`build_features_apart` do): prints one JSON line
naming what it wrote. ``FD`` is the read end of a pipe the parent holds open: the child exits
as soon as it closes, so a parent that dies (killed, or ending without closing the service)
leaves no build running behind it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from kolmatch.engine.cache import (
    Measured,
    cache_folder,
    load_features,
    measure_calibration,
    read_measured,
    write_measured,
)
from kolmatch.errors import Cancelled, StoreError
from kolmatch.graph.market import Identity
from kolmatch.graph.open import open_store

__all__ = ["BUILD_NICENESS", "NICENESS", "build_features_apart", "measure_calibration_apart"]

#: A calibration's child's CPU priority (``nice``): the lowest, so serving processes come first
#: (the calibration in effect serves meanwhile; nobody waits for a new one).
NICENESS = 19
#: A rebuild's: the serving processes' own. Until it ends, the version a bulk load made is not
#: served and writes are refused, so it must not starve under load: at nice 5, under 50 paced
#: clients on m's two workers (2 cores), the child had 7.8% of a core and was not done after
#: 8.5 min; at an equal share it takes about a third of the CPU, and reads slow by as much.
BUILD_NICENESS = 0


def _child(
    mode: str, uri: str, cache_dir: str | Path | None, stop: threading.Event, what: str
) -> dict[str, Any]:
    """Run this module's ``mode`` on ``uri`` in a child process; its JSON line."""
    folder = cache_folder(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    # the child watches the read end of a pipe whose write end only we hold: when we end,
    # however, it reads end-of-file and exits (no build left running for minutes)
    watch, held = os.pipe()
    argv = [sys.executable, "-m", "kolmatch.engine.apart", mode, uri, str(folder), str(watch)]
    with tempfile.TemporaryFile() as err, os.fdopen(held, "wb"):
        try:
            child = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=err, text=True, pass_fds=(watch,)
            )
        finally:
            os.close(watch)
        with child:
            try:
                while True:
                    try:
                        out, _ = child.communicate(timeout=0.2)
                        break
                    except subprocess.TimeoutExpired as waiting:
                        if stop.is_set():
                            raise Cancelled(f"the service closed while {what}") from waiting
            finally:
                if child.poll() is None:
                    child.kill()
            code = child.returncode
        if code != 0:
            err.seek(0)
            lines = err.read().decode(errors="replace").strip().splitlines()
            how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
            # its error's last line (a traceback ends with the exception and its message)
            said = lines[-1].strip() if lines else "no error output (out of memory? see dmesg)"
            raise StoreError(f"{what} of {uri} failed ({how}): {said}")
    parsed: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return parsed


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
    return read_measured(_child("measure", uri, cache_dir, stop, "measuring a calibration"))


def build_features_apart(uri: str, cache_dir: str | Path | None, stop: threading.Event) -> Identity:
    """:func:`~kolmatch.engine.cache.load_features` of the store at ``uri`` (a full build
    with the calibration in effect, cached), run in a child process at :data:`BUILD_NICENESS`.

    Parameters
    ----------
    uri, cache_dir, stop
        As :func:`measure_calibration_apart`; the features are cached in ``cache_dir`` as
        the version the child read (that version's cache entry, which any process loads).

    Returns
    -------
    Identity
        The graph version whose features are now cached.

    Raises
    ------
    StoreError
        If the child failed (the last lines of its error output are in the message).
    Cancelled
        If ``stop`` was set.
    """
    out = _child("build", uri, cache_dir, stop, "rebuilding the features")
    return str(out["graph_id"]), int(out["version"])


def main(argv: list[str] | None = None) -> int:
    """The child: measure or build, write the result beside the cache, print where (one JSON
    line)."""
    args = argv if argv is not None else sys.argv[1:]
    mode, uri, folder = args[:3]
    if len(args) > 3:  # the parent's pipe: its end closes when the parent ends, so do we
        watch = int(args[3])
        threading.Thread(target=_exit_with_parent, args=(watch,), daemon=True).start()
    if mode not in ("measure", "build"):
        print(
            f"usage: python -m kolmatch.engine.apart measure|build URI FOLDER (not {mode!r})",
            file=sys.stderr,
        )
        return 2
    os.nice(NICENESS if mode == "measure" else BUILD_NICENESS)
    store = open_store(uri)
    try:
        if mode == "measure":
            written = write_measured(measure_calibration(store), Path(folder))
        else:
            _, g = load_features(store, folder)
            written = {"graph_id": g.identity[0], "version": g.identity[1]}
    finally:
        store.close()
    print(json.dumps(written), flush=True)
    return 0


def _exit_with_parent(fd: int) -> None:
    """Block on the parent's pipe; at end-of-file (the parent ended) exit at once."""
    while os.read(fd, 1):
        pass
    os._exit(3)


if __name__ == "__main__":
    sys.exit(main())
