"""Service providers for the API and the command line: ``PROVIDERS_READ`` read once per graph
version, the track record fitted on it (kolmatch/matching/providers.py), cached until the
serving snapshot's version moves."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kolmatch.graph.market import PROVIDERS_READ
from kolmatch.matching.eligibility import merchant_eligibility, require_merchant
from kolmatch.matching.providers import (
    ProviderLead,
    ProviderMarket,
    ProviderMatch,
    ProviderModel,
    fit_providers,
    provider_leads,
    provider_market,
    rank_providers,
)

if TYPE_CHECKING:
    from kolmatch.engine.service import EngineService

__all__ = ["ProviderBook", "ProviderTrack", "provider_track"]


@dataclass(frozen=True)
class ProviderTrack:
    """The providers' market and fitted track record of one graph version."""

    version: int
    market: ProviderMarket
    model: ProviderModel


# per service, the latest version's track (dropped with the service)
_cache: weakref.WeakKeyDictionary[EngineService, ProviderTrack] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def provider_track(service: EngineService) -> ProviderTrack:
    """The track record at the serving snapshot's version: read and fitted on the first
    call of a version, then served from memory until the version moves.

    The read is the service's own (:meth:`EngineService.read`).
    """
    version = service.snapshot.version
    with _lock:
        hit = _cache.get(service)
        if hit is not None and hit.version == version:
            return hit
        g = service.read(PROVIDERS_READ)
        market = provider_market(g)
        # keyed by the snapshot's version: a store ahead of it is read again once it catches up
        track = ProviderTrack(
            version,
            market,
            fit_providers(market.engagements, market.shares, market.provider_kind),
        )
        _cache[service] = track
        return track


@dataclass(frozen=True)
class ProviderBook:
    """What a resolver or a command asks of providers, with compliance applied."""

    service: EngineService

    def track(self) -> ProviderTrack:
        return provider_track(self.service)

    def for_merchant(self, merchant: str, *, top: int = 10) -> list[ProviderMatch]:
        """The merchant's providers, ranked with evidence.

        Raises
        ------
        UnknownId
            If there is no such merchant.
        NotEligible
            If the merchant is excluded for compliance (as its match list is).
        """
        require_merchant(self.service.snapshot.features, merchant)
        t = self.track()
        return rank_providers(t.model, t.market, merchant, top=top)

    def leads(self, provider: str, *, top: int = 10) -> list[ProviderLead]:
        """Merchants the provider would serve best, compliance-excluded merchants left out.

        Raises
        ------
        UnknownId
            If there is no such provider.
        """
        t = self.track()
        t.market.provider_row(provider)
        f = self.service.snapshot.features
        ok = merchant_eligibility(f).ok
        rows = f.merchant_ids.searchsorted(t.market.merchant_ids)
        rows = np.minimum(rows, len(f.merchant_ids) - 1)
        same = f.merchant_ids[rows] == t.market.merchant_ids
        eligible = same & ok[rows]
        return provider_leads(t.model, t.market, provider, eligible=eligible, top=top)
