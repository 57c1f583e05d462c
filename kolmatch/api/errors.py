"""Typed GraphQL errors: every expected failure has a code and a message, never a trace."""

from __future__ import annotations

import logging
import re
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
    Rebuilding,
    StoreError,
    StoreUnavailable,
    UnknownId,
)
from kolmatch.i18n import DEFAULT_LANG, MESSAGES, message

__all__ = [
    "ASSIGNMENT_ARGUMENTS",
    "BOOKING_ARGUMENTS",
    "CAMPAIGN_ARGUMENTS",
    "COLLABORATION_ARGUMENTS",
    "PLAN_ARGUMENTS",
    "VIOLATION_ARGUMENTS",
    "Forbidden",
    "RateLimited",
    "api_arguments",
    "api_name",
    "code_of",
    "flags_in_api_words",
    "format_error",
    "in_api_words",
    "localised",
]

log = logging.getLogger("kolmatch.api")


class Forbidden(KolmatchError):
    """The principal may not see this field or act on this object."""

    def __init__(self, what: str) -> None:
        self.what = what
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
    (Rebuilding, "REBUILDING"),
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


def format_error(err: GraphQLError, lang: str = DEFAULT_LANG) -> dict[str, Any]:
    """A GraphQL error as the client sees it: message, locations, path, extensions.code.

    Errors kolmatch raised on purpose keep their message (in ``lang``: :func:`localised`), every
    command-line flag in it written as the API's argument (:func:`flags_in_api_words`); anything
    else is a bug, logged with its traceback here and shown to the client only as
    "internal error". The code never changes with the language.
    """
    out: dict[str, Any] = dict(err.formatted)
    orig = err.original_error
    if orig is None:
        code = (err.extensions or {}).get("code", "GRAPHQL_VALIDATION_FAILED")
        out["message"] = localised(code, err.message, lang)
    elif isinstance(orig, KolmatchError):
        code = code_of(orig)
        if isinstance(orig, BadArgument):
            orig = in_api_words(orig)  # its argument too, which localised() renders alone
        # a flag no resolver renamed (api_arguments), in any error's words (an InfeasiblePlan's
        # "... (--target-new-customers)", a LimitExceeded's argument): a client never reads one
        out["message"] = flags_in_api_words(localised(code, str(orig), lang, orig))
    elif err.path is None and isinstance(orig, (GraphQLError, TypeError, ValueError)):
        # a variable's value the schema cannot read ({"b": "abc"} for a Float!): the request's
        # input, caught before anything ran; graphql-core's message names the variable
        code = "BAD_ARGUMENT"
        out["message"] = localised(code, err.message, lang)
    else:
        log.error("internal error in %s", err.path, exc_info=orig)
        code = "INTERNAL"
        out["message"] = "internal error"
    out["extensions"] = {**(out.get("extensions") or {}), "code": code}
    if isinstance(orig, Rebuilding):  # when to send the write again (the app's Retry-After)
        out["extensions"]["retryAfter"] = orig.retry_after
    return out


def localised(code: str, text: str, lang: str, exc: BaseException | None = None) -> str:
    """An error's message ``text`` for a reader of ``lang``, its located detail kept.

    English is ``text`` itself. For another language the messages of the common codes
    (UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, NOT_ELIGIBLE, TIMEOUT, LIMIT_EXCEEDED,
    BAD_ARGUMENT, RATE_LIMITED) are rendered from the catalogue (kolmatch/i18n.py): from the
    exception's fields where ``exc`` has them (the argument's name, the id, the figures), else
    with ``text`` as the detail after a translated head. Other codes keep ``text``.

    Examples
    --------
    >>> localised("NOT_FOUND", "unknown Merchant id 'm9'", "zh-CN", UnknownId("Merchant", "m9"))
    "未找到商家 'm9'"
    >>> localised("BAD_ARGUMENT", "argument first: must be 1 or more", "zh-CN",
    ...           BadArgument("first", "must be 1 or more"))
    '参数 first 有误：must be 1 or more'
    >>> localised("TIMEOUT", "timed out", "zh-CN"), localised("TIMEOUT", "timed out", "en")
    ('请求超时：timed out', 'timed out')
    """
    if lang == DEFAULT_LANG or f"error.{code}" not in MESSAGES.get(lang, {}):
        return text
    if isinstance(exc, Forbidden):
        return message("error.FORBIDDEN.what", lang, what=exc.what)
    if isinstance(exc, UnknownId | NotEligible):
        label = (
            message(f"label.{exc.label}", lang)
            if f"label.{exc.label}" in MESSAGES[lang]
            else exc.label
        )
        if isinstance(exc, UnknownId):
            return message("error.NOT_FOUND.id", lang, label=label, id=repr(exc.node_id))
        return message(
            "error.NOT_ELIGIBLE.id", lang, label=label, id=exc.node_id, reason=exc.reason
        )
    if isinstance(exc, BadArgument):
        return message(
            "error.BAD_ARGUMENT.argument", lang, argument=exc.argument, reason=exc.reason
        )
    if isinstance(exc, LimitExceeded):
        return message(
            "error.LIMIT_EXCEEDED.cost",
            lang,
            argument=exc.argument,
            figure=f"{exc.figure:,.0f}",
            unit=exc.unit,
            ceiling=f"{exc.ceiling:,.0f}",
            hint=text.partition("nothing was run")[2],  # "; what would bring it under", or ""
        )
    return message(f"error.{code}", lang, detail=text)


#: A booking request's arguments, as the engine names them and as the API's callers wrote them.
BOOKING_ARGUMENTS = {"key": "idempotencyKey"}

#: The solvers name their arguments as the command line does; the API's callers wrote these.
PLAN_ARGUMENTS = {
    "--budget": "budget",
    "--tiers": "tiers",
    "--min-roi": "minRoi",
    "--target-gmv": "targetGmv",
    "--target-new-customers": "targetNewCustomers",
    "--campaign": "campaign",
}
ASSIGNMENT_ARGUMENTS = {
    "--method": "input.method",
    "--candidates": "input.candidates",
    "--campaign": "input.campaign",
    "--agency-cap": "input.agencyCap",
    "--time-limit": "input.timeLimit",
}


def _input_fields(*names: str) -> dict[str, str]:
    """The engine's names of a write's fields (``kpiTarget``), as a mutation's input object
    holds them (``input.kpiTarget``)."""
    return {n: f"input.{n}" for n in names}


#: ``recordCollaboration(input:)``, ``flagViolation(input:)``, ``createCampaign(input:)``.
COLLABORATION_ARGUMENTS = _input_fields(
    "id", "talent", "product", "gmv", "orders", "fee", "time", "campaign"
)
VIOLATION_ARGUMENTS = _input_fields("id", "label", "target", "kind", "severity", "time")
CAMPAIGN_ARGUMENTS = _input_fields(
    "id", "name", "start", "end", "goal", "kpiTarget", "budget", "categories", "products"
)


def api_name(flag: str) -> str:
    """The API's name of a command-line flag: ``--min-roi`` is ``minRoi``.

    The resolvers rename the flags they know where they call the engine (:func:`api_arguments`,
    which also knows names inside an input object: ``input.agencyCap``); this is the rule for
    any other, applied to every error on its way out (:func:`format_error`).

    Examples
    --------
    >>> api_name("--min-roi"), api_name("--campaign")
    ('minRoi', 'campaign')
    """
    head, *rest = flag.lstrip("-").split("-")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


@contextmanager
def api_arguments(names: Mapping[str, str]) -> Iterator[None]:
    """Re-raise a :class:`BadArgument` under the name the API's caller used (``names``); the
    flags of ``names`` its reason mentions are renamed too.

    Examples
    --------
    >>> try:
    ...     with api_arguments(PLAN_ARGUMENTS):
    ...         raise BadArgument("--target-gmv", "give --target-gmv or --target-new-customers")
    ... except BadArgument as exc:
    ...     print(exc)
    argument targetGmv: give targetGmv or targetNewCustomers
    """
    try:
        yield
    except BadArgument as exc:
        if exc.argument not in names:
            raise
        reason = _FLAG.sub(lambda f: names.get(f.group(0), f.group(0)), exc.reason)
        raise BadArgument(names[exc.argument], reason) from None


#: A command-line flag in an engine's message: ``--min-roi`` (not ``a--b`` or ``---``).
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


def flags_in_api_words(text: str) -> str:
    """``text`` with every command-line flag in it written as the API's argument
    (:func:`api_name`): the message of any error on its way to an API client.

    Examples
    --------
    >>> flags_in_api_words("no plan reaches 500 new customers; lower --target-new-customers")
    'no plan reaches 500 new customers; lower targetNewCustomers'
    """
    return _FLAG.sub(lambda f: api_name(f.group(0)), text)


def in_api_words(exc: BadArgument) -> BadArgument:
    """``exc`` with every command-line flag it names (its argument, its reason) written as
    the API's argument (:func:`api_name`); ``exc`` itself if it names none.

    Examples
    --------
    >>> print(in_api_words(BadArgument("--campaign", "merchant m0 has not joined cp12")))
    argument campaign: merchant m0 has not joined cp12
    """
    argument = api_name(exc.argument) if _FLAG.fullmatch(exc.argument) else exc.argument
    reason = flags_in_api_words(exc.reason)
    if (argument, reason) == (exc.argument, exc.reason):
        return exc
    return BadArgument(argument, reason)
