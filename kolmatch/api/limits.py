"""Request limits: depth, aliases and the cost of list fields (checked before execution), and
per-key rate limits (token buckets, HTTP 429)."""

from __future__ import annotations

import hashlib
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
)

from kolmatch.api.errors import RateLimited
from kolmatch.errors import BadArgument

__all__ = ["Limits", "RateLimiter", "limit_rules"]


@dataclass(frozen=True)
class Limits:
    """Every bound the server enforces (docs/api.md)."""

    max_depth: int = 8
    max_aliases: int = 20
    max_tokens: int = 2_000
    max_cost: int = 20_000
    max_page: int = 100
    max_body_bytes: int = 64 * 1024
    max_batch: int = 10
    timeout_s: float = 10.0
    #: operations per second and burst per API key of a merchant or an agency (0: no limit)
    rate_per_s: float = 20.0
    burst: int = 100
    #: the same for internal keys: tools that read many merchants at once
    internal_rate_per_s: float = 200.0
    internal_burst: int = 400
    #: a SQLite file holding the buckets, shared by every server process that names it
    #: (``kolmatch serve --workers N`` sets one, ``KOLMATCH_RATE_FILE``); None: in memory
    rate_file: str | None = None

    def __post_init__(self) -> None:
        for name, rate, burst in (
            ("KOLMATCH_RATE", self.rate_per_s, self.burst),
            ("KOLMATCH_INTERNAL_RATE", self.internal_rate_per_s, self.internal_burst),
        ):
            if not math.isfinite(rate) or rate < 0:
                raise BadArgument(f"{name}_PER_S", f"must be a finite rate >= 0, got {rate}")
            if rate > 0 and burst < self.max_batch:
                # a full batch must fit in the bucket, or it could never be served
                raise BadArgument(
                    f"{name}_BURST",
                    f"must be at least the batch size {self.max_batch}, got {burst}",
                )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Limits:
        """Defaults, with the rate limits from the environment where set.

        ``KOLMATCH_RATE_PER_S`` and ``KOLMATCH_RATE_BURST`` (merchant and agency keys),
        ``KOLMATCH_INTERNAL_RATE_PER_S`` and ``KOLMATCH_INTERNAL_RATE_BURST`` (internal keys);
        a rate of 0 turns that limit off. ``KOLMATCH_RATE_FILE``: the buckets' shared file.

        Raises
        ------
        BadArgument
            If a value is not a number (naming the variable) or is out of range.

        Examples
        --------
        >>> Limits.from_env({"KOLMATCH_RATE_PER_S": "5", "KOLMATCH_RATE_BURST": "20"}).rate_per_s
        5.0
        """
        env = os.environ if environ is None else environ
        kw: dict[str, Any] = {}
        for var, field, kind in (
            ("KOLMATCH_RATE_PER_S", "rate_per_s", float),
            ("KOLMATCH_RATE_BURST", "burst", int),
            ("KOLMATCH_INTERNAL_RATE_PER_S", "internal_rate_per_s", float),
            ("KOLMATCH_INTERNAL_RATE_BURST", "internal_burst", int),
        ):
            text = env.get(var)
            if text is None or not text.strip():
                continue
            try:
                kw[field] = kind(text)
            except ValueError:
                raise BadArgument(var, f"expected a number, got {text!r}") from None
        shared = env.get("KOLMATCH_RATE_FILE", "").strip()
        return cls(**kw, rate_file=shared or None)


class RateLimiter:
    """A token bucket per API key: ``rate`` operations a second, up to ``burst`` at once.

    Buckets are keyed by a digest of the key (the key itself is not kept), and exist only
    for keys that authenticated, so their number is bounded by the configured keys. They
    live in the server process, or, when :attr:`Limits.rate_file` names a file, in a SQLite
    table every process naming it shares: with ``kolmatch serve --workers N`` a key gets its
    rate across all N processes, not N times it (each take is one short write transaction,
    ~0.1 ms; the clock is the machine's monotonic clock, the same in every process).

    Examples
    --------
    >>> now = [0.0]
    >>> rl = RateLimiter(Limits(rate_per_s=1, burst=10), clock=lambda: now[0])
    >>> rl.take("k", internal=False, n=10)
    >>> try:
    ...     rl.take("k", internal=False)
    ... except RateLimited as exc:
    ...     print(exc.retry_after)
    1
    >>> now[0] = 1.0
    >>> rl.take("k", internal=False)
    """

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[bytes, tuple[float, float]] = {}  # digest -> (tokens, when)
        self._db: sqlite3.Connection | None = None
        if limits.rate_file:
            self._db = sqlite3.connect(
                limits.rate_file, timeout=5.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=OFF")  # a bucket lost in a crash refills
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS bucket"
                " (digest BLOB PRIMARY KEY, tokens REAL NOT NULL, at REAL NOT NULL)"
            )

    def take(self, key: str, *, internal: bool, n: int = 1) -> None:
        """Spend ``n`` operations of ``key``'s budget.

        Raises
        ------
        RateLimited
            If the bucket holds fewer than ``n``; nothing is spent, and ``retry_after`` says
            in how many whole seconds it will hold ``n``.
        """
        lim = self._limits
        rate, burst = (
            (lim.internal_rate_per_s, lim.internal_burst)
            if internal
            else (lim.rate_per_s, lim.burst)
        )
        if rate <= 0:
            return
        digest = hashlib.sha256(key.encode()).digest()
        with self._lock:
            if self._db is None:
                now = self._clock()
                tokens = _refill(self._buckets.get(digest, (float(burst), now)), now, rate, burst)
                ok = tokens >= n
                self._buckets[digest] = (tokens - n if ok else tokens, now)
            else:
                ok, tokens = self._take_shared(self._db, digest, rate, burst, n)
        if not ok:
            raise RateLimited(max(1, math.ceil((n - tokens) / rate)), rate, burst)

    def _take_shared(
        self, db: sqlite3.Connection, digest: bytes, rate: float, burst: int, n: int
    ) -> tuple[bool, float]:
        """(spent?, tokens before) in the shared table, atomically across processes."""
        db.execute("BEGIN IMMEDIATE")  # one process at a time between the read and the write
        try:
            now = self._clock()
            row = db.execute("SELECT tokens, at FROM bucket WHERE digest = ?", (digest,)).fetchone()
            tokens = _refill(row if row else (float(burst), now), now, rate, burst)
            ok = tokens >= n
            db.execute(
                "INSERT OR REPLACE INTO bucket VALUES (?, ?, ?)",
                (digest, tokens - n if ok else tokens, now),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return ok, tokens


def _refill(seen: tuple[float, float], now: float, rate: float, burst: int) -> float:
    """A bucket's tokens now, from (tokens, when) last seen."""
    tokens, when = seen
    return min(float(burst), tokens + max(now - when, 0.0) * rate)


def _first(field: FieldNode, max_page: int) -> int:
    """The page size a list field asks for: its ``first`` literal, else the maximum."""
    for arg in field.arguments or ():
        if arg.name.value == "first":
            if isinstance(arg.value, IntValueNode):
                return max(1, int(arg.value.value))
            return max_page  # a variable: assume the largest page
    return 1


def limit_rules(limits: Limits) -> list[type[ValidationRule]]:
    """Validation rules enforcing ``limits`` (with graphql-core's standard rules)."""

    class QueryLimits(ValidationRule):
        def enter_document(self, node: Any, *_: Any) -> None:
            frags = {
                d.name.value: d for d in node.definitions if isinstance(d, FragmentDefinitionNode)
            }
            aliases = 0
            for d in node.definitions:
                if not isinstance(d, OperationDefinitionNode):
                    continue
                depth, cost, n_alias, intro = _walk(
                    d.selection_set, frags, limits.max_page, 1, set()
                )
                aliases += n_alias
                if intro > INTROSPECTION_DEPTH:
                    self.report_error(
                        GraphQLError(
                            f"introspection query is {intro} levels deep; the limit is "
                            f"{INTROSPECTION_DEPTH}",
                            extensions={"code": "LIMIT_EXCEEDED"},
                        )
                    )
                if depth > limits.max_depth:
                    self.report_error(
                        GraphQLError(
                            f"query is {depth} levels deep; the limit is {limits.max_depth}",
                            extensions={"code": "LIMIT_EXCEEDED"},
                        )
                    )
                if cost > limits.max_cost:
                    self.report_error(
                        GraphQLError(
                            f"query may return about {cost:,} objects; the limit is "
                            f"{limits.max_cost:,} (ask for smaller pages)",
                            extensions={"code": "LIMIT_EXCEEDED"},
                        )
                    )
            if aliases > limits.max_aliases:
                self.report_error(
                    GraphQLError(
                        f"query uses {aliases} aliases; the limit is {limits.max_aliases}",
                        extensions={"code": "LIMIT_EXCEEDED"},
                    )
                )

    return [QueryLimits]


#: Introspection's own roots: their subtrees are held to :data:`INTROSPECTION_DEPTH` rather
#: than ``max_depth`` (GraphiQL's schema query nests ``ofType`` 15 levels deep). Introspection
#: is off in production (kolmatch/api/app.py), so this only opens development servers.
INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})
INTROSPECTION_DEPTH = 16


def _walk(
    sel: SelectionSetNode | None,
    frags: dict[str, FragmentDefinitionNode],
    max_page: int,
    mult: int,
    seen: set[str],
) -> tuple[int, int, int, int]:
    """(depth, cost, aliases, introspection depth) of a selection set; fragment cycles are
    cut (and reported by graphql-core's own NoFragmentCycles rule)."""
    if sel is None:
        return 0, 0, 0, 0
    depth = cost = aliases = intro = 0
    for s in sel.selections:
        if isinstance(s, FieldNode):
            aliases += s.alias is not None
            m = mult * _first(s, max_page)
            d, c, a, i = _walk(s.selection_set, frags, max_page, m, seen)
            if s.name.value in INTROSPECTION_ROOTS:
                intro = max(intro, 1 + d, i)
            else:
                depth, intro = max(depth, 1 + d), max(intro, i)
            cost += m + c
            aliases += a
        elif isinstance(s, InlineFragmentNode):
            d, c, a, i = _walk(s.selection_set, frags, max_page, mult, seen)
            depth, cost, aliases, intro = max(depth, d), cost + c, aliases + a, max(intro, i)
        elif isinstance(s, FragmentSpreadNode) and s.name.value not in seen:
            f = frags.get(s.name.value)
            if f is not None:
                d, c, a, i = _walk(f.selection_set, frags, max_page, mult, seen | {s.name.value})
                depth, cost, aliases, intro = max(depth, d), cost + c, aliases + a, max(intro, i)
    return depth, cost, aliases, intro
