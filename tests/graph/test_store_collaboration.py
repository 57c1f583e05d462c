"""A collaboration id written once, on every store: ``add_collaboration`` checks the id in the
transaction that writes it."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from kolmatch.errors import UnknownId
from kolmatch.graph.store import GraphStore, NodeBatch


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
    start = threading.Barrier(n)
    answers: list[Any] = [None] * n

    def go(i: int) -> None:
        start.wait()
        try:
            answers[i] = clients[i].add_collaboration(_row("k3", gmv=float(i)))
        except Exception as exc:  # anything else is a failure the assertion shows
            answers[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for c in clients:
        c.close()
    written = [i for i, a in enumerate(answers) if a is None]
    assert len(written) == 1, answers
    (w,) = written
    assert all(isinstance(a, dict) and a["gmv"] == float(w) for a in answers if a is not None)
    assert store.version() == v + 1
    assert _promoted(store) == {"k3": ("t1", "p1", float(w), 3)}
