"""Progress of long steps on stderr: done of a total, the percentage and the time left.

Library code says what it is doing (``with progress.task("loading", total=n) as t:
t.advance(k)``); whether anyone sees it is decided here, once, on the first report:

* ``KOLMATCH_PROGRESS=1`` shows progress, ``0`` hides it; unset, it is shown when stderr
  is a terminal (so the CLI shows it on a terminal and nothing in a pipe, a log or a test);
* a step that ends within :data:`SHOW_AFTER` seconds shows nothing;
* on a terminal one line is redrawn in place (``\\r``) at most every :data:`REDRAW_SECONDS`
  and wiped when the step ends; elsewhere (``KOLMATCH_PROGRESS=1`` into a file or a pipe)
  a plain line is printed at most every :data:`LINE_SECONDS`, and one when a step that
  printed ends, so a log says how far a step got and how long it took without filling up;
* only stderr is written: stdout stays clean for ``--json``.

Nested steps show as one line, outermost first (``serve: building features: 4/9 ...``).
Callers advance per chunk of work, not per row: a disabled reporter's task only adds to a
counter, an enabled one also reads the clock.

Examples
--------
>>> import io
>>> clock = iter([0.0, 0.5, 3.0, 3.0]).__next__
>>> r = Reporter(io.StringIO(), tty=False, clock=clock, ticker=False)
>>> with r.task("loading", total=200, unit="rows") as t:
...     t.advance(50)  # at 0.5 s: too early to show
...     t.advance(50)  # at 3.0 s: one line
>>> print(r.stream.getvalue().splitlines()[0])
loading: 100/200 rows 50% 3s, about 3s left
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TextIO

__all__ = [
    "ENVIRONMENT_VARIABLE",
    "LINE_SECONDS",
    "REDRAW_SECONDS",
    "SHOW_AFTER",
    "Reporter",
    "Task",
    "reporter_from",
    "silenced",
    "task",
    "using",
]

#: The variable that forces progress on (``1``) or off (``0``); unset: on when stderr is a tty.
ENVIRONMENT_VARIABLE = "KOLMATCH_PROGRESS"
#: A step shows nothing until it has run this long (seconds): short steps stay silent.
SHOW_AFTER = 2.0
#: A terminal's line is redrawn at most this often (seconds).
REDRAW_SECONDS = 0.2
#: Elsewhere a line is printed at most this often (seconds).
LINE_SECONDS = 5.0

_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")


class Task:
    """One step being reported: ``done`` of ``total`` ``unit``.

    Made by :meth:`Reporter.task` (or :func:`task`); a task of a disabled reporter only
    counts.
    """

    __slots__ = ("done", "reporter", "shown", "started", "timed", "total", "unit", "what")

    def __init__(
        self,
        reporter: Reporter | None,
        what: str,
        total: float | None,
        unit: str,
        timed: bool,
        started: float,
    ) -> None:
        self.reporter, self.what, self.total, self.unit = reporter, what, total, unit
        self.timed, self.started = timed, started
        self.done = 0.0
        self.shown = False  # a line about it was written

    def advance(self, n: float = 1) -> None:
        """Count ``n`` more units done (and redraw, if one is due)."""
        self.done += n
        if self.reporter is not None:
            self.reporter.refresh()

    def update(self, done: float) -> None:
        """Set the units done so far (and redraw, if one is due)."""
        self.done = done
        if self.reporter is not None:
            self.reporter.refresh()


class Reporter:
    """Writes the progress of the open tasks to a stream, throttled.

    Parameters
    ----------
    stream
        Where to write; default ``sys.stderr`` as it is when a line is written.
    tty
        Redraw one line in place (a terminal) or print plain lines; default: whether
        ``stream`` is a terminal.
    clock
        Seconds, monotonic (injected by tests).
    ticker
        Redraw from a background thread too, so a step blocked in one long call (a solver,
        a store read) still shows its elapsed time; tests turn it off and call
        :meth:`refresh`.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        ticker: bool = True,
    ) -> None:
        self._stream = stream
        self._tty = _isatty(self.stream) if tty is None else tty
        self._clock = clock
        self._ticker = ticker
        self._tasks: list[Task] = []  # open, outermost first
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._next = 0.0  # the earliest time of the next line
        self._width = 0  # of the line drawn on a terminal; 0: none is

    @property
    def stream(self) -> TextIO:
        """The stream written to."""
        return self._stream if self._stream is not None else sys.stderr

    @contextmanager
    def task(
        self, what: str, total: float | None = None, *, unit: str = "", timed: bool = False
    ) -> Iterator[Task]:
        """Report a step while the ``with`` block runs.

        Parameters
        ----------
        what
            What the step does, as a short phrase (``loading``).
        total
            Units the step will do, if known (then the line has a percentage and the time
            left); with ``timed``, the most seconds it may take.
        unit
            What is counted (``rows``); shown after the count.
        timed
            The step's progress is the time it has run against ``total`` seconds (a
            solver's time limit): it need not be advanced.
        """
        t = Task(self, what, total, unit, timed, self._clock())
        with self._lock:
            self._tasks.append(t)
            if self._ticker and self._thread is None:
                self._thread = threading.Thread(
                    target=self._tick, name="kolmatch-progress", daemon=True
                )
                self._thread.start()
        try:
            yield t
        finally:
            with self._lock:
                self._end(t)

    def refresh(self) -> None:
        """Write a line if one is due: a task has run :data:`SHOW_AFTER` and the last line is
        old enough."""
        now = self._clock()
        if now < self._next:  # the common case, without the lock
            return
        with self._lock:
            if not self._tasks or now < self._next:
                return
            if now - self._tasks[0].started < SHOW_AFTER:
                return
            self._write(self._line(now))
            for t in self._tasks:
                t.shown = True
            self._next = now + (REDRAW_SECONDS if self._tty else LINE_SECONDS)

    def _end(self, t: Task) -> None:
        self._tasks.remove(t)
        if not t.shown:
            return
        if self._tty:
            if not self._tasks:  # wipe the line: the command's own output follows
                self._write("")
                self._width = 0
            self._next = 0.0  # the enclosing task's line, at once
        else:
            self._write(self._line(self._clock(), ended=t))

    def _write(self, line: str) -> None:
        try:
            if self._tty:
                pad = " " * max(self._width - len(line), 0)
                self.stream.write(f"\r{line}{pad}" + ("\r" if not line else ""))
                self._width = len(line)
            else:
                self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stderr costs the progress only
            pass

    def _line(self, now: float, *, ended: Task | None = None) -> str:
        path = [*self._tasks, ended] if ended is not None else self._tasks
        names = ": ".join(x.what for x in path if x is not None)
        t = ended if ended is not None else self._tasks[-1]
        elapsed = now - t.started
        if ended is not None:
            done = (
                "" if t.total is None or t.timed or not t.unit else f" {_count(t.done)}{_unit(t)}"
            )
            return f"{names}: done{done} in {_seconds(elapsed)}"
        if t.timed:
            limit = "" if t.total is None else f" of at most {_seconds(t.total)}"
            pct = "" if not t.total else f" {min(elapsed / t.total, 1.0):.0%}"
            return f"{names}: {_seconds(elapsed)}{limit}{pct}"
        if t.total is None:
            done = f" {_count(t.done)}{_unit(t)}" if t.done else ""
            return f"{names}:{done} {_seconds(elapsed)}"
        share = min(t.done / t.total, 1.0) if t.total > 0 else 1.0
        left = (
            f"about {_seconds(elapsed * (1 - share) / share)} left" if share > 0 else "time left ?"
        )
        return (
            f"{names}: {_count(t.done)}/{_count(t.total)}{_unit(t)} {share:.0%} "
            f"{_seconds(elapsed)}, {left}"
        )

    def _tick(self) -> None:
        while True:
            time.sleep(REDRAW_SECONDS if self._tty else 1.0)
            with self._lock:
                if not self._tasks:
                    self._thread = None  # under the lock: task() starts a new one
                    return
            self.refresh()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _count(x: float) -> str:
    return f"{x:,.0f}"


def _unit(t: Task) -> str:
    return f" {t.unit}" if t.unit else ""


def _seconds(s: float) -> str:
    s = max(round(s), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def reporter_from(environ: Mapping[str, str], stream: TextIO | None = None) -> Reporter | None:
    """The reporter the environment asks for: None when progress is off.

    Parameters
    ----------
    environ
        Read for :data:`ENVIRONMENT_VARIABLE` (``1``/``0``; any other value counts as unset).
    stream
        Where progress goes; default ``sys.stderr`` (it decides when the variable is unset).

    Examples
    --------
    >>> import io
    >>> reporter_from({"KOLMATCH_PROGRESS": "0"}) is None
    True
    >>> reporter_from({}, io.StringIO()) is None  # not a terminal
    True
    """
    value = environ.get(ENVIRONMENT_VARIABLE, "").strip().lower()
    if value in _OFF:
        return None
    if value in _ON or _isatty(stream if stream is not None else sys.stderr):
        return Reporter(stream)
    return None


_UNSET = object()
_current: Reporter | object | None = _UNSET
_current_lock = threading.Lock()


def _reporter() -> Reporter | None:
    global _current
    if _current is _UNSET:
        with _current_lock:
            if _current is _UNSET:  # the environment is read here, once per process
                _current = reporter_from(os.environ)
    return _current  # type: ignore[return-value]


@contextmanager
def task(
    what: str, total: float | None = None, *, unit: str = "", timed: bool = False
) -> Iterator[Task]:
    """Report a step on the process's reporter (:meth:`Reporter.task`); a counter if off.

    Parameters
    ----------
    what, total, unit, timed
        As :meth:`Reporter.task`.
    """
    r = None if getattr(_silenced, "on", False) else _reporter()
    if r is None:
        yield Task(None, what, total, unit, timed, 0.0)
        return
    with r.task(what, total, unit=unit, timed=timed) as t:
        yield t


_silenced = threading.local()


@contextmanager
def silenced() -> Iterator[None]:
    """Report nothing from this thread within the block (a server's background work: its
    steps are nobody's at the terminal, and would break into the server's log lines)."""
    was = getattr(_silenced, "on", False)
    _silenced.on = True
    try:
        yield
    finally:
        _silenced.on = was


@contextmanager
def using(reporter: Reporter | None) -> Iterator[None]:
    """Report on ``reporter`` (None: nowhere) within the block, whatever the environment says.

    For tests, and for a caller that decides itself (``with progress.using(None):``).
    """
    global _current
    with _current_lock:
        before, _current = _current, reporter
    try:
        yield
    finally:
        with _current_lock:
            _current = before


def _forget_in_child() -> None:
    """A forked child (the API's solver pool) reports nothing: its steps are a server's
    background work, not a terminal user's, and it must not share the parent's lock."""
    global _current, _current_lock
    _current_lock = threading.Lock()
    _current = None


os.register_at_fork(after_in_child=_forget_in_child)
