"""Work bounded by its request: killable solver processes under a cap, and jobs.

HiGHS (scipy's ``milp``) cannot be interrupted from Python, and a thread cannot be killed:
a plan or an assignment that outlived its request kept a core busy for minutes (issue 18).
:class:`SolverPool` runs such a computation in a forked process (which inherits the
snapshot's arrays without copying them) and kills it when the caller's
:class:`~kolmatch.errors.Cancel` is set; at most ``processes`` run at once, so the server's
own threads keep a core for match lists. :class:`JobBoard` runs long operations (a market
assignment, a full refresh) in the background: a mutation returns a job id at once, a query
reads its status and result, and a cancelled job's process is killed.

A request's token, pool and board reach its resolvers through :func:`request_work`, set by
the app around each request's execution (:func:`bound_work`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from kolmatch.errors import BadArgument, Cancel, Cancelled, KolmatchError, LimitExceeded, UnknownId

__all__ = [
    "JOB_STATES",
    "Job",
    "JobBoard",
    "RequestWork",
    "SolverPool",
    "bound_work",
    "request_work",
]

log = logging.getLogger("kolmatch.engine")

T = TypeVar("T")

#: What a job can be doing.
JOB_STATES = ("queued", "running", "done", "failed", "cancelled")
#: How often a waiting caller looks at its token and its process (seconds): the kill
#: follows a cancel within about this.
POLL_S = 0.02


class SolverPool:
    """Run uninterruptible computations in processes that can be killed, a few at a time.

    Parameters
    ----------
    processes
        Most computations running at once (default 1: on 2 cores one stays for requests).
        0 runs them in the calling thread instead, stopped only cooperatively by their
        token's checks (HiGHS runs to its own limits).

    Examples
    --------
    >>> pool = SolverPool(1)
    >>> pool.run(pow, 2, 10, cancel=Cancel())
    1024
    """

    def __init__(self, processes: int = 1) -> None:
        if processes < 0:
            raise BadArgument("KOLMATCH_SOLVER_PROCESSES", f"must be 0 or more, got {processes}")
        self.processes = processes
        self._slots = threading.BoundedSemaphore(max(processes, 1))
        self._lock = threading.Lock()
        self._running: dict[int, multiprocessing.process.BaseProcess] = {}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> SolverPool:
        """``KOLMATCH_SOLVER_PROCESSES`` (default 1) solver processes.

        Raises
        ------
        BadArgument
            If it is not a whole number >= 0.
        """
        env = os.environ if environ is None else environ
        text = env.get("KOLMATCH_SOLVER_PROCESSES", "").strip() or "1"
        try:
            n = int(text)
        except ValueError:
            raise BadArgument(
                "KOLMATCH_SOLVER_PROCESSES", f"expected a whole number, got {text!r}"
            ) from None
        return cls(n)

    @property
    def pids(self) -> list[int]:
        """Process ids of the computations running now."""
        with self._lock:
            return sorted(self._running)

    def run(
        self,
        fn: Callable[..., T],
        /,
        *args: Any,
        cancel: Cancel,
        on_start: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> T:
        """``fn(*args, cancel=..., **kwargs)`` in a killable process; its value or its error.

        Waits for a free slot (giving up if ``cancel`` is set meanwhile), calls ``on_start``,
        then forks. The child gets a token with ``cancel``'s deadline; the parent kills it
        within :data:`POLL_S` of ``cancel`` being set. A kolmatch error raised in the child
        is raised here as itself.

        Raises
        ------
        Cancelled
            If ``cancel`` was set before the computation finished (its process is gone).
        KolmatchError
            Whatever ``fn`` raised on purpose.
        RuntimeError
            If the process died without an answer (a crash: a bug).
        """
        while not self._slots.acquire(timeout=POLL_S):
            cancel.check()
        try:
            cancel.check()
            if on_start is not None:
                on_start()
            if self.processes == 0:
                return fn(*args, cancel=cancel, **kwargs)
            return self._fork(fn, args, kwargs, cancel)
        finally:
            self._slots.release()

    def _fork(
        self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any], cancel: Cancel
    ) -> T:
        ctx = multiprocessing.get_context("fork")  # the child shares the snapshot's pages
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_child,
            args=(send, fn, args, kwargs, cancel.deadline),
            name="kolmatch-solver",
            daemon=True,
        )
        proc.start()
        send.close()
        assert proc.pid is not None
        with self._lock:
            self._running[proc.pid] = proc
        try:
            while True:
                if recv.poll(POLL_S):
                    try:
                        msg = recv.recv()
                    except EOFError:
                        msg = None
                    break
                if cancel.cancelled:
                    proc.kill()
                    cancel.check()
                if not proc.is_alive() and not recv.poll(0):
                    msg = None
                    break
        finally:
            if proc.is_alive() and cancel.cancelled:
                proc.kill()
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
            recv.close()
            with self._lock:
                self._running.pop(proc.pid, None)
        if msg is None:
            cancel.check()
            raise RuntimeError(f"the solver process ended without an answer ({proc.exitcode})")
        kind, payload = msg
        if kind == "ok":
            return payload  # type: ignore[no-any-return]
        if kind == "error":
            raise _rebuilt(*payload)
        raise RuntimeError(f"the solver process failed:\n{payload}")


def _child(
    send: Connection,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    deadline: float | None,
) -> None:
    """The forked process: compute, send ("ok", value) or the error, exit."""
    try:
        value = fn(*args, cancel=Cancel(deadline), **kwargs)
        msg: tuple[str, Any] = ("ok", value)
    except KolmatchError as exc:
        msg = ("error", (type(exc), str(exc), dict(exc.__dict__)))
    except BaseException:  # a bug: its traceback goes to the parent's log
        import traceback

        msg = ("crash", traceback.format_exc())
    send.send(msg)
    send.close()


def _rebuilt(cls: type[KolmatchError], message: str, state: dict[str, Any]) -> KolmatchError:
    """A kolmatch error sent from the child, as itself (its own __init__ takes other args)."""
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    exc.__dict__.update(state)
    return exc


@dataclass
class Job:
    """A long operation run in the background, as ``job(id:)`` reports it."""

    id: str
    kind: str  # "assignment" or "refresh"
    owner: str  # the principal that started it (``internal``, ``merchant:m3``)
    cancel: Cancel
    status: str = "queued"  # one of JOB_STATES
    created: float = field(default_factory=time.time)  # epoch seconds
    started: float | None = None
    finished: float | None = None
    result: Any = None
    error: KolmatchError | None = None
    #: a running refresh is not stopped: it swaps the snapshot in this process
    cancellable_while_running: bool = True
    note: str = ""

    def mark_running(self) -> None:
        if self.status == "queued":
            self.status = "running"
            self.started = time.time()

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")


class JobBoard:
    """The jobs of one server process: started, read and cancelled by their principal.

    Parameters
    ----------
    keep
        Finished jobs kept for reading (the oldest go first).
    per_owner
        Most queued or running jobs of one principal; one more is refused (LIMIT_EXCEEDED).
    """

    def __init__(self, *, keep: int = 100, per_owner: int = 4) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._keep = keep
        self._per_owner = per_owner

    def submit(
        self,
        kind: str,
        owner: str,
        work: Callable[[Job], Any],
        *,
        cancellable_while_running: bool = True,
        same_kind_once: bool = False,
    ) -> Job:
        """Start ``work(job)`` in a thread; the job at once, ``queued``.

        ``work`` calls ``job.mark_running()`` when it starts computing (after waiting for a
        solver slot) and returns the result. ``same_kind_once``: while a job of this kind
        is queued or running, that job is returned instead of starting another (a refresh).

        Raises
        ------
        LimitExceeded
            If ``owner`` already has ``per_owner`` queued or running jobs.
        """
        with self._lock:
            if same_kind_once:
                for j in self._jobs.values():
                    if j.kind == kind and j.active:
                        return j
            mine = sum(1 for j in self._jobs.values() if j.owner == owner and j.active)
            if mine >= self._per_owner:
                raise LimitExceeded(
                    "jobs",
                    mine + 1,
                    self._per_owner,
                    "queued or running jobs of one API principal",
                    "wait for one to finish, or cancel one (cancelJob)",
                )
            job = Job(
                id=f"job-{secrets.token_hex(8)}",
                kind=kind,
                owner=owner,
                cancel=Cancel(),
                cancellable_while_running=cancellable_while_running,
            )
            self._jobs[job.id] = job
            self._trim()
        threading.Thread(
            target=self._run, args=(job, work), name=f"kolmatch-{job.id}", daemon=True
        ).start()
        return job

    def get(self, job_id: str, owner: str, *, internal: bool) -> Job:
        """The job, if ``owner`` started it or the caller is internal.

        Raises
        ------
        UnknownId
            If there is no such job, or it is another principal's (its existence is not
            told).
        """
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or not (internal or job.owner == owner):
            raise UnknownId("Job", job_id)
        return job

    def cancel(self, job_id: str, owner: str, *, internal: bool) -> Job:
        """Cancel a queued or running job (its process is killed); a finished one is unchanged.

        A running refresh is not stopped (it swaps the snapshot in this process): the job
        says so in its ``note``.

        Raises
        ------
        UnknownId
            As :meth:`get`.
        """
        job = self.get(job_id, owner, internal=internal)
        with self._lock:
            if job.status == "queued" or (
                job.status == "running" and job.cancellable_while_running
            ):
                job.cancel.cancel("the job was cancelled")
                job.status, job.finished = "cancelled", time.time()
            elif job.status == "running":
                job.note = f"a running {job.kind} is not cancelled: it completes"
        return job

    def _run(self, job: Job, work: Callable[[Job], Any]) -> None:
        try:
            result = work(job)
        except Cancelled:
            with self._lock:
                job.status = "cancelled"
        except KolmatchError as exc:
            with self._lock:
                if job.status != "cancelled":
                    job.status, job.error = "failed", exc
        except Exception:  # a bug: logged; the job says "internal error"
            log.exception("job %s failed", job.id)
            with self._lock:
                if job.status != "cancelled":
                    job.status = "failed"
                    job.error = KolmatchError("internal error")
        else:
            with self._lock:
                if job.status != "cancelled":
                    job.status, job.result = "done", result
        finally:
            with self._lock:
                if job.finished is None:
                    job.finished = time.time()

    def _trim(self) -> None:
        done = [k for k, j in self._jobs.items() if not j.active]
        for k in done[: max(len(done) - self._keep, 0)]:
            del self._jobs[k]


@dataclass(frozen=True)
class RequestWork:
    """What bounds one request's work: its token, the solver processes, the job board."""

    cancel: Cancel
    solvers: SolverPool
    jobs: JobBoard


#: Outside a served request (a script executing the schema): never cancelled, in-thread.
_UNBOUND = RequestWork(Cancel(), SolverPool(0), JobBoard())
_current: ContextVar[RequestWork | None] = ContextVar("kolmatch_request_work", default=None)


def request_work() -> RequestWork:
    """The current request's :class:`RequestWork` (an unbounded one outside a request)."""
    return _current.get() or _UNBOUND


@contextmanager
def bound_work(work: RequestWork) -> Iterator[RequestWork]:
    """Make ``work`` the current request's for the block (the app wraps execution in it)."""
    token = _current.set(work)
    try:
        yield work
    finally:
        _current.reset(token)
