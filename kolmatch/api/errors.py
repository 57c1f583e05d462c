"""Typed GraphQL errors: every expected failure has a code and a message, never a trace."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from graphql import GraphQLError

from kolmatch.errors import (
    BadArgument,
    Cancelled,
    Conflict,
    IncompleteLoad,
    InfeasiblePlan,
    InputError,
    KolmatchError,
    LimitExceeded,
    NotEligible,
    StoreError,
    StoreUnavailable,
    UnknownId,
)

__all__ = [
    "ASSIGNMENT_ARGUMENTS",
    "PLAN_ARGUMENTS",
    "Forbidden",
    "RateLimited",
    "api_arguments",
    "code_of",
    "format_error",
]

log = logging.getLogger("kolmatch.api")


class Forbidden(KolmatchError):
    """The principal may not see this field or act on this object."""

    def __init__(self, what: str) -> None:
        super().__init__(f"not allowed: {what}")


class RateLimited(KolmatchError):
    """The API key has used its request budget; ``retry_after`` is in whole seconds (HTTP 429)."""

    def __init__(self, retry_after: int, rate: float, burst: int) -> None:
        self.retry_after = retry_after
        super().__init__(
            f"rate limit: {rate:g} operations per second per API key, bursts of {burst}; "
            f"retry after {retry_after} s"
        )


_CODES: tuple[tuple[type[BaseException], str], ...] = (
    (Forbidden, "FORBIDDEN"),
    (UnknownId, "NOT_FOUND"),
    (BadArgument, "BAD_ARGUMENT"),
    (Conflict, "CONFLICT"),
    (RateLimited, "RATE_LIMITED"),
    (InputError, "BAD_INPUT"),
    (InfeasiblePlan, "INFEASIBLE_PLAN"),
    (NotEligible, "NOT_ELIGIBLE"),
    (LimitExceeded, "LIMIT_EXCEEDED"),
    (Cancelled, "CANCELLED"),
    (StoreUnavailable, "STORE_UNAVAILABLE"),
    (IncompleteLoad, "INCOMPLETE_LOAD"),
    (StoreError, "STORE_ERROR"),
)


def code_of(exc: BaseException) -> str:
    """The API error code of a kolmatch exception; INTERNAL for anything unexpected."""
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code
    return "INTERNAL"


def format_error(err: GraphQLError) -> dict[str, Any]:
    """A GraphQL error as the client sees it: message, locations, path, extensions.code.

    Errors kolmatch raised on purpose keep their message; anything else is a bug, logged
    with its traceback here and shown to the client only as "internal error".
    """
    out: dict[str, Any] = dict(err.formatted)
    orig = err.original_error
    if orig is None:
        code = (err.extensions or {}).get("code", "GRAPHQL_VALIDATION_FAILED")
    elif isinstance(orig, KolmatchError):
        code = code_of(orig)
        out["message"] = str(orig)
    else:
        log.error("internal error in %s", err.path, exc_info=orig)
        code = "INTERNAL"
        out["message"] = "internal error"
    out["extensions"] = {**(out.get("extensions") or {}), "code": code}
    return out


#: The solvers name their arguments as the command line does; the API's callers wrote these.
PLAN_ARGUMENTS = {"--budget": "budget", "--tiers": "tiers", "--min-roi": "minRoi"}
ASSIGNMENT_ARGUMENTS = {
    "--method": "input.method",
    "--candidates": "input.candidates",
    "--agency-cap": "input.agencyCap",
    "--time-limit": "input.timeLimit",
}


@contextmanager
def api_arguments(names: Mapping[str, str]) -> Iterator[None]:
    """Re-raise a :class:`BadArgument` under the name the API's caller used (``names``).

    Examples
    --------
    >>> try:
    ...     with api_arguments(PLAN_ARGUMENTS):
    ...         raise BadArgument("--min-roi", "must be 0 or more")
    ... except BadArgument as exc:
    ...     print(exc)
    argument minRoi: must be 0 or more
    """
    try:
        yield
    except BadArgument as exc:
        if exc.argument not in names:
            raise
        raise BadArgument(names[exc.argument], exc.reason) from None
