"""The engine: one snapshot of market features and catalogue, read by every request.

Queries never touch the store: they read an immutable :class:`Snapshot` (features plus the
names and collaboration history the schema shows), swapped atomically when the graph
changes. Mutations write through the store, then refresh; a refresh that fails leaves the
previous snapshot serving.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kolmatch.engine.cache import cached_rankings, load_features
from kolmatch.errors import BadArgument, IncompleteLoad, UnknownId
from kolmatch.graph.market import CATALOG_READ
from kolmatch.graph.store import GraphStore, NodeBatch, RelBatch
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.score import MerchantRankings

__all__ = ["Collaboration", "EngineService", "Snapshot"]


@dataclass(frozen=True)
class Collaboration:
    """One past collaboration of a talent."""

    collab_id: str
    talent: str
    product: str
    merchant: str | None
    gmv: float
    orders: int
    fee: float
    time: str
    campaign: str | None


@dataclass(frozen=True)
class Snapshot:
    """Everything a query reads, consistent with one graph version."""

    version: int
    features: MarketFeatures
    rankings: MerchantRankings  # every merchant's default ranking: match lists are lookups
    talent_names: dict[str, str]
    talent_region: dict[str, str | None]
    merchant_names: dict[str, str]
    agency_names: dict[str, str]
    agency_roster: dict[str, list[str]]
    history: dict[str, list[Collaboration]]  # by talent, newest first
    product_merchant: dict[str, str | None]  # every product and the merchant selling it
    violation_ids: set[str]


class EngineService:
    """Owns the store and the current snapshot; thread-safe.

    Parameters
    ----------
    store
        The graph store (injected; closed by the caller).
    cache_dir
        Where feature caches live (:func:`kolmatch.engine.cache.load_features`).
    """

    def __init__(self, store: GraphStore, cache_dir: str | Path | None = None) -> None:
        self._store = store
        self._cache_dir = cache_dir
        # held by every write and refresh; close() waits on it (re-entrant: a write refreshes)
        self._write_lock = threading.RLock()
        self._snapshot = self._build()

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def store(self) -> GraphStore:
        return self._store

    def refresh(self, *, violations_only_since: int | None = None) -> Snapshot:
        """Rebuild the snapshot from the store; on failure the old one keeps serving.

        Parameters
        ----------
        violations_only_since
            The graph version before a write that touched only violations. If the serving
            snapshot is of that version and the graph is exactly one write past it (nobody else
            wrote in between, nor while it is read), the features keep everything but
            compliance, which is re-read (:func:`kolmatch.engine.cache.load_features`): at m, ~40 s
            instead of ~4 min. Otherwise the whole graph is read.

        Raises
        ------
        StoreError
            If the store cannot be read (the previous snapshot is still served).
        """
        with self._write_lock:
            prev, since = self._snapshot, violations_only_since
            reuse = (prev.features, since) if since is not None and prev.version == since else None
            snap = self._build(reuse)
            self._snapshot = snap
            return snap

    def close(self, timeout: float = 60.0) -> bool:
        """Close the store once no write or refresh is running (waiting up to ``timeout`` s).

        A mutation that outlived its request budget keeps running in a worker
        thread; closing the store under it would break it half-way (SQLite's
        connection is not safe to close mid-statement). Returns False if one was
        still running after ``timeout`` (the store is closed anyway: the
        process is ending).
        """
        done = self._write_lock.acquire(timeout=timeout)
        try:
            self._store.close()
        finally:
            if done:
                self._write_lock.release()
        return done

    def health(self) -> dict[str, Any]:
        """Ask the store for its version: raises StoreUnavailable if it cannot answer.

        A store holding an unfinished load is healthy (the snapshot before it
        keeps serving); the answer says so under ``incomplete_load``.
        """
        out: dict[str, Any] = {"store": self._store.uri, "serving_version": self._snapshot.version}
        try:
            out["version"] = self._store.version()
        except IncompleteLoad as exc:
            out["version"] = None
            out["incomplete_load"] = str(exc)
        return out

    def _build(self, risk_update_of: tuple[MarketFeatures, int] | None = None) -> Snapshot:
        store = self._store
        # the features and everything the schema shows come from one read of one graph version
        f, g = load_features(
            store, self._cache_dir, also=CATALOG_READ, risk_update_of=risk_update_of
        )
        version = g.identity[1]
        rankings = cached_rankings(store.uri, g.identity, f, self._cache_dir)
        talents, merchants = g.node("Talent"), g.node("Merchant")
        agencies, products = g.node("Institution"), g.node("Product")
        violations, signed = g.node("Violation"), g.edge("SIGNED_WITH", "Talent")
        roster: dict[str, list[str]] = {str(a): [] for a in agencies.ids}
        for t, a in zip(signed.src, signed.dst, strict=True):
            roster[str(agencies.ids[a])].append(str(talents.ids[t]))
        sells = g.edge("SELLS", "Merchant")
        owner = np.full(len(products), -1, dtype=np.int64)
        owner[sells.dst] = sells.src
        promoted = g.edge("PROMOTED", "Talent")
        history: dict[str, list[Collaboration]] = {}
        c = promoted.columns
        for i, (t, p) in enumerate(zip(promoted.src, promoted.dst, strict=True)):
            tid = str(talents.ids[t])
            history.setdefault(tid, []).append(
                Collaboration(
                    collab_id=str(c["collab_id"][i]),
                    talent=tid,
                    product=str(products.ids[p]),
                    merchant=str(merchants.ids[owner[p]]) if owner[p] >= 0 else None,
                    gmv=float(np.nan_to_num(c["gmv"][i])),
                    orders=int(np.nan_to_num(c["orders"][i])),
                    fee=float(np.nan_to_num(c["fee"][i])),
                    time=str(c["time"][i]),
                    campaign=c["campaign"][i] or None,
                )
            )
        for items in history.values():
            items.sort(key=lambda x: (x.time, x.collab_id), reverse=True)
        return Snapshot(
            version=version,
            features=f,
            rankings=rankings,
            talent_names=_names(talents.ids, talents.columns["name"]),
            talent_region={
                str(i): (r or None)
                for i, r in zip(talents.ids, talents.columns["region"], strict=True)
            },
            merchant_names=_names(merchants.ids, merchants.columns["name"]),
            agency_names=_names(agencies.ids, agencies.columns["name"]),
            agency_roster=roster,
            history=history,
            product_merchant={
                str(x): str(merchants.ids[owner[i]]) if owner[i] >= 0 else None
                for i, x in enumerate(products.ids)
            },
            violation_ids={str(x) for x in violations.ids},
        )

    # -- writes ---------------------------------------------------------------------------
    def record_collaboration(
        self,
        *,
        collab_id: str,
        talent: str,
        product: str,
        gmv: float,
        orders: int,
        fee: float,
        time: str,
        campaign: str | None = None,
    ) -> Snapshot:
        """Record a collaboration's outcome (a PROMOTED relationship), then refresh.

        Raises
        ------
        UnknownId
            If the talent or product is not in the graph.
        BadArgument
            If an amount is negative or the date is not ISO-8601.
        """
        snap = self._snapshot
        snap.features.talent_row(talent)
        if product not in snap.product_merchant:
            raise UnknownId("Product", product)
        for name, v in (("gmv", gmv), ("orders", orders), ("fee", fee)):
            if not np.isfinite(v) or v < 0:
                raise BadArgument(name, f"must be a finite amount >= 0, got {v}")
        _iso(time)
        if not collab_id.strip():
            raise BadArgument("collabId", "must not be empty")
        row = {
            "src": talent,
            "dst": product,
            "collab_id": collab_id,
            "gmv": float(gmv),
            "orders": int(orders),
            "fee": float(fee),
            "time": time,
            "campaign": campaign,
        }
        return self._write([RelBatch("PROMOTED", "Talent", [row])])

    def flag_violation(
        self, *, violation_id: str, label: str, target: str, kind: str, severity: str, time: str
    ) -> Snapshot:
        """Record a violation against a talent, merchant or product, then refresh.

        Raises
        ------
        UnknownId
            If the target is not in the graph.
        BadArgument
            If the label, severity or date is not one the model allows, or the id is taken.
        """
        snap = self._snapshot
        if label not in ("Talent", "Merchant", "Product"):
            raise BadArgument("label", f"must be Talent, Merchant or Product, got {label!r}")
        if severity not in ("minor", "major", "severe"):
            raise BadArgument("severity", f"must be minor, major or severe, got {severity!r}")
        if violation_id in snap.violation_ids:
            raise BadArgument("id", f"violation {violation_id!r} exists; resolve it instead")
        if self._store.missing_ids(label, [target]):
            raise UnknownId(label, target)
        _iso(time)
        node = {
            "id": violation_id,
            "kind": kind,
            "severity": severity,
            "time": time,
            "resolved": False,
        }
        rel = {"src": target, "dst": violation_id}
        return self._write(
            [NodeBatch("Violation", [node]), RelBatch("HAS_VIOLATION", label, [rel])],
            violations_only=True,
        )

    def resolve_violation(self, violation_id: str) -> Snapshot:
        """Mark a violation resolved, then refresh.

        Raises
        ------
        UnknownId
            If there is no such violation.
        """
        if violation_id not in self._snapshot.violation_ids:
            raise UnknownId("Violation", violation_id)
        return self._write(
            [NodeBatch("Violation", [{"id": violation_id, "resolved": True}])],
            violations_only=True,
        )

    def _write(
        self, batches: list[NodeBatch | RelBatch], *, violations_only: bool = False
    ) -> Snapshot:
        with self._write_lock:
            before = self._store.version()  # IncompleteLoad: refuse now rather than write unseen
            self._store.write(batches)
            return self.refresh(violations_only_since=before if violations_only else None)


def _names(ids: NDArray[np.str_], names: NDArray[np.object_]) -> dict[str, str]:
    return {str(i): str(n) if n else str(i) for i, n in zip(ids, names, strict=True)}


def _iso(text: str) -> None:
    try:
        date.fromisoformat(text)
    except ValueError:
        raise BadArgument(
            "time", f"expected an ISO-8601 date like 2026-07-01, got {text!r}"
        ) from None
