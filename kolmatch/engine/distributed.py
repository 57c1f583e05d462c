"""Where a feature build's partitions run: this process, or a Dask cluster named by its scheduler.

The build's partitioned stages (:mod:`kolmatch.matching.partition`) take a
:class:`~kolmatch.matching.partition.PartitionMap`. Without a scheduler address it is
:func:`~kolmatch.matching.partition.in_process`; with one (``--dask tcp://host:8786`` or the
``KOLMATCH_DASK`` environment variable, the argument winning), :func:`partitions_on` connects a
``distributed.Client`` for the build, and :class:`DaskPartitions` broadcasts the shared arrays
to every worker once (``scatter(broadcast=True)``), scatters the parts, maps the partition
function over them and gathers the results in part order, so the reduce adds them in the same
order as in process and the features are the same (docs/scale.md). Dask does the scheduling;
nothing here decides where a part runs.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any, TypeVar

from kolmatch.errors import BadArgument, StoreUnavailable
from kolmatch.matching.partition import PartitionMap, in_process

__all__ = [
    "CONNECT_TIMEOUT_S",
    "DASK_ENVIRONMENT_VARIABLE",
    "DASK_OPTION",
    "DASK_OPTION_VARIABLE",
    "DaskPartitions",
    "dask_address",
    "dask_argument",
    "partitions_on",
    "use_dask_option",
]

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


class DaskPartitions:
    """A :class:`~kolmatch.matching.partition.PartitionMap` on a Dask cluster.

    Parameters
    ----------
    client
        A connected ``distributed.Client`` (the caller closes it).
    """

    def __init__(self, client: Any) -> None:
        self.client = client

    def __call__(
        self,
        fn: Callable[[PartT, SharedT], ResultT],
        parts: Iterable[PartT],
        shared: SharedT,
    ) -> list[ResultT]:
        """``[fn(part, shared) for part in parts]``, computed on the cluster's workers."""
        c = self.client
        # one copy of the shared arrays per worker, not one per part; the parts spread over
        # the workers (hash=False: never deduplicated against an earlier build's data)
        shared_f = c.scatter(shared, broadcast=True, hash=False)
        parts_f = c.scatter(list(parts), hash=False)
        futures = c.map(fn, parts_f, shared=shared_f, pure=False)
        try:
            # gathered in the order of ``parts``, whatever order they finished in
            return list(c.gather(futures))
        finally:
            c.cancel([*futures, *parts_f, shared_f])


def _probe(address: str, timeout: float) -> None:
    """Fail fast (refused, unknown host) on a TCP address before Dask's retries take the
    whole timeout; other schemes go straight to the client."""
    from distributed.comm.addressing import parse_address, parse_host_port

    scheme, location = parse_address(address)
    if scheme not in ("tcp", "tls"):
        return
    host, port = parse_host_port(location)
    with socket.create_connection((host, port), timeout=timeout):
        pass


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
