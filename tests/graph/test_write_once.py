"""A collaboration, a violation or a campaign id written once, on every store:
``add_collaboration`` and ``add_node`` check the id in the transaction that writes it."""

from __future__ import annotations

from typing import Any

import pytest

from kolmatch.errors import UnknownId
from kolmatch.graph.store import GraphStore, NodeBatch, RelBatch
from tests.conftest import at_once


def _market(store: GraphStore) -> None:
    store.write(
        [
            NodeBatch.of("Talent", [{"id": t, "name": t.upper()} for t in ("t1", "t2")]),
            NodeBatch.of("Merchant", [{"id": "m1", "name": "M1"}]),
            NodeBatch.of("Product", [{"id": "p1", "name": "P1", "price": 10.0}]),
        ]
    )


def _row(cid: str, **change: Any) -> dict[str, Any]:
    row = {"src": "t1", "dst": "p1", "collab_id": cid, "gmv": 120.0, "orders": 3, "fee": 50.0}
    return row | {"time": "2026-06-05", "campaign": None} | change


def _promoted(store: GraphStore) -> dict[str, tuple[Any, ...]]:
    out = {}
    fields = ["collab_id", "gmv", "orders"]
    for chunk in store.edge_rows("PROMOTED", "Talent", fields):
        for s, d, cid, gmv, orders in zip(
            chunk.src, chunk.dst, *(chunk.columns[f] for f in fields), strict=True
        ):
            out[str(cid)] = (str(s), str(d), float(gmv), int(orders))
    return out


def test_a_new_id_is_written_and_a_held_one_is_answered_not_written(
    empty_store_and_opener: Any,
) -> None:
    store, _ = empty_store_and_opener
    _market(store)
    v = store.version()
    assert store.add_collaboration(_row("k1")) is None
    assert store.version() == v + 1 and store.written_version() == v + 1
    # held: the same values, or others (another talent, another GMV): nothing written
    for again in (_row("k1"), _row("k1", src="t2", gmv=999.0)):
        held = store.add_collaboration(again)
        assert held is not None
        assert {k: held[k] for k in ("talent", "product", "gmv", "orders", "fee")} == {
            "talent": "t1",
            "product": "p1",
            "gmv": 120.0,
            "orders": 3,
            "fee": 50.0,
        }
        assert str(held["time"]) == "2026-06-05" and held["campaign"] is None
        assert store.written_version() is None and store.version() == v + 1
    assert _promoted(store) == {"k1": ("t1", "p1", 120.0, 3)}


def test_an_unknown_end_is_refused_and_nothing_written(empty_store_and_opener: Any) -> None:
    store, _ = empty_store_and_opener
    _market(store)
    v = store.version()
    for row, label in ((_row("k2", src="t9"), "Talent"), (_row("k2", dst="p9"), "Product")):
        with pytest.raises(UnknownId) as refused:
            store.add_collaboration(row)
        assert refused.value.label == label
    assert store.version() == v and _promoted(store) == {}


def test_clients_sending_one_id_at_once_write_it_once(empty_store_and_opener: Any) -> None:
    """Six clients, each its own connection (as six workers), send one id at the same moment,
    each with its own GMV: one writes (one version), the others are answered with its row."""
    store, opener = empty_store_and_opener
    _market(store)
    v = store.version()
    n = 6
    clients = [opener() for _ in range(n)]
    answers = at_once(n, lambda i: clients[i].add_collaboration(_row("k3", gmv=float(i))))
    for c in clients:
        c.close()
    written = [i for i, a in enumerate(answers) if a is None]
    assert len(written) == 1, answers
    (w,) = written
    assert all(isinstance(a, dict) and a["gmv"] == float(w) for a in answers if a is not None)
    assert store.version() == v + 1
    assert _promoted(store) == {"k3": ("t1", "p1", float(w), 3)}


def _violation(vid: str, severity: str = "major") -> dict[str, Any]:
    row = {"id": vid, "kind": "fraud", "severity": severity, "time": "2026-06-05"}
    return row | {"resolved": False}


def _on(vid: str, label: str, target: str) -> list[RelBatch]:
    return [RelBatch.of("HAS_VIOLATION", label, [{"src": target, "dst": vid}])]


def _flagged(store: GraphStore) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for label in ("Talent", "Product"):
        for chunk in store.edge_rows("HAS_VIOLATION", label, []):
            for s, d in zip(chunk.src, chunk.dst, strict=True):
                out.setdefault(str(d), []).append(f"{label}:{s}")
    return out


def test_a_violation_id_is_written_once_and_attached_to_one_target(
    empty_store_and_opener: Any,
) -> None:
    store, _ = empty_store_and_opener
    _market(store)
    v = store.version()
    assert store.add_node("Violation", _violation("v1"), _on("v1", "Talent", "t1")) is None
    assert store.version() == v + 1 and store.written_version() == v + 1
    # the same id again, on another target or with another severity: nothing written
    for label, target in (("Talent", "t2"), ("Product", "p1")):
        held = store.add_node("Violation", _violation("v1", "severe"), _on("v1", label, target))
        assert held is not None
        assert (held["kind"], held["severity"], str(held["time"])) == (
            "fraud",
            "major",
            "2026-06-05",
        )
        assert not held["resolved"]
    with pytest.raises(UnknownId):
        store.add_node("Violation", _violation("v2"), _on("v2", "Talent", "t9"))
    assert store.version() == v + 1
    assert _flagged(store) == {"v1": ["Talent:t1"]}


def test_clients_flagging_one_id_at_once_attach_it_once(empty_store_and_opener: Any) -> None:
    """Four clients flag one violation id at once, each against its own target: one writes;
    the violation has one target (before, each upsert added its own HAS_VIOLATION)."""
    store, opener = empty_store_and_opener
    _market(store)
    targets = [("Talent", "t1"), ("Talent", "t2"), ("Product", "p1"), ("Talent", "t1")]
    clients = [opener() for _ in targets]
    v3 = _violation("v3")
    answers = at_once(
        len(targets), lambda i: clients[i].add_node("Violation", v3, _on("v3", *targets[i]))
    )
    for c in clients:
        c.close()
    written = [i for i, a in enumerate(answers) if a is None]
    assert len(written) == 1 and all(isinstance(a, dict) for a in answers if a is not None)
    label, target = targets[written[0]]
    assert _flagged(store) == {"v3": [f"{label}:{target}"]}


def test_a_campaign_id_is_written_once_with_its_relationships(
    empty_store_and_opener: Any,
) -> None:
    """A campaign and what it covers, all or nothing: an unknown product writes nothing, and
    of clients creating one id at once (each its own name) one writes."""
    store, opener = empty_store_and_opener
    _market(store)
    store.write([NodeBatch.of("Category", [{"id": "c1", "name": "C1"}])])
    v = store.version()

    def campaign(name: str, product: str = "p1") -> tuple[dict[str, Any], list[RelBatch]]:
        row = {"id": "cp1", "name": name, "start": "2026-07-01", "end": "2026-07-31"}
        return row, [
            RelBatch.of("COVERS", "Campaign", [{"src": "cp1", "dst": "c1"}]),
            RelBatch.of("IN_CAMPAIGN", "Product", [{"src": product, "dst": "cp1"}]),
        ]

    with pytest.raises(UnknownId) as refused:
        store.add_node("Campaign", *campaign("Early", product="p9"))
    assert (refused.value.label, refused.value.node_id) == ("Product", "p9")
    assert store.version() == v and store.counts()["Campaign"] == 0
    clients = [opener() for _ in range(4)]
    answers = at_once(4, lambda i: clients[i].add_node("Campaign", *campaign(f"Sale {i}")))
    for c in clients:
        c.close()
    written = [i for i, a in enumerate(answers) if a is None]
    assert len(written) == 1 and all(isinstance(a, dict) for a in answers if a is not None)
    assert store.version() == v + 1
    assert [str(x) for x in store.node_rows("Campaign", ["name"]).columns["name"]] == [
        f"Sale {written[0]}"
    ]
    counts = store.counts()
    assert (counts["COVERS"], counts["IN_CAMPAIGN"]) == (1, 1)
