"""Work bounded by its request: killable solver processes under a cap, and jobs.

HiGHS as scipy's ``milp`` runs it cannot be interrupted from Python, and a thread cannot be
killed: a plan or an assignment that outlived its request kept a core busy for minutes
(issue 18). (Plans now run HiGHS through highspy, which reads the token in its callbacks;
assignments do not, and the column generation's LPs of a plan neither.)
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

import json
import logging
import multiprocessing
import os
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from kolmatch.errors import BadArgument, Cancel, Cancelled, KolmatchError, LimitExceeded, UnknownId
from kolmatch.jsonio import dumps

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
#: How often a process looks in the shared jobs file for cancels of its jobs (seconds).
WATCH_S = 0.2
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
    ``fn`` takes the token as its ``cancel`` keyword (the child's, with the same deadline):

    >>> def power(x: int, n: int, *, cancel: Cancel) -> int:
    ...     cancel.check()
    ...     return x**n
    >>> SolverPool(1).run(power, 2, 10, cancel=Cancel())
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


def _alive(pid: int | None) -> bool:
    """Whether a process of this machine is still running (the shared file is local)."""
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _error_from(etype: str, message: str, state: str | None) -> KolmatchError:
    """A job's error as another process recorded it, as its own kolmatch class."""
    import importlib

    module, _, name = etype.partition(":")
    cls: Any = KolmatchError
    if module.startswith("kolmatch."):
        found = getattr(importlib.import_module(module), name, None)
        if isinstance(found, type) and issubclass(found, KolmatchError):
            cls = found
    return _rebuilt(cls, message, json.loads(state) if state else {})


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
    #: the result as the API shows it (JSON data: what another server process reads)
    out: Any = None
    #: told of every change of state (the board publishes it to its shared file)
    on_change: Callable[[Job], None] | None = field(default=None, repr=False, compare=False)

    def mark_running(self) -> None:
        if self.status == "queued":
            self.status = "running"
            self.started = time.time()
            if self.on_change is not None:
                self.on_change(self)

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")


class JobBoard:
    """The jobs of the server: started, read and cancelled by their principal.

    A job runs in the process that took its mutation. With ``shared`` (a SQLite file every
    process of ``kolmatch serve --workers N`` names: ``KOLMATCH_JOBS_FILE``) each job's state
    and presented result are also written there, so ``job(id:)`` and ``cancelJob`` answer in
    whichever process a request reaches: a cancel for another process's job is recorded in
    the file, and that process's watcher (every :data:`WATCH_S`) cancels it. A job whose
    process is gone reads as failed. Without ``shared`` the board is the process's alone.

    Parameters
    ----------
    keep
        Finished jobs kept for reading (the oldest go first).
    per_owner
        Most queued or running jobs of one principal (across the processes sharing the
        file); one more is refused (LIMIT_EXCEEDED).
    shared
        The shared file; None: this process only.
    """

    def __init__(
        self, *, keep: int = 100, per_owner: int = 4, shared: str | os.PathLike[str] | None = None
    ) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._keep = keep
        self._per_owner = per_owner
        self._db: sqlite3.Connection | None = None
        if shared is not None:
            self._db = sqlite3.connect(
                os.fspath(shared), timeout=10.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS job (id TEXT PRIMARY KEY, kind TEXT, owner TEXT,"
                " status TEXT, created REAL, started REAL, finished REAL, out TEXT,"
                " error_type TEXT, error_message TEXT, error_state TEXT, note TEXT,"
                " pid INTEGER, cancel_requested INTEGER DEFAULT 0)"
            )
            threading.Thread(target=self._watch, name="kolmatch-jobs", daemon=True).start()

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> JobBoard:
        """A board on ``KOLMATCH_JOBS_FILE`` if set (``kolmatch serve --workers N`` sets it)."""
        env = os.environ if environ is None else environ
        shared = env.get("KOLMATCH_JOBS_FILE", "").strip()
        return cls(shared=shared or None)

    def submit(
        self,
        kind: str,
        owner: str,
        work: Callable[[Job], Any],
        *,
        cancellable_while_running: bool = True,
        same_kind_once: bool = False,
        present: Callable[[Any], Any] | None = None,
    ) -> Job:
        """Start ``work(job)`` in a thread; the job at once, ``queued``.

        ``work`` calls ``job.mark_running()`` when it starts computing (after waiting for a
        solver slot) and returns the result. ``same_kind_once``: while a job of this kind
        is queued or running, that job is returned instead of starting another (a refresh).
        ``present`` turns the result into what the API shows (JSON data), kept as ``job.out``.

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
            if self._db is not None:
                mine = max(mine, self._active_shared(owner))
            if mine >= self._per_owner:
                raise LimitExceeded(
                    f"{kind} job",
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
                on_change=self._publish if self._db is not None else None,
            )
            self._jobs[job.id] = job
            self._trim()
        self._publish(job)
        threading.Thread(
            target=self._run, args=(job, work, present), name=f"kolmatch-{job.id}", daemon=True
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
        if job is None:
            job = self._read_shared(job_id)
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
        if not job.active:  # said, not recorded: the job's own note stays what it was
            return replace(job, note=f"the job was already {job.status}: nothing was cancelled")
        with self._lock:
            local = self._jobs.get(job_id) is job
        if not local:
            assert self._db is not None  # read from the file: another process runs it
            self._db.execute(
                "UPDATE job SET cancel_requested = 1 WHERE id = ? AND status IN"
                " ('queued', 'running')",
                (job_id,),
            )
            if job.active and (job.status == "queued" or job.kind != "refresh"):
                job.note = "cancelling: the process running it stops it within a second"
            elif job.active:
                job.note = f"a running {job.kind} is not cancelled: it completes"
            return job
        self._cancel_local(job)
        return job

    def _cancel_local(self, job: Job) -> None:
        with self._lock:
            if job.status == "queued" or (
                job.status == "running" and job.cancellable_while_running
            ):
                job.cancel.cancel("the job was cancelled")
                job.status, job.finished = "cancelled", time.time()
            elif job.status == "running":
                job.note = f"a running {job.kind} is not cancelled: it completes"
        self._publish(job)

    def _run(
        self, job: Job, work: Callable[[Job], Any], present: Callable[[Any], Any] | None
    ) -> None:
        try:
            result = work(job)
            out = present(result) if present is not None else None
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
                    job.status, job.result, job.out = "done", result, out
        finally:
            with self._lock:
                if job.finished is None:
                    job.finished = time.time()
            self._publish(job)

    # -- the shared file ----------------------------------------------------------------
    def _publish(self, job: Job) -> None:
        """Write the job's state to the shared file (nothing without one)."""
        if self._db is None:
            return
        err = job.error
        row = (
            job.id,
            job.kind,
            job.owner,
            job.status,
            job.created,
            job.started,
            job.finished,
            None if job.out is None else dumps(job.out),
            None if err is None else f"{type(err).__module__}:{type(err).__qualname__}",
            None if err is None else str(err),
            None if err is None else dumps(err.__dict__, default=str),
            job.note,
            os.getpid(),
        )
        with self._lock:
            self._db.execute(
                "INSERT INTO job (id, kind, owner, status, created, started, finished, out,"
                " error_type, error_message, error_state, note, pid)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET"
                " status = excluded.status, started = excluded.started,"
                " finished = excluded.finished, out = excluded.out,"
                " error_type = excluded.error_type, error_message = excluded.error_message,"
                " error_state = excluded.error_state, note = excluded.note",
                row,
            )

    def _read_shared(self, job_id: str) -> Job | None:
        """Another process's job, as the shared file says it is."""
        if self._db is None:
            return None
        with self._lock:
            r = self._db.execute(
                "SELECT kind, owner, status, created, started, finished, out, error_type,"
                " error_message, error_state, note, pid FROM job WHERE id = ?",
                (job_id,),
            ).fetchone()
        if r is None:
            return None
        kind, owner, status, created, started, finished, out, etype, emsg, estate, note, pid = r
        error = _error_from(etype, emsg, estate) if etype else None
        if status in ("queued", "running") and not _alive(pid):
            status, note = "failed", f"the server process {pid} running it has ended"
            error = KolmatchError(note)
        return Job(
            id=job_id,
            kind=kind,
            owner=owner,
            cancel=Cancel(),
            status=status,
            created=created,
            started=started,
            finished=finished,
            error=error,
            note=note or "",
            out=None if out is None else json.loads(out),
        )

    def _active_shared(self, owner: str) -> int:
        """``owner``'s queued or running jobs in any live process (the caller holds the lock)."""
        assert self._db is not None
        rows = self._db.execute(
            "SELECT pid FROM job WHERE owner = ? AND status IN ('queued', 'running')",
            (owner,),
        ).fetchall()
        return sum(1 for (pid,) in rows if _alive(pid))

    def _watch(self) -> None:
        """Cancel this process's jobs that another process was asked to cancel."""
        assert self._db is not None
        me = os.getpid()
        while True:
            time.sleep(WATCH_S)
            try:
                with self._lock:
                    ids = [
                        i
                        for (i,) in self._db.execute(
                            "SELECT id FROM job WHERE cancel_requested = 1 AND pid = ? AND"
                            " status IN ('queued', 'running')",
                            (me,),
                        ).fetchall()
                    ]
                    self._db.execute(
                        "UPDATE job SET cancel_requested = 0 WHERE pid = ? AND"
                        " cancel_requested = 1",
                        (me,),
                    )
                for i in ids:
                    job = self._jobs.get(i)
                    if job is not None:
                        self._cancel_local(job)
            except sqlite3.Error:  # a busy file: the next look will do
                log.debug("kolmatch: reading the shared jobs file", exc_info=True)

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
