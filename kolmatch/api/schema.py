"""The schema: queries for merchants, agencies, service providers and internal tools;
validated mutations."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import graphene
import numpy as np

from kolmatch.api.errors import (
    ASSIGNMENT_ARGUMENTS,
    COLLABORATION_ARGUMENTS,
    VIOLATION_ARGUMENTS,
    Forbidden,
    api_arguments,
    code_of,
    flags_in_api_words,
)
from kolmatch.api.types.agency import Agency, TalentConnection
from kolmatch.api.types.campaign import (
    BookTalents,
    Campaign,
    CreateCampaign,
    JoinCampaign,
    ReleaseBookings,
)
from kolmatch.api.types.common import (
    RequestContext,
    actor_of,
    connection,
    context,
    page_size,
    page_window,
    require_internal,
    selects,
    sliced,
    write_as,
)
from kolmatch.api.types.growth import GrowthReportType, resolve_growth
from kolmatch.api.types.merchant import Match, Merchant, MerchantRef, merchant_ref, to_match
from kolmatch.api.types.provider import (
    ProviderMatchType,
    ServiceProvider,
    provider_ref,
    resolve_service_providers,
)
from kolmatch.api.types.talent import Talent, TalentRef, talent_ref
from kolmatch.engine.campaigns import CampaignBrief
from kolmatch.engine.jobs import JOB_STATES, Job, RequestWork, request_work
from kolmatch.errors import (
    BadArgument,
    Cancel,
    Conflict,
    KolmatchError,
    LimitExceeded,
    UnknownId,
)
from kolmatch.graph.model import tier_of
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.market import (
    JOB_MAX_PAIRS,
    METHODS,
    QUERY_MAX_PAIRS,
    MarketAssignment,
    assign_market,
    assignment_pairs,
)
from kolmatch.matching.plan import TIERS
from kolmatch.matching.score import match_merchant

__all__ = ["schema"]

MerchantConnection = connection("Merchant", Merchant)


class PrincipalType(graphene.ObjectType):
    class Meta:
        name = "Principal"

    kind = graphene.String(required=True)
    id = graphene.ID()


class TalentOrder(graphene.Enum):
    FOLLOWERS_DESC = "followers"
    CENTRALITY_DESC = "centrality"
    ID_ASC = "id"


class TalentFilter(graphene.InputObjectType):
    tier = graphene.String()
    category = graphene.String(description="the talent's content leans to this category")
    agency = graphene.ID()
    min_followers = graphene.Float()
    name_contains = graphene.String()


class MatchList(graphene.ObjectType):
    """One merchant's list in ``matchLists``; null (with an error at its index) if refused."""

    merchant = graphene.ID(required=True)
    matches = graphene.List(graphene.NonNull(Match), required=True)


class AssignmentInput(graphene.InputObjectType):
    method = graphene.String(required=True, default_value="auto", description=", ".join(METHODS))
    candidates = graphene.Int(required=True, default_value=10)
    campaign = graphene.ID()
    agency_cap = graphene.Int(required=True, default_value=3)
    time_limit = graphene.Float(required=True, default_value=30.0)


class AssignedPair(graphene.ObjectType):
    merchant = graphene.ID(required=True)
    talent = graphene.ID(required=True)
    expected_value = graphene.Float(required=True)
    fee = graphene.Float(required=True)


class Assignment(graphene.ObjectType):
    window = graphene.String(required=True)
    pairs = graphene.List(graphene.NonNull(AssignedPair), required=True)
    objective = graphene.Float(required=True)
    bound = graphene.Float()
    gap = graphene.Float()
    method = graphene.String(required=True)
    merchants_served = graphene.Int(required=True)
    blocking_pairs = graphene.Int()


def _assignment_out(a: MarketAssignment) -> dict[str, Any]:
    return {
        "window": a.window,
        "pairs": [
            {"merchant": m, "talent": t, "expected_value": v, "fee": fee}
            for m, t, v, fee in a.pairs
        ],
        "objective": a.objective,
        "bound": None if a.bound != a.bound else a.bound,
        "gap": None if a.gap != a.gap else a.gap,
        "method": a.method,
        "merchants_served": a.merchants_served,
        "blocking_pairs": a.blocking_pairs,
    }


def _assign(
    ctx: RequestContext, args: dict[str, Any], *, max_pairs: int, time_limit: float
) -> MarketAssignment:
    """The market assignment in a solver process, killed if the request times out."""
    work = request_work()
    return _solve_assignment(work, ctx.snap.features, args, time_limit, max_pairs, work.cancel)


def _solve_assignment(
    work: RequestWork,
    features: MarketFeatures,
    args: dict[str, Any],
    time_limit: float,
    max_pairs: int,
    cancel: Cancel,
    on_start: Callable[[], None] | None = None,
) -> MarketAssignment:
    """:func:`assign_market` on ``args`` in a solver process, errors in the API's names."""
    with api_arguments(ASSIGNMENT_ARGUMENTS):
        return work.solvers.run(
            assign_market,
            features,
            method=args.get("method", "auto"),
            candidates=args.get("candidates", 10),
            campaign=args.get("campaign"),
            agency_cap=args.get("agency_cap", 3),
            time_limit=time_limit,
            max_pairs=max_pairs,
            cancel=cancel,
            **({"on_start": on_start} if on_start is not None else {}),
        )


JobStatus = graphene.Enum("JobStatus", [(s.upper(), s) for s in JOB_STATES])


class JobError(graphene.ObjectType):
    code = graphene.String(required=True)
    message = graphene.String(required=True)


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


class JobType(graphene.ObjectType):
    """A long operation run in the background (docs/api.md, "Bounded work")."""

    class Meta:
        name = "Job"

    id = graphene.ID(required=True)
    kind = graphene.String(required=True, description="assignment or refresh")
    status = graphene.Field(JobStatus, required=True)
    created = graphene.String(required=True, description="ISO-8601, UTC")
    started = graphene.String()
    finished = graphene.String()
    queued_seconds = graphene.Float(required=True, description="from created to started")
    running_seconds = graphene.Float(description="from started to finished (or now)")
    assignment = graphene.Field(
        lambda: Assignment, description="an assignment job's result, once done"
    )
    version = graphene.Int(description="a refresh job's graph version, once done")
    error = graphene.Field(JobError, description="why a failed job failed")
    note = graphene.String(required=True)

    @staticmethod
    def resolve_id(job: Job, info: Any) -> str:
        return job.id

    @staticmethod
    def resolve_kind(job: Job, info: Any) -> str:
        return job.kind

    @staticmethod
    def resolve_status(job: Job, info: Any) -> str:
        return job.status

    @staticmethod
    def resolve_created(job: Job, info: Any) -> str | None:
        return _iso(job.created)

    @staticmethod
    def resolve_started(job: Job, info: Any) -> str | None:
        return _iso(job.started)

    @staticmethod
    def resolve_finished(job: Job, info: Any) -> str | None:
        return _iso(job.finished)

    @staticmethod
    def resolve_queued_seconds(job: Job, info: Any) -> float:
        end = job.started or job.finished or datetime.now(UTC).timestamp()
        return round(end - job.created, 3)

    @staticmethod
    def resolve_running_seconds(job: Job, info: Any) -> float | None:
        if job.started is None:
            return None
        end = job.finished or datetime.now(UTC).timestamp()
        return round(end - job.started, 3)

    @staticmethod
    def resolve_assignment(job: Job, info: Any) -> dict[str, Any] | None:
        done = job.kind == "assignment" and job.status == "done"
        return job.out if done else None

    @staticmethod
    def resolve_version(job: Job, info: Any) -> int | None:
        return int(job.out["version"]) if job.kind == "refresh" and job.status == "done" else None

    @staticmethod
    def resolve_error(job: Job, info: Any) -> dict[str, str] | None:
        if job.error is None:
            return None
        return {"code": code_of(job.error), "message": flags_in_api_words(str(job.error))}

    @staticmethod
    def resolve_note(job: Job, info: Any) -> str:
        return job.note


def _job(ctx: RequestContext, job_id: str, *, cancel: bool = False) -> Job:
    board = request_work().jobs
    who, internal = actor_of(ctx), ctx.principal.internal
    if cancel:
        return board.cancel(job_id, who, internal=internal)
    return board.get(job_id, who, internal=internal)


class Query(graphene.ObjectType):
    me = graphene.Field(PrincipalType, required=True)
    talent = graphene.Field(Talent, id=graphene.ID(required=True))
    merchant = graphene.Field(Merchant, id=graphene.ID(required=True))
    agency = graphene.Field(Agency, id=graphene.ID(required=True))
    talents = graphene.Field(
        TalentConnection,
        required=True,
        filter=TalentFilter(),
        first=graphene.Int(required=True, default_value=20),
        after=graphene.String(),
        order_by=TalentOrder(required=True, default_value="followers"),
    )
    merchants = graphene.Field(
        MerchantConnection,
        required=True,
        category=graphene.String(),
        first=graphene.Int(required=True, default_value=20),
        after=graphene.String(),
    )
    campaigns = graphene.List(graphene.NonNull(Campaign), required=True)
    match_lists = graphene.List(
        MatchList,
        description="one list per id, in order; an id that fails (unknown, not eligible) is "
        "null at its index with its own error, and the other lists are answered",
        merchant_ids=graphene.List(graphene.NonNull(graphene.ID), required=True),
        first=graphene.Int(required=True, default_value=10),
    )
    assignment = graphene.Field(
        Assignment,
        input=AssignmentInput(),
        description=f"internal tools: the market assignment within this request, up to "
        f"{QUERY_MAX_PAIRS:,} candidate pairs (merchants x candidates); larger ones are "
        "refused with LIMIT_EXCEEDED: start them as a job (startAssignment)",
    )
    growth = graphene.Field(
        GrowthReportType,
        first=graphene.Int(required=True, default_value=20),
        description="internal tools: who is on track for the growth programme's goals",
        resolver=resolve_growth,
    )
    job = graphene.Field(
        JobType,
        id=graphene.ID(required=True),
        description="a job this principal started (internal tools: any job)",
    )
    service_provider = graphene.Field(ServiceProvider, id=graphene.ID(required=True))
    service_providers = graphene.List(
        graphene.NonNull(ProviderMatchType),
        merchant=graphene.ID(required=True),
        first=graphene.Int(required=True, default_value=10),
        description="the merchant's service providers by expected lift in its categories, "
        "with evidence (the merchant itself and internal tools)",
        resolver=resolve_service_providers,
    )

    @staticmethod
    def resolve_me(root: Any, info: Any) -> dict[str, Any]:
        p = context(info).principal
        return {"kind": p.kind, "id": p.id}

    @staticmethod
    def resolve_talent(root: Any, info: Any, id: str) -> TalentRef:
        return talent_ref(context(info), id)

    @staticmethod
    def resolve_merchant(root: Any, info: Any, id: str) -> MerchantRef:
        return merchant_ref(context(info), id)

    @staticmethod
    def resolve_service_provider(root: Any, info: Any, id: str) -> Any:
        return provider_ref(context(info), id)

    @staticmethod
    def resolve_agency(root: Any, info: Any, id: str) -> str:
        if id not in context(info).snap.agency_names:
            raise UnknownId("Agency", id)
        return id

    @staticmethod
    def resolve_talents(
        root: Any,
        info: Any,
        first: int,
        order_by: str,
        after: str | None = None,
        filter: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        ctx = context(info)
        offset, size = page_window(first, after, ctx.limits)
        f = ctx.snap.features
        keep = np.ones(f.n_talents, dtype=bool)
        flt = filter or {}
        followers = np.nan_to_num(f.talent_followers)
        if flt.get("tier"):
            if flt["tier"] not in TIERS:
                raise BadArgument(
                    "filter.tier", f"unknown tier {flt['tier']!r}; tiers are {', '.join(TIERS)}"
                )
            keep &= np.array([tier_of(int(x)) == flt["tier"] for x in followers])
        if flt.get("category"):
            names = [str(c) for c in f.category_names]
            if flt["category"] not in names:
                raise BadArgument("filter.category", f"unknown category; known: {names}")
            keep &= np.argmax(f.talent_category, axis=1) == names.index(flt["category"])
        if flt.get("agency"):
            a = np.nonzero(f.agency_ids == flt["agency"])[0]
            keep &= f.talent_agency == (a[0] if len(a) else -2)
        if flt.get("min_followers") is not None:
            keep &= followers >= flt["min_followers"]
        if flt.get("name_contains"):
            needle = flt["name_contains"].lower()
            names_of = ctx.snap.talent_names
            keep &= np.array([needle in names_of.get(str(t), "").lower() for t in f.talent_ids])
        rows = np.nonzero(keep)[0]
        order = getattr(order_by, "value", order_by)
        key = {"followers": -followers, "centrality": -f.talent_influence}.get(order)
        rows = rows[np.lexsort((f.talent_ids[rows], key[rows]))] if key is not None else rows
        page = [TalentRef(str(f.talent_ids[r]), int(r)) for r in rows[offset : offset + size]]
        return sliced(page, offset, size, len(rows))

    @staticmethod
    def resolve_merchants(
        root: Any, info: Any, first: int, after: str | None = None, category: str | None = None
    ) -> dict[str, Any]:
        ctx = context(info)
        offset, size = page_window(first, after, ctx.limits)
        f = ctx.snap.features
        rows = np.arange(len(f.merchant_ids))
        if category:
            names = [str(c) for c in f.category_names]
            if category not in names:
                raise BadArgument("category", f"unknown category; known: {names}")
            rows = rows[f.merchant_mix[:, names.index(category)] > 0]
        page = [MerchantRef(str(f.merchant_ids[r]), int(r)) for r in rows[offset : offset + size]]
        return sliced(page, offset, size, len(rows))

    @staticmethod
    def resolve_campaigns(root: Any, info: Any) -> list[CampaignBrief]:
        return list(context(info).snap.campaigns.values())

    @staticmethod
    def resolve_match_lists(
        root: Any, info: Any, merchant_ids: list[str], first: int
    ) -> list[dict[str, Any] | KolmatchError]:
        ctx = context(info)
        require_internal(ctx, "matchLists")
        if len(merchant_ids) > ctx.limits.max_page:
            raise BadArgument("merchantIds", f"at most {ctx.limits.max_page} merchants per request")
        page_size(first, ctx.limits)
        out: list[dict[str, Any] | KolmatchError] = []
        for m in merchant_ids:
            try:
                ranked = match_merchant(
                    ctx.snap.features,
                    m,
                    top=first,
                    rankings=ctx.snap.lists,
                    lang=ctx.lang,
                    evidence=selects(info, "evidence"),
                )
                out.append({"merchant": m, "matches": [to_match(ctx, x) for x in ranked]})
            except KolmatchError as exc:
                # graphql-core raises an item that is an exception at that item's path: the
                # error names the id, the other merchants' lists are answered
                out.append(exc)
        return out

    @staticmethod
    def resolve_assignment(root: Any, info: Any, input: dict[str, Any] | None = None) -> Any:
        ctx = context(info)
        require_internal(ctx, "assignment")
        args = input or {}
        _pairs(ctx, args)  # the arguments checked, the size counted: before any work
        try:
            a = _assign(
                ctx,
                args,
                max_pairs=QUERY_MAX_PAIRS,
                time_limit=min(float(args.get("time_limit", 30.0)), ctx.limits.timeout_s),
            )
        except LimitExceeded as exc:
            raise LimitExceeded(
                "input.candidates",
                exc.figure,
                exc.ceiling,
                exc.unit,
                "fewer candidates, one campaign, or run it as a job: "
                "mutation { startAssignment(input: ...) { id } }",
            ) from None
        return _assignment_out(a)

    @staticmethod
    def resolve_job(root: Any, info: Any, id: str) -> Job:
        return _job(context(info), id)


class CollaborationInput(graphene.InputObjectType):
    id = graphene.ID(required=True)
    talent = graphene.ID(required=True)
    product = graphene.ID(required=True)
    gmv = graphene.Float(required=True)
    orders = graphene.Int(required=True)
    fee = graphene.Float(required=True)
    time = graphene.String(required=True)
    campaign = graphene.ID()


class RecordCollaboration(graphene.Mutation):
    """Record a collaboration's outcome; the merchant selling the product or internal tools."""

    class Arguments:
        input = CollaborationInput(required=True)

    talent = graphene.Field(Talent, required=True)
    version = graphene.Int(required=True)

    @staticmethod
    def mutate(root: Any, info: Any, input: dict[str, Any]) -> RecordCollaboration:
        ctx = context(info)
        p = ctx.principal
        if not p.internal:
            seller = ctx.snap.product_merchant.get(input["product"])
            if seller is None or not p.is_merchant(seller):
                exc = Forbidden("recording a collaboration is for the product's merchant")
                entry = {
                    "actor": actor_of(ctx),
                    "action": "recordCollaboration",
                    "target": input["id"],
                    "input": dict(input),
                }
                ctx.service.record_refusal(entry, exc)
                raise exc
        try:
            with api_arguments(COLLABORATION_ARGUMENTS):
                snap = ctx.service.record_collaboration(
                    collab_id=input["id"],
                    talent=input["talent"],
                    product=input["product"],
                    gmv=input["gmv"],
                    orders=input["orders"],
                    fee=input["fee"],
                    time=input["time"],
                    campaign=input.get("campaign"),
                    actor=actor_of(ctx),
                )
        except Conflict as exc:
            if p.internal or (exc.owner is not None and p.is_merchant(exc.owner)):
                raise
            # another merchant's collaboration holds the id: say it is taken, nothing of it
            raise Conflict(exc.what, exc.key, []) from None
        ctx.snap = snap
        return RecordCollaboration(
            talent=TalentRef(input["talent"], snap.features.talent_row(input["talent"])),
            version=snap.version,
        )


class ViolationInput(graphene.InputObjectType):
    id = graphene.ID(required=True)
    label = graphene.String(required=True, description="Talent, Merchant or Product")
    target = graphene.ID(required=True)
    kind = graphene.String(required=True)
    severity = graphene.String(required=True, description="minor, major or severe")
    time = graphene.String(required=True)


class FlagViolation(graphene.Mutation):
    """Flag a violation (internal tools): severe or unresolved ones exclude at once."""

    class Arguments:
        input = ViolationInput(required=True)

    version = graphene.Int(required=True)

    @staticmethod
    def mutate(root: Any, info: Any, input: dict[str, Any]) -> FlagViolation:
        ctx = context(info)
        write_as(ctx, "flagViolation", input["id"], dict(input))
        with api_arguments(VIOLATION_ARGUMENTS):
            snap = ctx.service.flag_violation(
                violation_id=input["id"],
                label=input["label"],
                target=input["target"],
                kind=input["kind"],
                severity=input["severity"],
                time=input["time"],
                actor=actor_of(ctx),
            )
        ctx.snap = snap
        return FlagViolation(version=snap.version)


class ResolveViolation(graphene.Mutation):
    class Arguments:
        id = graphene.ID(required=True)

    version = graphene.Int(required=True)

    @staticmethod
    def mutate(root: Any, info: Any, id: str) -> ResolveViolation:
        ctx = context(info)
        write_as(ctx, "resolveViolation", id, {"id": id})
        ctx.snap = ctx.service.resolve_violation(id, actor=actor_of(ctx))
        return ResolveViolation(version=ctx.snap.version)


class RefreshFeatures(graphene.Mutation):
    """A full refresh, waited for: it runs as the refresh job (startRefresh, one at a time)
    and answers once that is done. At scale, start it and read the job instead."""

    version = graphene.Int(required=True)
    job = graphene.Field(JobType, required=True)

    @staticmethod
    def mutate(root: Any, info: Any) -> RefreshFeatures:
        ctx = context(info)
        write_as(ctx, "refreshFeatures", None, {})
        job = _refresh_job(ctx)
        cancel = request_work().cancel
        while job.active:
            cancel.wait(0.02)
            cancel.check()  # the request timed out: the refresh completes as its job
        if job.error is not None:
            raise job.error
        if job.status != "done":
            raise KolmatchError(f"the refresh job {job.id} was {job.status}")
        ctx.snap = job.result
        return RefreshFeatures(version=ctx.snap.version, job=job)


class StartAssignment(graphene.Mutation):
    """Start the market assignment as a job (internal tools); returns at once."""

    class Arguments:
        input = AssignmentInput()

    Output = JobType

    @staticmethod
    def mutate(root: Any, info: Any, input: dict[str, Any] | None = None) -> Job:
        ctx = context(info)
        require_internal(ctx, "startAssignment")
        args = dict(input or {})
        work = request_work()
        # costed now, so a refusal is this request's answer rather than a failed job
        pairs = _pairs(ctx, args)
        if pairs > JOB_MAX_PAIRS:
            raise LimitExceeded(
                "input.candidates",
                pairs,
                JOB_MAX_PAIRS,
                "candidate pairs (merchants x candidates)",
                "fewer candidates, or one campaign's merchants",
            )
        features, time_limit = ctx.snap.features, float(args.get("time_limit", 30.0))

        def run(job: Job) -> MarketAssignment:
            return _solve_assignment(
                work, features, args, time_limit, JOB_MAX_PAIRS, job.cancel, job.mark_running
            )

        return work.jobs.submit("assignment", actor_of(ctx), run, present=_assignment_out)


def _pairs(ctx: RequestContext, args: dict[str, Any]) -> int:
    candidates = int(args.get("candidates", 10))
    if candidates < 1:
        raise BadArgument("input.candidates", f"must be at least 1, got {candidates}")
    method, cap = args.get("method", "auto"), int(args.get("agency_cap", 3))
    if method not in METHODS:
        raise BadArgument("input.method", f"must be one of {', '.join(METHODS)}, got {method!r}")
    if cap < 1:
        raise BadArgument("input.agencyCap", f"must be at least 1, got {cap}")
    limit = float(args.get("time_limit", 30.0))
    if not math.isfinite(limit) or limit <= 0:
        raise BadArgument("input.timeLimit", f"must be a positive number of seconds, got {limit}")
    with api_arguments(ASSIGNMENT_ARGUMENTS):
        return assignment_pairs(
            ctx.snap.features, candidates=candidates, campaign=args.get("campaign")
        )


def _refresh_job(ctx: RequestContext) -> Job:
    """The refresh job: started, or the one already queued or running (one at a time)."""
    service, actor = ctx.service, actor_of(ctx)

    def run(job: Job) -> Any:
        job.cancel.check()
        job.mark_running()
        return service.refresh(actor=actor)

    return request_work().jobs.submit(
        "refresh",
        actor,
        run,
        cancellable_while_running=False,
        same_kind_once=True,
        present=lambda snap: {"version": snap.version},
    )


class StartRefresh(graphene.Mutation):
    """Start a full refresh of the features as a job (internal tools); returns at once."""

    Output = JobType

    @staticmethod
    def mutate(root: Any, info: Any) -> Job:
        ctx = context(info)
        write_as(ctx, "startRefresh", None, {})
        return _refresh_job(ctx)


class CancelJob(graphene.Mutation):
    """Cancel a queued or running job: its solver process is killed. A running refresh is
    not stopped (it swaps the snapshot in the server): the job's note says so."""

    class Arguments:
        id = graphene.ID(required=True)

    Output = JobType

    @staticmethod
    def mutate(root: Any, info: Any, id: str) -> Job:
        return _job(context(info), id, cancel=True)


class Mutation(graphene.ObjectType):
    record_collaboration = RecordCollaboration.Field()
    flag_violation = FlagViolation.Field()
    resolve_violation = ResolveViolation.Field()
    refresh_features = RefreshFeatures.Field()
    start_assignment = StartAssignment.Field()
    start_refresh = StartRefresh.Field()
    cancel_job = CancelJob.Field()
    create_campaign = CreateCampaign.Field()
    join_campaign = JoinCampaign.Field()
    book_talents = BookTalents.Field()
    release_bookings = ReleaseBookings.Field()


schema = graphene.Schema(query=Query, mutation=Mutation)
