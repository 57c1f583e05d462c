"""Incremental writes: after any sequence of writes, the features equal a full build with the
same frozen calibration, field by field."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from kolmatch.engine.arrays import read_arrays, write_arrays
from kolmatch.graph.market import (
    COMPLIANCE_READ,
    FULL_READ,
    VIOLATIONS_READ,
    MarketGraph,
    read_market,
)
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.graph.store import NodeBatch, RelBatch
from kolmatch.loaders.load import load_folder
from kolmatch.matching.features import MarketFeatures, build_features
from kolmatch.matching.incremental import (
    CollaborationWrite,
    apply_collaboration,
    apply_violations,
)

RTOL = 1e-9


def _sparse_differs(a: sp.spmatrix, b: sp.spmatrix) -> bool:
    if a.shape != b.shape:
        return True
    ca, cb = sp.coo_matrix(sp.csr_matrix(a)), sp.coo_matrix(sp.csr_matrix(b))
    for m in (ca, cb):
        m.sum_duplicates()
        m.eliminate_zeros()
    ka, kb = np.lexsort((ca.col, ca.row)), np.lexsort((cb.col, cb.row))
    return not (
        np.array_equal(ca.row[ka], cb.row[kb])
        and np.array_equal(ca.col[ka], cb.col[kb])
        and np.allclose(ca.data[ka], cb.data[kb], rtol=RTOL, atol=0.0)
    )


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, sp.spmatrix | sp.sparray):
        return _sparse_differs(a, b)
    if isinstance(a, np.ndarray):
        if a.shape != b.shape or a.dtype.kind != b.dtype.kind:
            return True
        if a.dtype.kind == "f":
            return not np.allclose(a, b, rtol=RTOL, atol=0.0, equal_nan=True)
        return not np.array_equal(a, b)
    if isinstance(a, list):
        return len(a) != len(b) or any(_differs(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return bool(a != pytest.approx(b, rel=RTOL, abs=0.0))
    return bool(a != b)


def differences(a: MarketFeatures, b: MarketFeatures) -> list[str]:
    """The fields of ``a`` and ``b`` that differ: ids and text exactly, numbers within 1e-9
    relative, sparse matrices entry by entry."""
    return [
        f.name
        for f in dataclasses.fields(MarketFeatures)
        if _differs(getattr(a, f.name), getattr(b, f.name))
    ]


@pytest.fixture
def tiny_store(tiny_market: Path, tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "tiny.db")
    load_folder(tiny_market, store)
    yield store
    store.close()


@pytest.fixture
def s_store(s_market: Path, tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "s.db")
    load_folder(s_market, store)
    yield store
    store.close()


def graph_differences(a: MarketGraph, b: MarketGraph) -> list[str]:
    """The tables of ``a`` and ``b`` that differ (ids, rows, columns exactly), and identity."""
    out = [] if a.identity == b.identity else ["identity"]
    if set(a.nodes) != set(b.nodes) or set(a.edges) != set(b.edges):
        return [*out, "tables"]
    for label, t in a.nodes.items():
        u = b.nodes[label]
        if (
            not np.array_equal(t.ids, u.ids)
            or t.columns.keys() != u.columns.keys()
            or any(list(t.columns[c]) != list(u.columns[c]) for c in t.columns)
        ):
            out.append(label)
    for key, e in a.edges.items():
        d = b.edges[key]
        same = np.array_equal(e.src, d.src) and np.array_equal(e.dst, d.dst)
        if not same or e.columns.keys() != d.columns.keys():
            out.append("/".join(key))
    return out


class Writer:
    """Writes a seeded random sequence to a store and the same to features, incrementally.

    It keeps the compliance tables as a serving engine does: a collaboration adds its
    PROMOTED row to them, a violations write re-reads the violations alone.
    """

    def __init__(self, store: SQLiteStore, f: MarketFeatures, seed: int) -> None:
        self.store, self.f = store, f
        self.rng = np.random.default_rng(seed)
        self.compliance = read_market(store, COMPLIANCE_READ)
        self.flagged: list[str] = list(self.compliance.node("Violation").ids)
        self.flagged_merchants: list[int] = []
        self.n = 0
        self.done: list[str] = []

    def _id(self, what: str) -> str:
        self.n += 1
        return f"inc-{what}-{self.n}"

    def collaborate(self, talent: int, product: int, *, known: bool) -> None:
        f = self.f
        w = CollaborationWrite(
            talent=str(f.talent_ids[talent]),
            product=str(f.product_ids[product]),
            gmv=float(self.rng.uniform(0, 5e4)) if known else None,
            orders=float(self.rng.integers(0, 400)) if known else None,
            fee=1000.0,
            time="2026-02-01",
        )
        row = {
            "src": w.talent,
            "dst": w.product,
            "collab_id": self._id("k"),
            "gmv": w.gmv,
            "orders": None if w.orders is None else int(w.orders),
            "fee": w.fee,
            "time": w.time,
            "campaign": None,
        }
        self.store.write([RelBatch.of("PROMOTED", "Talent", [row])])
        self.f = apply_collaboration(f, w)
        self.compliance = self.compliance.with_edge(
            "PROMOTED", "Talent", w.talent, w.product, self.store.identity()
        )

    def _violations_written(self) -> None:
        self.compliance = read_market(self.store, VIOLATIONS_READ, base=self.compliance)
        self.f = apply_violations(self.f, self.compliance)

    def flag(self, label: str, target: str, severity: str, kind: str = "counterfeit") -> None:
        vid = self._id("x")
        node = {
            "id": vid,
            "kind": kind,
            "severity": severity,
            "time": "2026-01-15",
            "resolved": False,
        }
        self.store.write(
            [
                NodeBatch.of("Violation", [node]),
                RelBatch.of("HAS_VIOLATION", label, [{"src": target, "dst": vid}]),
            ]
        )
        self.flagged.append(vid)
        self._violations_written()

    def resolve(self, vid: str | None = None) -> None:
        at = self.flagged.index(vid) if vid else int(self.rng.integers(len(self.flagged)))
        vid = self.flagged.pop(at)
        self.store.write([NodeBatch.of("Violation", [{"id": vid, "resolved": True}])])
        self._violations_written()

    def step(self) -> None:
        """One write of a random kind."""
        f, rng = self.f, self.rng
        T, P, M = len(f.talent_ids), len(f.product_ids), len(f.merchant_ids)
        history = np.asarray(f.promotions.sum(axis=0)).ravel()
        kind = str(
            rng.choice(
                ["first", "history", "unknown", "flagged-merchant", "flag", "resolve"],
                p=[0.15, 0.25, 0.15, 0.15, 0.2, 0.1],
            )
        )
        if kind == "resolve" and not self.flagged:
            kind = "flag"
        if kind == "flagged-merchant" and not self.flagged_merchants:
            m = int(rng.integers(M))
            self.flag("Merchant", str(f.merchant_ids[m]), str(rng.choice(["minor", "severe"])))
            self.flagged_merchants.append(m)
            self.done.append("flag-merchant")
            return
        if kind in ("first", "history", "unknown", "flagged-merchant"):
            new = np.nonzero(history == 0)[0] if kind == "first" else np.nonzero(history > 0)[0]
            talent = int(rng.choice(new)) if len(new) else int(rng.integers(T))
            if kind == "flagged-merchant":
                m = int(rng.choice(self.flagged_merchants))
                products = f.merchant_products[m]
                product = int(rng.choice(products)) if len(products) else int(rng.integers(P))
            else:
                product = int(rng.integers(P))
            self.collaborate(talent, product, known=kind != "unknown")
        elif kind == "flag":
            label = str(rng.choice(["Talent", "Merchant", "Product"]))
            ids = {"Talent": f.talent_ids, "Merchant": f.merchant_ids, "Product": f.product_ids}
            target = int(rng.integers(len(ids[label])))
            if label == "Merchant":
                self.flagged_merchants.append(target)
            self.flag(label, str(ids[label][target]), str(rng.choice(["minor", "major", "severe"])))
        else:
            self.resolve()
        self.done.append(kind)


def _full(store: SQLiteStore, f: MarketFeatures) -> MarketFeatures:
    return build_features(read_market(store, FULL_READ), calibration=f.calibration)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_any_sequence_of_writes_equals_a_build_with_the_frozen_calibration(
    tiny_store: SQLiteStore, seed: int
) -> None:
    w = Writer(tiny_store, build_features(read_market(tiny_store, FULL_READ)), seed)
    frozen = w.f.calibration
    for _ in range(20):
        w.step()
        assert differences(w.f, _full(tiny_store, w.f)) == [], w.done
        # the tables kept across writes are the ones a fresh read gives
        fresh = read_market(tiny_store, COMPLIANCE_READ)
        assert graph_differences(w.compliance, fresh) == [], w.done
    assert w.f.calibration.gmv_rate == frozen.gmv_rate
    # every kind of write was tried, including a talent's first collaboration
    assert {"first", "history", "unknown", "flag", "resolve"} <= set(w.done)


def test_on_the_s_market_too(s_store: SQLiteStore) -> None:
    w = Writer(s_store, build_features(read_market(s_store, FULL_READ)), 7)
    for _ in range(20):
        w.step()
    assert differences(w.f, _full(s_store, w.f)) == [], w.done
    assert {"first", "history", "unknown", "flagged-merchant", "flag"} <= set(w.done)


def test_a_collaboration_on_a_flagged_merchant_carries_its_risk(tiny_store: SQLiteStore) -> None:
    w = Writer(tiny_store, build_features(read_market(tiny_store, FULL_READ)), 3)
    f = w.f
    m = next(m for m in range(len(f.merchant_ids)) if len(f.merchant_products[m]))
    w.flag("Merchant", str(f.merchant_ids[m]), "severe")
    history = np.asarray(f.promotions.sum(axis=0)).ravel()
    t = int(np.nonzero((history == 0) & (w.f.talent_risk == 0))[0][0])
    # a resolved fake-engagement violation of its own: a note before the new one, one after
    w.flag("Talent", str(f.talent_ids[t]), "minor", kind="fake-engagement")
    w.resolve(w.flagged[-1])
    own = float(w.f.talent_risk[t])
    w.collaborate(t, int(f.merchant_products[m][0]), known=True)
    # the whole mean of one excluded product, at a quarter
    assert w.f.talent_risk[t] == pytest.approx(own + 0.25)
    notes = w.f.talent_risk_notes[t]
    assert [n.split()[0] for n in notes] == ["minor", "promoted", "fake-engagement"]
    assert differences(w.f, _full(tiny_store, w.f)) == []


def test_without_the_frozen_calibration_a_rebuild_differs(tiny_store: SQLiteStore) -> None:
    # the equality above is not vacuous: a build that measures anew moves the market-wide
    # figures, and with them rows the incremental update left alone
    w = Writer(tiny_store, build_features(read_market(tiny_store, FULL_READ)), 4)
    f = w.f
    history = np.asarray(f.promotions.sum(axis=0)).ravel()
    t = int(np.nonzero(history > 0)[0][0])
    w.collaborate(t, int(np.argmax(f.product_category >= 0)), known=True)
    fresh = build_features(read_market(tiny_store, FULL_READ))
    changed = differences(w.f, fresh)
    assert {"gmv_rate", "category_gmv_mean", "talent_track"} <= set(changed)
    assert differences(w.f, _full(tiny_store, w.f)) == []


def test_a_build_with_its_own_calibration_is_the_build_without(tiny_store: SQLiteStore) -> None:
    # calibration=None measures exactly what a given calibration supplies: bit for bit
    g = read_market(tiny_store, FULL_READ)
    f = build_features(g)
    again = build_features(g, calibration=f.calibration)
    for field in dataclasses.fields(MarketFeatures):
        a, b = getattr(f, field.name), getattr(again, field.name)
        if isinstance(a, sp.spmatrix):
            assert (a != b).nnz == 0, field.name
        elif isinstance(a, np.ndarray) and a.dtype.kind == "f":
            assert np.array_equal(a, b, equal_nan=True), field.name
        elif isinstance(a, np.ndarray):
            assert np.array_equal(a, b), field.name
        elif field.name == "merchant_products":
            assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
        else:
            assert a == b, field.name


def test_the_calibration_survives_the_feature_cache(
    tiny_store: SQLiteStore, tmp_path: Path
) -> None:
    f = build_features(read_market(tiny_store, FULL_READ))
    write_arrays(tmp_path / "f.npz", f, version=1)
    back = read_arrays(tmp_path / "f.npz", MarketFeatures, version=1)
    assert differences(back, f) == []
    assert back.calibration.gmv_rate == f.gmv_rate


def test_a_write_leaves_the_features_before_it_unchanged(tiny_store: SQLiteStore) -> None:
    f = build_features(read_market(tiny_store, FULL_READ))
    copy = dataclasses.replace(
        f,
        talent_track=f.talent_track.copy(),
        talent_skill=f.talent_skill.copy(),
        talent_risk=f.talent_risk.copy(),
    )
    t = int(np.argmax(np.asarray(f.promotions.sum(axis=0)).ravel()))
    apply_collaboration(f, CollaborationWrite(str(f.talent_ids[t]), str(f.product_ids[0]), 9e3, 90))
    assert differences(f, copy) == []


def test_an_unknown_talent_or_a_negative_amount_is_refused(
    tiny_features: MarketFeatures,
) -> None:
    from kolmatch.errors import BadArgument, UnknownId

    f = tiny_features
    with pytest.raises(UnknownId):
        apply_collaboration(f, CollaborationWrite("nobody", str(f.product_ids[0])))
    with pytest.raises(UnknownId):
        apply_collaboration(f, CollaborationWrite(str(f.talent_ids[0]), "no-product"))
    with pytest.raises(BadArgument):
        apply_collaboration(
            f, CollaborationWrite(str(f.talent_ids[0]), str(f.product_ids[0]), gmv=-1.0)
        )
