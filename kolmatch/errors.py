"""The one exception hierarchy every kolmatch package raises from."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

__all__ = [
    "REBUILDING_RETRY_AFTER",
    "BadArgument",
    "BookingRefused",
    "Cancel",
    "Cancelled",
    "Conflict",
    "IncompleteLoad",
    "InfeasiblePlan",
    "InputError",
    "InputProblem",
    "KolmatchError",
    "LimitExceeded",
    "NotEligible",
    "Rebuilding",
    "StoreError",
    "StoreUnavailable",
    "UnknownId",
    "check_cancel",
]


class KolmatchError(Exception):
    """Base class of every error kolmatch raises on purpose."""


@dataclass(frozen=True)
class InputProblem:
    """One problem found in input data: where it is and what is wrong.

    ``line`` is 1-based and counts the header as line 1; it is 0 where a
    problem concerns a whole file (an unknown file name, an empty file).
    """

    file: str
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        where = self.file if self.line == 0 else f"{self.file}:{self.line}"
        if self.field:
            where = f"{where}: field {self.field!r}"
        return f"{where}: {self.reason}"


class InputError(KolmatchError):
    """Input data (files, arguments) failed validation; nothing was written.

    Parameters
    ----------
    problems
        Every problem found, capped per file by the reader.
    truncated
        How many further problems were found but not listed.
    """

    def __init__(self, problems: list[InputProblem], truncated: int = 0) -> None:
        self.problems = list(problems)
        self.truncated = truncated
        lines = [str(p) for p in self.problems]
        if truncated:
            lines.append(f"... and {truncated} more problems not listed")
        super().__init__("\n".join(lines) if lines else "invalid input")


class UnknownId(KolmatchError):
    """A caller named an id that the graph does not hold."""

    def __init__(self, label: str, node_id: str) -> None:
        self.label = label
        self.node_id = node_id
        super().__init__(f"unknown {label} id {node_id!r}")


class BadArgument(KolmatchError):
    """A caller's argument is malformed or out of range (not input files: see InputError).

    Parameters
    ----------
    argument
        The argument's name as the caller wrote it (``--tiers``, ``budget``).
    reason
        What is wrong and what would be accepted.
    """

    def __init__(self, argument: str, reason: str) -> None:
        self.argument = argument
        self.reason = reason
        super().__init__(f"argument {argument}: {reason}")


class Conflict(KolmatchError):
    """A write names an id that is already recorded with different values; nothing was written.

    Parameters
    ----------
    what
        The kind of record (``collaboration``).
    key
        Its id as the caller sent it.
    fields
        The fields whose values differ from the recorded ones (names only, never values).
    owner
        Whose record holds the id (a merchant id), so that a caller's layer can decide how
        much of the conflict its principal may be told.
    """

    def __init__(self, what: str, key: str, fields: list[str], owner: str | None = None) -> None:
        self.what = what
        self.key = key
        self.fields = list(fields)
        self.owner = owner
        differ = f" with different {', '.join(self.fields)}" if self.fields else ""
        super().__init__(
            f"{what} {key!r} is already recorded{differ}; a recorded {what} is not "
            "overwritten: send the same values again (a no-op) or use a new id"
        )


class BookingRefused(Conflict):
    """Bookings the store refused, all of them: a talent without a free slot in the window, or
    booked there by a competitor of the merchant. Nothing of the request was written.

    Parameters
    ----------
    problems
        One line per refused booking: its id, the talent and why (a competitor is never named).
    """

    def __init__(self, problems: list[str]) -> None:
        KolmatchError.__init__(
            self, "nothing was booked: " + "; ".join(problems) if problems else "nothing was booked"
        )
        self.what = "booking"
        self.key = ""
        self.fields: list[str] = []
        self.owner = None
        self.problems = list(problems)


class NotEligible(KolmatchError):
    """A talent or merchant is excluded for compliance: nothing is matched, planned or led for it.

    Parameters
    ----------
    label
        ``Merchant`` or ``Talent``.
    node_id
        Its id.
    reason
        Why (the violations on record), from :mod:`kolmatch.matching.eligibility`.
    """

    def __init__(self, label: str, node_id: str, reason: str) -> None:
        self.label = label
        self.node_id = node_id
        self.reason = reason
        super().__init__(f"{label.lower()} {node_id} is not eligible: {reason}")


class StoreError(KolmatchError):
    """The graph store failed or was misconfigured."""


class StoreUnavailable(StoreError):
    """The graph store cannot be reached (a server down, a file not writable)."""


class IncompleteLoad(StoreError):
    """The store holds a load that has not completed (killed, or still running).

    Neo4j loads are many transactions; until the last one commits, kolmatch
    refuses to read the graph rather than serve a half-loaded market.

    Parameters
    ----------
    uri
        The store's URI.
    loads
        Each unfinished load's key (its folder and a digest of its files).
    """

    def __init__(self, uri: str, loads: list[str]) -> None:
        self.uri = uri
        self.loads = list(loads)
        listed = "; ".join(self.loads)
        super().__init__(
            f"{uri} holds an unfinished load ({listed}): it was killed or is still running, "
            "so kolmatch reads nothing from it; run the same load again to complete it"
        )


#: Seconds a refused write waits before it is sent again while its server process rebuilds
#: (:class:`Rebuilding`): a rebuild takes seconds at s and minutes at m; a client asking again
#: at this pace finds writes taken within this much of the rebuild's end.
REBUILDING_RETRY_AFTER = 15


class Rebuilding(KolmatchError):
    """A serving process is rebuilding its features after a bulk change of the graph.

    A load into the served store (or a write the change feed does not have) changes more than
    one write's update can follow: the features are built again in a child process while the
    version before keeps serving. A write checks against the graph as it is, so until the
    new version is served, writes to this process are refused with this error.

    Parameters
    ----------
    serving
        The version served meanwhile.
    version
        The store's version.
    seconds
        How long the rebuild has run.

    Attributes
    ----------
    retry_after
        Whole seconds a client waits before sending the write again: the API's ``Retry-After``
        (:data:`REBUILDING_RETRY_AFTER`).
    """

    def __init__(self, serving: int, version: int, seconds: float) -> None:
        self.serving = serving
        self.version = version
        self.seconds = seconds
        self.retry_after = REBUILDING_RETRY_AFTER
        super().__init__(
            f"the graph changed in bulk (version {serving} -> {version}: a load, or a write "
            f"the change feed does not have) and this server process is rebuilding its "
            f"features ({seconds:.0f} s so far; a few minutes at 1M users); it serves version "
            f"{serving} meanwhile and takes writes again once it serves version {version} "
            f"or later: nothing was written, retry in {REBUILDING_RETRY_AFTER} s"
        )


class InfeasiblePlan(KolmatchError):
    """An optimisation problem has no feasible solution under its constraints.

    Parameters
    ----------
    message
        What was refused and why, in English (logs, the API's message).
    left_out
        Where a planner found no talent to choose: the talents it left out, by its reason
        (``plan.LEFT_OUT_*``), as it counted them; None otherwise.
    cheapest
        The cheapest talent it could otherwise have chosen, where all are over the budget.
    max_talents
        The merchant's ``max_talents``, where it takes no talent at all.
    """

    def __init__(
        self,
        message: str,
        *,
        left_out: dict[str, int] | None = None,
        cheapest: float | None = None,
        max_talents: int | None = None,
    ) -> None:
        super().__init__(message)
        self.left_out = left_out
        self.cheapest = cheapest
        self.max_talents = max_talents


class LimitExceeded(KolmatchError):
    """An operation was costed before it started and refused: its cost is over a ceiling.

    Nothing ran. The message names the argument that sized it, the figure and the ceiling.

    Parameters
    ----------
    argument
        The argument's name as the caller wrote it (``--candidates``, ``budget``).
    figure
        The operation's cost in ``unit``.
    ceiling
        The most allowed.
    unit
        What is counted (``candidate pairs``, ``candidate x target-user cells``).
    hint
        What would bring it under the ceiling.
    """

    def __init__(
        self, argument: str, figure: float, ceiling: float, unit: str, hint: str = ""
    ) -> None:
        self.argument = argument
        self.figure = figure
        self.ceiling = ceiling
        self.unit = unit
        more = f"; {hint}" if hint else ""
        super().__init__(
            f"argument {argument}: this would cost {figure:,.0f} {unit}, over the ceiling of "
            f"{ceiling:,.0f}; nothing was run{more}"
        )


class Cancelled(KolmatchError):
    """A computation stopped because its request timed out or its job was cancelled."""


class Cancel:
    """A cooperative cancellation token: long loops call :meth:`check` between steps.

    Set by whoever owns the work (a request that timed out, a cancelled job) with
    :meth:`cancel`, or by its own ``deadline`` (``time.monotonic()`` seconds) passing. Pure
    functions take it as an optional keyword argument (``cancel=None``: never cancelled), so
    the CLI and the tests call them unchanged. Thread-safe; a forked process keeps the
    deadline (the same monotonic clock) but not later calls of :meth:`cancel`.

    Examples
    --------
    >>> c = Cancel()
    >>> c.check()
    >>> c.cancel("the request timed out")
    >>> try:
    ...     c.check()
    ... except Cancelled as exc:
    ...     print(exc)
    cancelled: the request timed out
    """

    def __init__(self, deadline: float | None = None) -> None:
        self.deadline = deadline
        self._event = threading.Event()
        self._reason = ""

    def cancel(self, reason: str = "cancelled") -> None:
        """Ask the work to stop; the first reason given is the one reported."""
        if not self._event.is_set():
            self._reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`check` would raise."""
        if self._event.is_set():
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline

    @property
    def reason(self) -> str:
        if self._event.is_set():
            return self._reason
        return "the deadline passed" if self.cancelled else ""

    def check(self) -> None:
        """Raise :class:`Cancelled` if the work was cancelled or its deadline passed."""
        if self.cancelled:
            raise Cancelled(f"cancelled: {self.reason}")

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds`` or until cancelled; whether it was cancelled."""
        if self.deadline is not None:
            seconds = min(seconds, max(self.deadline - time.monotonic(), 0.0))
        self._event.wait(seconds)
        return self.cancelled


def check_cancel(cancel: Cancel | None) -> None:
    """``cancel.check()`` where a token was given: the one line loops call between steps."""
    if cancel is not None:
        cancel.check()
