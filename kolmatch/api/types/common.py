"""What every type module shares: the request context, pagination, connections."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import graphene
from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode, SelectionSetNode

from kolmatch.api.auth import Principal
from kolmatch.api.errors import Forbidden
from kolmatch.api.limits import Limits
from kolmatch.engine.service import EngineService, Snapshot
from kolmatch.errors import BadArgument

__all__ = [
    "PageInfo",
    "PairOverlap",
    "ReasonCount",
    "RequestContext",
    "actor_of",
    "connection",
    "context",
    "page_size",
    "page_window",
    "require_internal",
    "sliced",
    "write_as",
]


@dataclass
class RequestContext:
    """Per request: who asks, the engine, and the snapshot the request reads.

    A mutation replaces ``snap`` with the snapshot its write produced, so its payload (and
    any later field of the same request) shows the effect.
    """

    principal: Principal
    service: EngineService
    snap: Snapshot
    limits: Limits
    #: the reader's language, from ``Accept-Language`` (kolmatch/i18n.py): ``en`` or ``zh-CN``
    lang: str = "en"


def context(info: Any) -> RequestContext:
    ctx: RequestContext = info.context
    return ctx


def actor_of(ctx: RequestContext) -> str:
    """Who writes, as the audit log records it: the principal's role and id, never its key."""
    return str(ctx.principal)


def require_internal(ctx: RequestContext, what: str) -> None:
    """:class:`Forbidden` unless the principal is an internal tool."""
    if not ctx.principal.internal:
        raise Forbidden(f"{what} is for internal tools only")


def write_as(
    ctx: RequestContext, action: str, target: str | None, sent: Any, *, merchant: str | None = None
) -> None:
    """Refuse (and audit) a mutation the principal may not make: internal tools may make any;
    a merchant only one for itself (``merchant``); without ``merchant``, internal tools only."""
    p = ctx.principal
    if p.internal or (merchant is not None and p.is_merchant(merchant)):
        return
    who = "internal tools" if merchant is None else f"merchant {merchant} and internal tools"
    exc = Forbidden(f"{action} is for {who} only")
    entry = {"actor": actor_of(ctx), "action": action, "target": target, "input": sent}
    ctx.service.record_refusal(entry, exc)
    raise exc


#: The largest offset a cursor may hold: more items than any list of a market (a larger one,
#: not a cursor this server issued, would be a slice or a ranking that large).
MAX_CURSOR_OFFSET = 2**31 - 1


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _offset_of(cursor: str) -> int | None:
    """The offset a cursor of :func:`_cursor` holds; None for any text it never writes (a
    negative offset, a sign, leading zeros, white space, padding changed, another kind).

    Examples
    --------
    >>> _offset_of(_cursor(4)), _offset_of("bzotNQ=="), _offset_of("bzowNA=="), _offset_of("xyz")
    (4, None, None, None)
    """
    try:
        kind, _, n = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    if kind != "o" or not (n.isascii() and n.isdigit()) or len(n) > 10:
        return None
    offset = int(n)
    # the one spelling this server writes: "o:05" or a re-padded base64 is not its cursor
    if offset > MAX_CURSOR_OFFSET or _cursor(offset) != cursor:
        return None
    return offset


def page_size(first: int, limits: Limits) -> int:
    """``first`` itself, checked against the maximum page size.

    Raises
    ------
    BadArgument
        If ``first`` is below 1 or above the maximum page.
    """
    if not 1 <= first <= limits.max_page:
        raise BadArgument("first", f"must be between 1 and {limits.max_page}, got {first}")
    return first


def page_window(first: int, after: str | None, limits: Limits) -> tuple[int, int]:
    """(offset, size) of a page from Relay's ``first`` / ``after``.

    Raises
    ------
    BadArgument
        If ``first`` is out of range or ``after`` is not a cursor this server issued (a
        forged one with a negative offset read items from the end of a list, and made a
        match list's ranking fail: ``INTERNAL``).

    Examples
    --------
    >>> limits = Limits()
    >>> page_window(3, None, limits), page_window(3, _cursor(4), limits)
    ((0, 3), (5, 3))
    >>> page_window(3, "bzotNQ==", limits)  # o:-5
    Traceback (most recent call last):
    ...
    kolmatch.errors.BadArgument: argument after: not a cursor from this server: 'bzotNQ=='
    """
    size = page_size(first, limits)
    if not after:
        return 0, size
    # every connection's cursor is read here: one check for every list
    last = _offset_of(after)
    if last is None:
        raise BadArgument("after", f"not a cursor from this server: {after!r}")
    return last + 1, size


class ReasonCount(graphene.ObjectType):
    """Talents left out of a plan for one reason."""

    reason = graphene.String(required=True)
    count = graphene.Int(required=True)


class PairOverlap(graphene.ObjectType):
    """Engaged-audience overlap of two talents."""

    a = graphene.ID(required=True)
    b = graphene.ID(required=True)
    shared = graphene.Int(required=True)
    share_of_smaller = graphene.Float(required=True)
    jaccard = graphene.Float(required=True)


class PageInfo(graphene.ObjectType):
    has_next_page = graphene.Boolean(required=True)
    end_cursor = graphene.String()


def connection(name: str, node: type[graphene.ObjectType]) -> type[graphene.ObjectType]:
    """A Relay connection type: ``edges { cursor node }``, ``pageInfo``, ``totalCount``."""
    edge = type(
        f"{name}Edge",
        (graphene.ObjectType,),
        {"cursor": graphene.String(required=True), "node": graphene.Field(node, required=True)},
    )
    return type(
        f"{name}Connection",
        (graphene.ObjectType,),
        {
            "edges": graphene.List(graphene.NonNull(edge), required=True),
            "page_info": graphene.Field(PageInfo, required=True),
            "total_count": graphene.Int(required=True),
        },
    )


def selects(info: Any, name: str) -> bool:
    """Whether the field being resolved selects a field ``name`` anywhere below it (through
    fragments): work only that field needs (a match list's evidence lines, half of a ranked
    list's time at m) is skipped when it does not.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from graphql import parse
    >>> doc = parse("{ m { matches { edges { ...N } } } } fragment N on E { node { evidence } }")
    >>> op, frag = doc.definitions
    >>> field = op.selection_set.selections[0].selection_set.selections[0]
    >>> info = SimpleNamespace(field_nodes=[field], fragments={"N": frag})
    >>> selects(info, "evidence"), selects(info, "score")
    (True, False)
    """
    seen: set[str] = set()

    def walk(selection_set: SelectionSetNode | None) -> bool:
        if selection_set is None:
            return False
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                if sel.name.value == name or walk(sel.selection_set):
                    return True
            elif isinstance(sel, InlineFragmentNode):
                if walk(sel.selection_set):
                    return True
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in seen:
                seen.add(sel.name.value)
                frag = info.fragments.get(sel.name.value)
                if frag is not None and walk(frag.selection_set):
                    return True
        return False

    return any(walk(node.selection_set) for node in info.field_nodes)


def sliced(items: list[Any], offset: int, size: int, total: int | None = None) -> dict[str, Any]:
    """A connection's value from the items of one page (``items`` starts at ``offset``)."""
    total = total if total is not None else offset + len(items)
    page = items[:size]
    edges = [{"cursor": _cursor(offset + i), "node": x} for i, x in enumerate(page)]
    return {
        "edges": edges,
        "page_info": {
            "has_next_page": offset + len(page) < total,
            "end_cursor": edges[-1]["cursor"] if edges else None,
        },
        "total_count": total,
    }
