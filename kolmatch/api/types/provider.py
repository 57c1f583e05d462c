"""Service providers: a public profile; engagements and leads for the provider itself; a
merchant's ranked providers with evidence (kolmatch/policy.py, "service provider")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import graphene
import numpy as np

from kolmatch.api.errors import Forbidden
from kolmatch.api.types.common import RequestContext, context, page_size
from kolmatch.engine.providers import ProviderBook, ProviderTrack
from kolmatch.i18n import format_amount, message
from kolmatch.matching.providers import PRICE_DAYS, ProviderMatch
from kolmatch.policy import MIN_EVIDENCE_ENGAGEMENTS, sees_merchant_own, sees_provider_own

__all__ = [
    "ProviderMatchType",
    "ServiceProvider",
    "provider_ref",
    "resolve_service_providers",
]


@dataclass(frozen=True)
class ProviderRef:
    id: str
    row: int


def _track(ctx: RequestContext) -> ProviderTrack:
    return ProviderBook(ctx.service).track()


def provider_ref(ctx: RequestContext, provider_id: str) -> ProviderRef:
    """Raises UnknownId if the graph has no such provider."""
    return ProviderRef(provider_id, _track(ctx).market.provider_row(provider_id))


def _own(info: Any, p: ProviderRef, what: str) -> RequestContext:
    ctx = context(info)
    if not sees_provider_own(ctx.principal, p.id):
        raise Forbidden(f"{what} of {p.id} may be seen by that provider and internal tools only")
    return ctx


def _num(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


class Engagement(graphene.ObjectType):
    """One engagement of the provider by a merchant; the outcome is the provider's and the
    merchant's business only."""

    id = graphene.ID(required=True)
    merchant = graphene.ID(required=True)
    start = graphene.String(required=True)
    end = graphene.String(required=True)
    fee = graphene.Float()
    gmv_before = graphene.Float()
    gmv_during = graphene.Float(description="null while it runs")
    lift = graphene.Float(
        description="internal tools: log(gmvDuring / gmvBefore) less the market's change (the "
        "change is fitted on every provider's engagements: a provider could read other "
        "merchants' outcomes off it in thin months, so it sees null)"
    )


class ProviderLeadType(graphene.ObjectType):
    """A merchant the provider could serve: its public name and categories, and the
    provider's own expected lift for it."""

    class Meta:
        name = "ProviderLead"

    rank = graphene.Int(required=True)
    merchant = graphene.ID(required=True)
    merchant_name = graphene.String(required=True)
    categories = graphene.List(graphene.NonNull(graphene.String), required=True)
    expected_lift = graphene.Float(required=True)


class ServiceProvider(graphene.ObjectType):
    """A service provider: name, kind and list price are public; engagements, current clients
    and leads are the provider's own (and internal tools')."""

    id = graphene.ID(required=True)
    name = graphene.String(required=True)
    kind = graphene.String()
    list_price = graphene.Float(description=f"public quote, yuan per {PRICE_DAYS} days")
    # refusable (another provider's key): nullable, so a refusal keeps the rest of the answer
    engagements = graphene.List(graphene.NonNull(Engagement))
    clients = graphene.List(graphene.NonNull(graphene.ID), description="merchants it serves now")
    leads = graphene.List(
        graphene.NonNull(ProviderLeadType),
        first=graphene.Int(required=True, default_value=10),
        description="merchants it would serve best, not served now, compliance-eligible",
    )

    @staticmethod
    def resolve_id(p: ProviderRef, info: Any) -> str:
        return p.id

    @staticmethod
    def resolve_name(p: ProviderRef, info: Any) -> str:
        return _track(context(info)).market.provider_names[p.row]

    @staticmethod
    def resolve_kind(p: ProviderRef, info: Any) -> str | None:
        return _track(context(info)).market.provider_kind[p.row] or None

    @staticmethod
    def resolve_list_price(p: ProviderRef, info: Any) -> float | None:
        return _num(_track(context(info)).market.list_price[p.row])

    @staticmethod
    def resolve_engagements(p: ProviderRef, info: Any) -> list[dict[str, Any]]:
        ctx = _own(info, p, "engagements")
        t = _track(ctx)
        e, m = t.market.engagements, t.market
        day = np.datetime64("1970-01-01", "D")
        out = []
        for i in np.nonzero(e.provider == p.row)[0]:
            out.append(
                {
                    "id": str(e.ids[i]),
                    "merchant": str(m.merchant_ids[e.merchant[i]]),
                    "start": str(day + int(e.start[i])),
                    "end": str(day + int(e.end[i])),
                    "fee": _num(e.fee[i]),
                    "gmv_before": _num(e.gmv_before[i]),
                    "gmv_during": _num(e.gmv_during[i]),
                    "lift": _num(t.model.lift[i]) if ctx.principal.internal else None,
                }
            )
        return out

    @staticmethod
    def resolve_clients(p: ProviderRef, info: Any) -> list[str]:
        m = _track(_own(info, p, "clients")).market
        rows = np.unique(m.served_merchant[m.served_provider == p.row])
        return [str(m.merchant_ids[r]) for r in rows]

    @staticmethod
    def resolve_leads(p: ProviderRef, info: Any, first: int) -> list[dict[str, Any]]:
        ctx = _own(info, p, "leads")
        page_size(first, ctx.limits)
        return [
            {
                "rank": x.rank,
                "merchant": x.merchant,
                "merchant_name": x.name,
                "categories": x.categories,
                "expected_lift": round(x.expected_lift, 4),
            }
            for x in ProviderBook(ctx.service).leads(p.id, top=first)
        ]


class ProviderMatchType(graphene.ObjectType):
    """A provider in a merchant's list, with evidence aggregated over at least
    MIN_EVIDENCE_ENGAGEMENTS engagements or none."""

    class Meta:
        name = "ProviderMatch"

    rank = graphene.Int(required=True)
    provider = graphene.ID(required=True)
    name = graphene.String(required=True)
    kind = graphene.String()
    list_price = graphene.Float(description=f"public quote, yuan per {PRICE_DAYS} days")
    expected_lift = graphene.Float(
        required=True, description="expected log-lift of the merchant's GMV, net of the market"
    )
    engagements = graphene.Int(required=True, description="completed engagements on record")
    in_categories = graphene.Int(
        required=True, description="of those, for merchants sharing a category with this one"
    )
    median_lift = graphene.Float(
        description=f"their median lift; null when fewer than {MIN_EVIDENCE_ENGAGEMENTS}"
    )
    too_few = graphene.Boolean(required=True)
    extra_gmv_per_yuan = graphene.Float(
        description="the merchant's own GMV per 30 days x (e^lift - 1) / list price"
    )
    evidence = graphene.List(graphene.NonNull(graphene.String), required=True)


def _evidence(x: ProviderMatch, lang: str) -> list[str]:
    lines = [
        message("providers.evidence.count", lang, engagements=x.engagements, mine=x.in_categories)
    ]
    if x.too_few:
        lines.append(message("providers.evidence.too_few", lang, minimum=MIN_EVIDENCE_ENGAGEMENTS))
    elif x.median_lift is not None:
        lines.append(
            message("providers.evidence.median", lang, lift=f"{np.expm1(x.median_lift):+.0%}")
        )
    if x.list_price is not None:
        lines.append(
            message(
                "providers.evidence.price",
                lang,
                price=format_amount(x.list_price, lang),
                days=PRICE_DAYS,
            )
        )
    return lines


def resolve_service_providers(
    root: Any, info: Any, merchant: str, first: int
) -> list[dict[str, Any]]:
    """The merchant's ranked providers: the merchant itself and internal tools."""
    ctx = context(info)
    ctx.snap.features.merchant_row(merchant)  # unknown: NOT_FOUND before FORBIDDEN
    if not sees_merchant_own(ctx.principal, merchant):
        raise Forbidden(
            f"service providers for {merchant} may be seen by that merchant and internal tools"
        )
    page_size(first, ctx.limits)
    return [
        {
            "rank": x.rank,
            "provider": x.provider,
            "name": x.name,
            "kind": x.kind or None,
            "list_price": x.list_price,
            "expected_lift": round(x.expected_lift, 4),
            "engagements": x.engagements,
            "in_categories": x.in_categories,
            "median_lift": None if x.median_lift is None else round(x.median_lift, 2),
            "too_few": x.too_few,
            "extra_gmv_per_yuan": None
            if x.extra_gmv_per_yuan is None
            else round(x.extra_gmv_per_yuan, 3),
            "evidence": _evidence(x, ctx.lang),
        }
        for x in ProviderBook(ctx.service).for_merchant(merchant, top=first)
    ]
