"""Where a feature build's partitions run: this process, or a Dask cluster named by its scheduler.

The build's partitioned stages (:mod:`kolmatch.matching.partition`) take a
:class:`~kolmatch.matching.partition.PartitionMap`. Without a scheduler address it is
:func:`~kolmatch.matching.partition.in_process`; with one (``--dask tcp://host:8786`` or the
``KOLMATCH_DASK`` environment variable, the argument winning), :func:`partitions_on` connects a
``distributed.Client`` for the build, and :class:`DaskPartitions` broadcasts the shared arrays
to every worker once, scatters the parts, maps the partition function over them and gathers
the results in part order, so the reduce adds them in the same order as in process and the
features are the same (docs/scale.md). Dask does the scheduling; nothing here decides where a
part runs.

The shared arrays go to the workers one of two ways. Where every worker can read a file this
process writes (the workers of one machine, or a folder on a file system they share:
``KOLMATCH_DASK_SHARED_DIR``), they are written once to a file of raw array bytes, and each
worker memory-maps it (:func:`write_shared`, :func:`map_shared`): one copy in the machine's
page cache for all its workers, where a copy sent to each worker held the audience graph and
its transpose once per worker. Otherwise Dask sends them, one copy to each worker
(``scatter(broadcast=True)``).
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import pickle
import secrets
import socket
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar

from kolmatch.errors import BadArgument, StoreUnavailable
from kolmatch.matching.partition import PartitionMap, in_process

__all__ = [
    "CONNECT_TIMEOUT_S",
    "DASK_ENVIRONMENT_VARIABLE",
    "DASK_OPTION",
    "DASK_OPTION_VARIABLE",
    "SHARED_DIR_VARIABLE",
    "DaskPartitions",
    "SharedFile",
    "dask_address",
    "dask_argument",
    "map_shared",
    "partitions_on",
    "use_dask_option",
    "write_shared",
]

log = logging.getLogger(__name__)

PartT = TypeVar("PartT")
SharedT = TypeVar("SharedT")
ResultT = TypeVar("ResultT")

#: The environment variable naming the scheduler (``tcp://host:8786``); unset or empty: in
#: process. An explicit address (``--dask``) wins over it.
DASK_ENVIRONMENT_VARIABLE = "KOLMATCH_DASK"

#: The command line's option naming the scheduler.
DASK_OPTION = "--dask"

#: Set with ``KOLMATCH_DASK``, to the same address, when the command line's ``--dask`` gave it
#: (:func:`use_dask_option`), so that errors name the option the user typed, here and in the
#: processes started with this environment (serve's workers).
DASK_OPTION_VARIABLE = "KOLMATCH_DASK_OPTION"

#: Seconds to wait for the scheduler to answer, then for it to have a worker, before giving up.
CONNECT_TIMEOUT_S = 10.0

#: The folder a build writes its shared arrays to for the workers to map: one every worker can
#: read at the same path (on a cluster, a shared file system). Unset or empty: this machine's
#: temporary folder, used when every worker reads a file written there (the workers run on this
#: machine); ``off``: always sent to each worker by Dask.
SHARED_DIR_VARIABLE = "KOLMATCH_DASK_SHARED_DIR"

#: Each array's bytes start at a multiple of this in a shared file (a page: mapped views of any
#: dtype are aligned).
_ALIGN = 4096


def dask_address(
    explicit: str | None = None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The scheduler address a build should use: ``explicit``, else ``KOLMATCH_DASK``; None
    (build in process) when neither names one. An empty ``explicit`` means in process even
    when the environment names a scheduler.

    Examples
    --------
    >>> dask_address("tcp://10.0.0.5:8786", {})
    'tcp://10.0.0.5:8786'
    >>> dask_address(None, {"KOLMATCH_DASK": " tcp://sched:8786 "})
    'tcp://sched:8786'
    >>> dask_address("", {"KOLMATCH_DASK": "tcp://sched:8786"}) is None
    True
    >>> dask_address(None, {}) is None
    True
    """
    env = os.environ if environ is None else environ
    text = explicit if explicit is not None else env.get(DASK_ENVIRONMENT_VARIABLE, "")
    return text.strip() or None


def use_dask_option(address: str, environ: MutableMapping[str, str] | None = None) -> None:
    """Make the command line's ``--dask ADDRESS`` the scheduler of this process and its children.

    The engine reads its cluster from ``KOLMATCH_DASK``; the address is set there, and
    recorded as the option's (:data:`DASK_OPTION_VARIABLE`) for :func:`dask_argument`.

    Parameters
    ----------
    address
        What ``--dask`` was given (empty: build in process).
    environ
        The environment to set (default ``os.environ``).

    Examples
    --------
    >>> env = {}
    >>> use_dask_option("tcp://sched:8786", env)
    >>> dask_address(None, env), dask_argument(None, env)
    ('tcp://sched:8786', '--dask')
    """
    env = os.environ if environ is None else environ
    env[DASK_ENVIRONMENT_VARIABLE] = address
    env[DASK_OPTION_VARIABLE] = address


def dask_argument(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """How the user named the scheduler :func:`dask_address` returns, for its errors.

    ``dask`` (the argument of a call) when ``explicit`` is given; else ``--dask`` when the
    command line set ``KOLMATCH_DASK`` from its option (:func:`use_dask_option`) and it still
    holds that address; else ``KOLMATCH_DASK``.

    Parameters
    ----------
    explicit, environ
        As :func:`dask_address`.

    Examples
    --------
    >>> dask_argument("tcp://sched:8786", {})
    'dask'
    >>> dask_argument(None, {"KOLMATCH_DASK": "tcp://sched:8786"})
    'KOLMATCH_DASK'
    >>> env = {"KOLMATCH_DASK": "tcp://b:8786", "KOLMATCH_DASK_OPTION": "tcp://a:8786"}
    >>> dask_argument(None, env)  # set again after the option: the variable's address
    'KOLMATCH_DASK'
    """
    if explicit is not None:
        return "dask"
    env = os.environ if environ is None else environ
    given = env.get(DASK_ENVIRONMENT_VARIABLE)
    if given is not None and env.get(DASK_OPTION_VARIABLE) == given:
        return DASK_OPTION
    return DASK_ENVIRONMENT_VARIABLE


@dataclass(frozen=True)
class SharedFile:
    """A value written by :func:`write_shared`: its pickle stream, the arrays' bytes apart.

    ``header`` is the pickle stream with every array's bytes taken out of band (protocol 5);
    ``spans`` says where each one lies in the file at ``path``. The file holds raw bytes only:
    whoever could write it changes data, never runs code (the stream, which can, travels with
    Dask's own messages).
    """

    path: str
    header: bytes
    spans: tuple[tuple[int, int], ...]


def write_shared(value: object, folder: str | Path) -> SharedFile:
    """Write ``value``'s arrays to a new file in ``folder`` for :func:`map_shared`.

    Parameters
    ----------
    value
        Anything picklable; its contiguous numpy arrays (sparse matrices' too) go to the file
        without a copy in memory.
    folder
        Where the file is made (``kolmatch-shared-*.bin``); the caller deletes it.

    Returns
    -------
    SharedFile
        The file's path, the pickle stream and where each array's bytes lie.

    Raises
    ------
    OSError
        If the file cannot be written (the folder missing, the disk full); no file is left.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     f = write_shared({"a": np.arange(4.0), "n": 3}, d)
    ...     v = map_shared(f)
    ...     v["a"].tolist(), v["n"]
    ([0.0, 1.0, 2.0, 3.0], 3)
    """
    buffers: list[pickle.PickleBuffer] = []
    header = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    # named by the writer's process: a file whose writer was killed (SIGTERM, SIGKILL: no
    # finally ran) is found and deleted by the next build of this machine (_drop_orphans)
    fd, path = tempfile.mkstemp(prefix=f"kolmatch-shared-{os.getpid()}-", suffix=".bin", dir=folder)
    spans = []
    try:
        with os.fdopen(fd, "wb") as out:
            for b in buffers:
                raw = b.raw()
                out.write(bytes(-out.tell() % _ALIGN))
                spans.append((out.tell(), raw.nbytes))
                out.write(raw)
    except BaseException:
        Path(path).unlink(missing_ok=True)
        raise
    return SharedFile(path, header, tuple(spans))


def _drop_orphans(folder: str | Path) -> list[Path]:
    """Delete the shared files in ``folder`` whose writing process, on this machine, is gone
    (killed during a build: nothing deleted them); returns them. Files of live processes,
    and names not of this form, are left alone."""
    dropped = []
    for old in Path(folder).glob("kolmatch-shared-*-*.bin"):
        pid = old.name.split("-")[2]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # alive (or not ours to signal): its build may be running
        except ProcessLookupError:
            pass
        except OSError:
            continue
        with contextlib.suppress(OSError):
            old.unlink()
            dropped.append(old)
    return dropped


def map_shared(f: SharedFile) -> Any:
    """The value :func:`write_shared` wrote, its arrays memory-mapped from the file.

    Copy-on-write: the pages are shared with every other process mapping the file, and a write
    to one makes a private copy (the file never changes).

    Parameters
    ----------
    f
        What :func:`write_shared` returned.

    Returns
    -------
    object
        The value, its arrays views of the mapping (which lives as long as they do).

    Raises
    ------
    OSError
        If the file cannot be read (a worker on another machine than the writer, without the
        folder shared).

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     v = map_shared(write_shared([np.zeros(0), np.ones(2)], d))
    ...     [a.tolist() for a in v]
    [[], [1.0, 1.0]]
    """
    with open(f.path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if not size:  # every array empty (or none): nothing to map
            return pickle.loads(f.header, buffers=[bytearray() for _ in f.spans])
        view = memoryview(mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_COPY))
    return pickle.loads(f.header, buffers=[view[o : o + n] for o, n in f.spans])


#: This worker process's mapped shared values by file, while a build uses them.
_mapped: dict[str, Any] = {}
#: The files whose stage ended: a task of theirs that starts late maps without keeping it.
_retired: set[str] = set()
_mapped_lock = threading.Lock()


def _shared_on_worker(f: SharedFile) -> Any:
    """``f``'s value, mapped once per worker process (its threads and parts share it)."""
    with _mapped_lock:
        if f.path in _mapped:
            return _mapped[f.path]
        for gone in [p for p in _mapped if not os.path.exists(p)]:
            # a file is deleted when its stage ends: a stage whose client could not say so
            # (closed first) leaves its mapping here until the next stage maps
            del _mapped[gone]
        try:
            value = map_shared(f)
        except OSError as exc:  # e.g. a worker that joined on another machine after the probe
            raise OSError(
                f"this worker cannot read the build's shared arrays at {f.path} ({exc}): set "
                f"{SHARED_DIR_VARIABLE} to a folder every worker shares, or to off"
            ) from exc
        if f.path not in _retired:
            _mapped[f.path] = value
        return value


def _unmap(path: str) -> bool:
    """Drop this worker's mapping of ``path`` (its pages go when the last array does); a task
    of that file's stage starting later maps it for itself only."""
    with _mapped_lock:
        _retired.add(path)
        return _mapped.pop(path, None) is not None


#: The end of the parts (None may be a part).
_END = object()


def _on_mapped(
    part: PartT, *, fn: Callable[[PartT, SharedT], ResultT], shared: SharedFile
) -> ResultT:
    return fn(part, _shared_on_worker(shared))


def _cancel(client: Any, futures: list[Any]) -> None:
    """Release ``futures`` on the cluster; nothing to do once the client is closed (the
    cluster released them with it)."""
    with contextlib.suppress(Exception):
        client.cancel(futures)


def _read_probe(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


class DaskPartitions:
    """A :class:`~kolmatch.matching.partition.PartitionMap` on a Dask cluster.

    Parameters
    ----------
    client
        A connected ``distributed.Client`` (the caller closes it).
    shared_dir
        Where the shared arrays are written for the workers to map; None: from
        :data:`SHARED_DIR_VARIABLE` (read now). ``"off"``: sent to each worker by Dask.

    Attributes
    ----------
    mapped
        Whether the last call's workers mapped the shared arrays from a file (else Dask sent
        them to each): decided by the first call, which checks every worker reads a file
        written to the folder.
    """

    def __init__(self, client: Any, shared_dir: str | None = None) -> None:
        self.client = client
        given = os.environ.get(SHARED_DIR_VARIABLE, "") if shared_dir is None else shared_dir
        self._explicit = bool(given.strip())
        self._folder: str | None = given.strip() or tempfile.gettempdir()
        if given.strip().lower() == "off":
            self._folder = None
        self._checked = False
        self.mapped = False

    def _shared_folder(self) -> str | None:
        """The folder every worker reads files of, once checked; None if there is none."""
        if self._checked:
            return self._folder
        self._checked = True
        if self._folder is None:
            return None
        token = secrets.token_hex(16)
        try:
            fd, probe = tempfile.mkstemp(prefix="kolmatch-probe-", dir=self._folder)
        except OSError as exc:
            if self._explicit:
                raise BadArgument(
                    SHARED_DIR_VARIABLE,
                    f"{self._folder}: cannot write there ({exc}); name a folder that exists and "
                    "can be written, or off",
                ) from None
            self._folder = None
            return None
        try:
            with os.fdopen(fd, "w") as out:
                out.write(token)
            seen = self.client.run(_read_probe, probe)
        finally:
            Path(probe).unlink(missing_ok=True)
        blind = sorted(w for w, text in seen.items() if text != token)
        if blind:
            if self._explicit:
                raise BadArgument(
                    SHARED_DIR_VARIABLE,
                    f"{self._folder}: the workers {blind} cannot read what this process "
                    "writes there; name a folder they share, or off",
                )
            log.info("kolmatch: workers %s are on other machines: arrays sent to each", blind)
            self._folder = None
        return self._folder

    def __call__(
        self,
        fn: Callable[[PartT, SharedT], ResultT],
        parts: Iterable[PartT],
        shared: SharedT,
    ) -> Iterator[ResultT]:
        """``fn(part, shared) for part in parts``, on the cluster's workers, in part order.

        A window of parts is on the cluster at a time (:meth:`window`: two a worker thread),
        the next one sent as a result is taken: this process holds one part's result at a time
        while the reduce folds them, as in process, and the workers a window's parts. Sending
        every part at once held every part on the workers and every result here (the m
        market, 2 workers: the client 3,102 -> 2,089 MiB, each worker 1,243 -> 563 MiB).

        Parameters
        ----------
        fn
            The partition function (importable by the workers).
        parts
            The parts, read once, as the window moves.
        shared
            What every part's call reads: mapped from a file or sent to each worker (above).

        Yields
        ------
        object
            ``fn(part, shared)`` for each part, in the order of ``parts``.

        Raises
        ------
        BadArgument
            If :data:`SHARED_DIR_VARIABLE` names a folder that cannot be written, or that some
            workers cannot read.
        """
        todo: Iterator[Any] = iter(parts)
        first = next(todo, _END)
        if first is _END:  # no part: no file, no probe, nothing sent
            return
        todo = chain([first], todo)
        c = self.client
        file = self._write_shared(shared)
        self.mapped = file is not None
        pending: deque[tuple[Any, Any]] = deque()
        shared_f = None
        try:
            # the shared value (or the mapped file's small pickle stream) once per worker, not
            # with every part's task; hash=False: never deduplicated against an earlier build
            shared_f = c.scatter(shared if file is None else file, broadcast=True, hash=False)
            task: Callable[..., ResultT] = fn if file is None else partial(_on_mapped, fn=fn)
            window = self.window()
            drawn_all = False
            while True:
                while not drawn_all and len(pending) < window:
                    part = next(todo, _END)
                    if part is _END:
                        drawn_all = True
                        break
                    # a list of one: scatter would split a tuple part into its items
                    (part_f,) = c.scatter([part], hash=False)
                    pending.append((part_f, c.submit(task, part_f, shared=shared_f, pure=False)))
                if not pending:
                    return
                part_f, future = pending[0]
                result = future.result()
                pending.popleft()
                _cancel(c, [future, part_f])
                yield result
        finally:
            # also when the consumer stopped early or raised, and when the client is closed
            # by then (the generator collected after partitions_on's block): nothing is left
            try:
                left = [f for both in pending for f in both]
                _cancel(c, left if shared_f is None else [*left, shared_f])
                if file is not None:
                    with contextlib.suppress(Exception):  # a worker gone: its mapping with it
                        c.run(_unmap, file.path)
            finally:
                if file is not None:
                    Path(file.path).unlink(missing_ok=True)

    def _write_shared(self, shared: object) -> SharedFile | None:
        """``shared`` written for the workers to map, or None where they cannot (it is sent):
        no folder they all read, or the default folder cannot hold it (a small ``/tmp``)."""
        folder = self._shared_folder()
        if folder is None:
            return None
        if not self._explicit:  # this machine's folder: its dead processes' files are ours
            for old in _drop_orphans(folder):
                log.info("kolmatch: deleted %s, left by a build that was killed", old)
        try:
            return write_shared(shared, folder)
        except OSError as exc:
            if self._explicit:
                raise BadArgument(
                    SHARED_DIR_VARIABLE,
                    f"{folder}: cannot write the shared arrays there ({exc}); name a folder "
                    "with room, or off",
                ) from None
            self._folder = None  # said once: the build's later stages send theirs too
            log.warning(
                "kolmatch: cannot write the shared arrays to %s (%s): sent to each worker; set "
                "%s to a folder with room",
                folder,
                exc,
                SHARED_DIR_VARIABLE,
            )
            return None

    def window(self) -> int:
        """How many parts are on the cluster at once.

        Returns
        -------
        int
            Two for each worker thread (one computing, one waiting), at least two.
        """
        return max(2, 2 * int(sum(self.client.nthreads().values())))


def _probe(address: str, timeout: float) -> None:
    """Fail fast (refused, unknown host) on a TCP address before Dask's retries take the
    whole timeout; other schemes go straight to the client."""
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import backends

    scheme, location = parse_address(address)
    if scheme not in backends:
        raise ValueError(f"unknown scheme {scheme!r}: one of {', '.join(sorted(backends))}")
    if scheme not in ("tcp", "tls"):
        return
    host, port = parse_host_port(location)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        if scheme != "tcp":
            return
        # a Dask server speaks first (its handshake); an HTTP server, say, waits for a request,
        # and Dask's client then waited on it for minutes, whatever its timeout
        sock.settimeout(timeout)
        try:
            first = sock.recv(1)
        except TimeoutError:
            raise _NotDask(f"it said nothing in {timeout:g} s") from None
        if not first:
            raise _NotDask("it closed the connection")


class _NotDask(Exception):
    """Something listens at the address, but not a Dask scheduler."""


def _connect(address: str, timeout: float, argument: str) -> Any:
    try:
        from distributed import Client
    except ImportError:
        raise BadArgument(
            argument,
            f"{address}: running a build on Dask needs the distributed package "
            "(pip install 'kolmatch[dask]'); unset it to build in process",
        ) from None
    try:
        _probe(address, timeout)
    except ValueError as exc:  # not an address (no port, unknown scheme)
        raise BadArgument(
            argument, f"{address!r} is not a Dask scheduler address ({exc})"
        ) from None
    except _NotDask as exc:
        raise StoreUnavailable(
            f"what listens at {address} ({argument}) is not a Dask scheduler ({exc}); name the "
            "scheduler's port (dask scheduler prints it), or unset it to build in process"
        ) from None
    except OSError as exc:
        raise StoreUnavailable(
            f"the Dask scheduler at {address} ({argument}) cannot be reached ({exc}); start it "
            "(dask scheduler) or unset it to build in process"
        ) from None
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except Exception as exc:  # timed out, or something that is not a scheduler answered
        raise StoreUnavailable(
            f"the Dask scheduler at {address} ({argument}) did not answer as one within "
            f"{timeout:g} s ({type(exc).__name__}: {exc})"
        ) from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        client.close()
        raise StoreUnavailable(
            f"the Dask scheduler at {address} ({argument}) has no worker after {timeout:g} s: "
            f"start some (dask worker {address})"
        ) from None
    return client


@contextmanager
def partitions_on(
    address: str | None,
    *,
    timeout: float = CONNECT_TIMEOUT_S,
    argument: str = DASK_ENVIRONMENT_VARIABLE,
) -> Iterator[PartitionMap]:
    """The partition map of a build: in process if ``address`` is None, else on its cluster.

    Connects a client for the block and closes it after (a build is minutes apart from the
    next; a serving process holds no connection between builds).

    Parameters
    ----------
    address
        The scheduler (:func:`dask_address`), or None.
    timeout
        Seconds to wait for the scheduler, then again for a worker.
    argument
        How the caller named the address (``--dask``, ``KOLMATCH_DASK``: :func:`dask_argument`),
        for errors.

    Raises
    ------
    StoreUnavailable
        If the scheduler cannot be reached, is not a Dask scheduler, or has no worker in time.
    BadArgument
        If ``address`` is not an address, or the distributed package is not installed.

    Examples
    --------
    >>> with partitions_on(None) as run:
    ...     list(run(lambda part, shared: part + shared, [1, 2], 10))
    [11, 12]
    """
    if address is None:
        yield in_process
        return
    client = _connect(address, timeout, argument)
    try:
        yield DaskPartitions(client)
    finally:
        client.close()
