"""The ASGI app: POST /graphql with an API key, GraphiQL in development, /healthz, the
explorer page (/explore) and the streamed match-list export (/export/matches).

One thin endpoint over graphql-core (docs/api.md says why not a framework view): parse with
a token limit, validate with the standard rules plus the query limits (and without
introspection in production), execute in a worker thread under a timeout, and answer with
typed errors. Status codes: 200 for every executed request (errors inside), 400 for a body
that is not a GraphQL request, 401 without a valid key, 413 for an oversized body, 429 when
the key's rate limit is spent (with Retry-After), 503 when the store is unavailable. Never 500.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    OperationDefinitionNode,
    execute,
    parse,
    specified_rules,
    validate,
)
from graphql.validation import NoSchemaIntrospectionCustomRule
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from kolmatch.api.auth import KeyRing, Principal
from kolmatch.api.errors import RateLimited, code_of, format_error, localised
from kolmatch.api.limits import Limits, RateLimiter, limit_rules
from kolmatch.api.schema import schema
from kolmatch.api.types.common import RequestContext
from kolmatch.engine.jobs import JobBoard, RequestWork, SolverPool, bound_work
from kolmatch.engine.service import EngineService
from kolmatch.errors import (
    BadArgument,
    Cancel,
    IncompleteLoad,
    KolmatchError,
    StoreUnavailable,
)
from kolmatch.i18n import DEFAULT_LANG, negotiate
from kolmatch.matching.score import DEFAULT_WEIGHTS

__all__ = ["SERVING_BLAS_THREADS", "app_from_env", "create_app", "limit_blas_threads"]

log = logging.getLogger("kolmatch.api")

#: The pages' files, shipped in the package (no CDN: they render with the network cut off):
#: ``graphiql/`` (vendored GraphiQL, React and their licences) and ``explore/``.
STATIC = Path(__file__).parent / "static"
#: The response header naming the graph version a /graphql request's answers reflect (a
#: batch: the oldest of its operations'; a write: the version it made) and an export's: a
#: client can tell a worker that has not caught up with a write yet (within ~1 s: follow).
GRAPH_VERSION_HEADER = "Kolmatch-Graph-Version"


def _error(status: int, code: str, message: str, lang: str = DEFAULT_LANG) -> JSONResponse:
    """The endpoint's own error answer, its message in the reader's language."""
    text = localised(code, message, lang)
    return JSONResponse({"errors": [{"message": text, "extensions": {"code": code}}]}, status)


def _api_key(request: Request) -> str | None:
    """The key a request sends: ``Authorization: Bearer <key>`` or ``X-API-Key``."""
    auth = request.headers.get("authorization", "")
    return auth[7:] if auth.lower().startswith("bearer ") else request.headers.get("x-api-key")


def _too_many(exc: RateLimited, lang: str = DEFAULT_LANG) -> JSONResponse:
    """HTTP 429: the typed error, with ``Retry-After`` in whole seconds (also in extensions)."""
    body = {
        "errors": [
            {
                "message": localised(code_of(exc), str(exc), lang, exc),
                "extensions": {"code": code_of(exc), "retryAfter": exc.retry_after},
            }
        ]
    }
    return JSONResponse(body, 429, headers={"Retry-After": str(exc.retry_after)})


def create_app(
    service: EngineService,
    keys: KeyRing,
    *,
    production: bool | None = None,
    limits: Limits | None = None,
    solvers: SolverPool | None = None,
    jobs: JobBoard | None = None,
) -> Starlette:
    """The API as an ASGI app.

    Parameters
    ----------
    service
        The engine (its store is closed by the caller after the app stops).
    keys
        API keys to principals.
    production
        Introspection and GraphiQL off; default ``KOLMATCH_ENV == "production"``.
    limits
        Query, request and rate limits; default :meth:`Limits.from_env`.
    solvers
        The processes plans and assignments run in, killed when their request times out or
        their job is cancelled; default :meth:`SolverPool.from_env` (one at a time).
    jobs
        The server's background jobs (``startAssignment``, ``startRefresh``, ``job``).
    """
    prod = production if production is not None else os.environ.get("KOLMATCH_ENV") == "production"
    lim = limits or Limits.from_env()
    rate = RateLimiter(lim)
    pool = solvers if solvers is not None else SolverPool.from_env()
    board = jobs if jobs is not None else JobBoard.from_env()
    rules = [*specified_rules, *limit_rules(lim)]
    if prod:
        rules.append(NoSchemaIntrospectionCustomRule)
    gql_schema = schema.graphql_schema
    # Parsed and validated documents by query text: clients send the same few queries with
    # different variables, and validation does not depend on variables (limits assume the
    # largest page for a variable `first`).
    documents: _Documents = _Documents(DOCUMENT_CACHE_SIZE, DOCUMENT_CACHE_MAX_CHARS)

    def run_one(
        op: Any, principal: Principal, run: _Run, lang: str, versions: list[int]
    ) -> tuple[dict[str, Any], bool]:
        """Execute one operation; returns its JSON and whether the store was unavailable.

        Nothing starts executing once the request has timed out; what did start is
        recorded in ``run`` for the timeout's message. The graph version the operation was
        answered from (a write's own, after it) is appended to ``versions``.
        """
        if not isinstance(op, dict) or not isinstance(op.get("query"), str):
            return {
                "errors": [
                    {"message": 'expected {"query": "..."}', "extensions": {"code": "BAD_REQUEST"}}
                ]
            }, False
        variables = op.get("variables")
        name = op.get("operationName")
        if variables is not None and not isinstance(variables, dict):
            return {
                "errors": [
                    {
                        "message": "variables must be an object",
                        "extensions": {"code": "BAD_REQUEST"},
                    }
                ]
            }, False
        text = op["query"]
        checked = documents.get(text)
        if checked is None:
            try:
                doc = parse(text, max_tokens=lim.max_tokens)
            except GraphQLError as exc:
                exc.extensions = {"code": "GRAPHQL_PARSE_FAILED"}
                return {"errors": [format_error(exc, lang)]}, False
            errors = validate(gql_schema, doc, rules)
            if errors:
                return {"errors": [format_error(e, lang) for e in errors[:20]]}, False
            kinds = {
                d.operation.value for d in doc.definitions if isinstance(d, OperationDefinitionNode)
            }
            checked = documents.put(text, (doc, kinds))
        doc, kinds = checked
        if not run.start(kinds):
            return {"errors": [{"message": "timed out", "extensions": {"code": "TIMEOUT"}}]}, False
        ctx = RequestContext(principal, service, service.snapshot, lim, lang)
        result: ExecutionResult = execute(  # type: ignore[assignment]
            gql_schema,
            doc,
            context_value=ctx,
            variable_values=variables,
            operation_name=name if isinstance(name, str) else None,
        )
        versions.append(ctx.snap.version)
        out: dict[str, Any] = {"data": result.data}
        down = False
        if result.errors:
            out["errors"] = [format_error(e, lang) for e in result.errors]
            down = any(
                isinstance(e.original_error, (StoreUnavailable, IncompleteLoad))
                for e in result.errors
            )
        return out, down

    def admit(request: Request, lang: str) -> tuple[str, Principal] | Response:
        """The request's key and principal, one operation taken from its rate; or the 401 /
        429 answer."""
        key = _api_key(request)
        principal = keys.principal(key)
        if principal is None or key is None:
            return _error(
                401,
                "UNAUTHENTICATED",
                "missing or unknown API key (Authorization: Bearer <key>)",
                lang,
            )
        try:
            rate.take(key, internal=principal.internal)
        except RateLimited as exc:
            return _too_many(exc, lang)
        return key, principal

    async def graphql_endpoint(request: Request) -> Response:
        t0 = time.perf_counter()
        lang = negotiate(request.headers.get("accept-language"))
        if request.method == "GET":
            if prod:
                return _error(405, "METHOD_NOT_ALLOWED", "POST GraphQL requests to /graphql", lang)
            return FileResponse(STATIC / "graphiql" / "index.html")
        # one operation's worth before reading the body, the rest of a batch once it is read:
        # a flood is refused before it costs a read, a batch costs what it asks
        admitted = admit(request, lang)
        if isinstance(admitted, Response):
            return admitted
        key, principal = admitted
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > lim.max_body_bytes:
            return _error(
                413, "BODY_TOO_LARGE", f"request body over {lim.max_body_bytes} bytes", lang
            )
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > lim.max_body_bytes:
                return _error(
                    413, "BODY_TOO_LARGE", f"request body over {lim.max_body_bytes} bytes", lang
                )
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _error(400, "BAD_REQUEST", "the body is not JSON", lang)
        batch = isinstance(payload, list)
        ops = payload if batch else [payload]
        if not ops or len(ops) > lim.max_batch:
            return _error(400, "BAD_REQUEST", f"send 1 to {lim.max_batch} operations", lang)
        if len(ops) > 1:
            try:
                rate.take(key, internal=principal.internal, n=len(ops) - 1)
            except RateLimited as exc:
                return _too_many(exc, lang)

        run = _Run()
        # set when the request times out: loops stop at their next check, and a solver
        # process is killed (kolmatch/engine/jobs.py); its deadline also stops a process
        # that outlives this server
        cancel = Cancel(deadline=time.monotonic() + lim.timeout_s)
        work = RequestWork(cancel, pool, board)

        versions: list[int] = []

        def run_all() -> tuple[list[dict[str, Any]], bool]:
            outs, down = [], False
            with bound_work(work):
                for op in ops:
                    o, d = run_one(op, principal, run, lang, versions)
                    outs.append(o)
                    down = down or d
            return outs, down

        try:
            outs, down = await asyncio.wait_for(run_in_threadpool(run_all), lim.timeout_s)
        except TimeoutError:
            cancel.cancel("the request timed out")
            msg = f"the request took over {lim.timeout_s:g}s"
            if "mutation" in run.stop():  # a started write is not cancelled: say so
                msg += (
                    "; its mutation was not cancelled and may still complete: check before retrying"
                )
            return _error(200, "TIMEOUT", msg, lang)
        except Exception:  # a bug: logged, never a stack trace to the client
            log.exception("request failed")
            return _error(200, "INTERNAL", "internal error", lang)
        # the server's own time, so load tests can tell it from their clients' queueing
        head = {"Server-Timing": f"app;dur={(time.perf_counter() - t0) * 1000:.2f}"}
        if versions:  # the oldest graph version any operation of the request was answered from
            head[GRAPH_VERSION_HEADER] = str(min(versions))
        waits = [
            e["extensions"]["retryAfter"]
            for o in outs
            for e in o.get("errors", ())
            if "retryAfter" in e.get("extensions", {})
        ]
        if waits:  # a write refused for now (REBUILDING): when to send it again
            head["Retry-After"] = str(max(waits))
        return JSONResponse(outs if batch else outs[0], 503 if down else 200, headers=head)

    async def explore(request: Request) -> Response:
        # the page signs in with a key it sends on each /graphql request, so it is public
        return FileResponse(STATIC / "explore" / "index.html")

    async def export_matches(request: Request) -> Response:
        """GET /export/matches: internal tools' match lists as CSV or JSON lines, streamed.

        Each merchant's list is the ``matchLists`` field itself, executed for that merchant
        alone (:data:`EXPORT_DOCUMENT`), so compliance, the policy and per-merchant errors are
        the field's; the rows are written one merchant at a time from one snapshot.
        """
        lang = negotiate(request.headers.get("accept-language"))
        admitted = admit(request, lang)
        if isinstance(admitted, Response):
            return admitted
        key, principal = admitted
        if not principal.internal:
            return _error(
                403, "FORBIDDEN", "the match-list export is for internal tools only", lang
            )
        snap = service.snapshot
        try:
            fmt, merchants, first = _export_arguments(request, snap.features.merchant_ids, lim)
        except _BadParameter as exc:
            return _error(400, "BAD_ARGUMENT", str(exc), lang)
        if len(merchants) > 1:  # one operation per merchant, as a batch of matchLists
            try:
                rate.take(key, internal=True, n=len(merchants) - 1)
            except RateLimited as exc:
                return _too_many(exc, lang)
        ctx = RequestContext(principal, service, snap, lim, lang)

        def one(merchant: str) -> str:
            result: ExecutionResult = execute(  # type: ignore[assignment]
                gql_schema,
                EXPORT_DOCUMENT,
                context_value=ctx,
                variable_values={"ids": [merchant], "first": first},
            )
            item = ((result.data or {}).get("matchLists") or [None])[0]
            error = None
            if item is None:  # the field's own error for this merchant (e.g. NOT_ELIGIBLE)
                first_error = [format_error(e, ctx.lang) for e in result.errors or []][:1]
                error = {
                    "code": first_error[0]["extensions"]["code"] if first_error else "INTERNAL",
                    "message": first_error[0]["message"] if first_error else "internal error",
                }
            return _export_chunk(fmt, merchant, item, error)

        async def chunks() -> AsyncIterator[str]:
            if fmt == "csv":
                yield _csv_line(EXPORT_COLUMNS)
            for m in merchants:
                try:
                    yield await run_in_threadpool(one, m)
                except Exception:  # a bug: logged; the stream says so and ends
                    log.exception("export of %s failed", m)
                    error = {"code": "INTERNAL", "message": "internal error"}
                    yield _export_chunk(fmt, m, None, error)
                    return

        name = f"matches.{fmt}"
        media = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
        return StreamingResponse(
            chunks(),
            media_type=media,
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                GRAPH_VERSION_HEADER: str(snap.version),
            },
        )

    async def healthz(request: Request) -> Response:
        try:
            info = await run_in_threadpool(service.health)
        except KolmatchError as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, 503)
        return JSONResponse({"ok": True, **info})

    return Starlette(
        routes=[
            Route("/graphql", graphql_endpoint, methods=["GET", "POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/explore", explore, methods=["GET"]),
            Route("/export/matches", export_matches, methods=["GET"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )


#: Valid documents kept parsed and validated, and the longest query text kept.
DOCUMENT_CACHE_SIZE = 256
DOCUMENT_CACHE_MAX_CHARS = 4096

#: What /export/matches writes per merchant: the ``matchLists`` field for that merchant alone.
EXPORT_QUERY = """
query Export($ids: [ID!]!, $first: Int!) {
  matchLists(merchantIds: $ids, first: $first) {
    merchant
    matches {
      rank score price priceEstimated affordable evidence
      breakdown { signal value }
      talent { id name tier followers listPrice }
    }
  }
}
"""
EXPORT_DOCUMENT = parse(EXPORT_QUERY)
EXPORT_FORMATS = ("csv", "jsonl")
EXPORT_PARAMETERS = ("format", "merchant", "first")
#: The CSV's columns: one row per match; a merchant without a list is one row with ``error``.
EXPORT_COLUMNS = (
    "merchant",
    "rank",
    "talent",
    "talent_name",
    "tier",
    "followers",
    "list_price",
    "score",
    "price",
    "price_estimated",
    "affordable",
    *DEFAULT_WEIGHTS,
    "evidence",
    "error",
)
#: Evidence lines are joined with this in a CSV cell (JSON lines keep the list).
EVIDENCE_SEPARATOR = " | "


class _BadParameter(ValueError):
    """A query parameter of /export/matches is wrong; the message starts with its name."""


def _export_arguments(
    request: Request, merchant_ids: Any, limits: Limits
) -> tuple[str, list[str], int]:
    """(format, merchant ids, first) from the query string, each checked; raises _BadParameter."""
    params = request.query_params
    unknown = sorted(set(params) - set(EXPORT_PARAMETERS))
    if unknown:
        raise _BadParameter(
            f"{unknown[0]}: unknown parameter; known: {', '.join(EXPORT_PARAMETERS)}"
        )
    for name in ("format", "first"):
        if len(params.getlist(name)) > 1:
            raise _BadParameter(f"{name}: give it once")
    fmt = params.get("format", "csv")
    if fmt not in EXPORT_FORMATS:
        raise _BadParameter(f"format: must be csv or jsonl, got {fmt!r}")
    raw = params.get("first", "10")
    try:
        first = int(raw)
    except ValueError:
        raise _BadParameter(f"first: must be an integer, got {raw!r}") from None
    if not 1 <= first <= limits.max_page:
        raise _BadParameter(f"first: must be between 1 and {limits.max_page}, got {first}")
    merchants = params.getlist("merchant")
    if not merchants:
        raise _BadParameter("merchant: give at least one (merchant=m0&merchant=m1)")
    if len(merchants) > limits.max_page:
        raise _BadParameter(f"merchant: at most {limits.max_page} merchants per export")
    known = set(map(str, merchant_ids))
    missing = [m for m in merchants if m not in known]
    if missing:
        raise _BadParameter(f"merchant: unknown merchant id {missing[0]!r}")
    return fmt, merchants, first


def _csv_line(values: Any) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue()


def _csv_value(x: Any) -> Any:
    if isinstance(x, bool):
        return "true" if x else "false"
    return "" if x is None else x


def _export_chunk(
    fmt: str, merchant: str, item: dict[str, Any] | None, error: dict[str, str] | None
) -> str:
    """One merchant's lines: its matches, or one line with the error its list got."""
    matches = item["matches"] if item is not None else []
    if fmt == "jsonl":
        if error is not None:
            return json.dumps({"merchant": merchant, "error": error}, ensure_ascii=False) + "\n"
        return "".join(
            json.dumps({"merchant": merchant, **m}, ensure_ascii=False) + "\n" for m in matches
        )
    if error is not None:
        failed: dict[str, Any] = dict.fromkeys(EXPORT_COLUMNS, "")
        failed.update(merchant=merchant, error=f"{error['code']}: {error['message']}")
        return _csv_line(failed.values())
    lines = []
    for m in matches:
        t = m["talent"]
        signals = {b["signal"]: b["value"] for b in m["breakdown"]}
        row: dict[str, Any] = {
            "merchant": merchant,
            "rank": m["rank"],
            "talent": t["id"],
            "talent_name": t["name"],
            "tier": t["tier"],
            "followers": t["followers"],
            "list_price": t["listPrice"],
            "score": m["score"],
            "price": m["price"],
            "price_estimated": m["priceEstimated"],
            "affordable": m["affordable"],
            **{s: signals.get(s) for s in DEFAULT_WEIGHTS},
            "evidence": EVIDENCE_SEPARATOR.join(m["evidence"]),
            "error": None,
        }
        lines.append(_csv_line(_csv_value(row[c]) for c in EXPORT_COLUMNS))
    return "".join(lines)


class _Documents:
    """A small thread-safe LRU of checked documents (bounded count and text length)."""

    def __init__(self, size: int, max_chars: int) -> None:
        self._items: OrderedDict[str, tuple[DocumentNode, set[str]]] = OrderedDict()
        self._size = size
        self._max_chars = max_chars
        self._lock = threading.Lock()

    def get(self, text: str) -> tuple[DocumentNode, set[str]] | None:
        with self._lock:
            item = self._items.get(text)
            if item is not None:
                self._items.move_to_end(text)
            return item

    def put(self, text: str, item: tuple[DocumentNode, set[str]]) -> tuple[DocumentNode, set[str]]:
        if len(text) <= self._max_chars:
            with self._lock:
                self._items[text] = item
                while len(self._items) > self._size:
                    self._items.popitem(last=False)
        return item


class _Run:
    """One request's execution as seen by its timeout: once stopped, nothing more starts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stopped = False
        self._started: set[str] = set()

    def start(self, kinds: set[str]) -> bool:
        """Record operations about to execute; False if the request has already timed out."""
        with self._lock:
            if self._stopped:
                return False
            self._started |= kinds
            return True

    def stop(self) -> set[str]:
        """Time the request out; the kinds of operation that had started."""
        with self._lock:
            self._stopped = True
            return set(self._started)


#: BLAS threads of a serving process, unless ``KOLMATCH_BLAS_THREADS`` says otherwise. A server's
#: concurrency is its requests and its processes; a match list's matrix products are small, and
#: on two BLAS threads one took 47 ms of CPU for 24 ms at m, on one thread 26 ms for 26 ms
#: (2 cores): under 50 clients the spinning second thread took the cores other requests needed.
SERVING_BLAS_THREADS = 1


def limit_blas_threads(environ: dict[str, str] | None = None) -> int:
    """Hold this process's BLAS to ``KOLMATCH_BLAS_THREADS`` threads (default
    :data:`SERVING_BLAS_THREADS`). Called by the serving processes alone: a build in its own
    process (a rebuild's child, ``kolmatch build``) keeps every core; one a serving process
    runs itself (its first snapshot, a fallback rebuild) has the serving thread count.

    Parameters
    ----------
    environ
        Where to read the variable; default ``os.environ``.

    Returns
    -------
    int
        The number of threads set.

    Raises
    ------
    BadArgument
        If the variable is not a whole number >= 1.
    """
    from threadpoolctl import threadpool_limits

    env = os.environ if environ is None else environ
    text = env.get("KOLMATCH_BLAS_THREADS", "").strip() or str(SERVING_BLAS_THREADS)
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise BadArgument("KOLMATCH_BLAS_THREADS", f"expected a whole number >= 1, got {text!r}")
    threadpool_limits(limits=n, user_api="blas")
    return n


def app_from_env() -> Starlette:
    """The app of one server process: store from ``KOLMATCH_STORE``, keys from the environment.

    Used by ``kolmatch serve --workers N``, where every process builds its own.
    """
    import atexit

    from kolmatch.api.auth import load_keys
    from kolmatch.graph.open import open_store, store_uri

    limit_blas_threads()
    store = open_store(store_uri(None))
    try:
        service = EngineService(store, settle=True)
    except BaseException:
        store.close()
        raise
    service.follow()  # other worker processes write too: serve their versions within ~a poll
    atexit.register(service.close)  # after any write still running
    return create_app(service, load_keys())
