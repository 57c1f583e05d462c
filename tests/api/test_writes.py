"""Accountable writes: a collaboration id is recorded once, and every write is audited."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from kolmatch.api.app import GRAPH_VERSION_HEADER
from kolmatch.engine.audit import audit_path
from kolmatch.errors import IncompleteLoad
from kolmatch.graph.store import NodeBatch, RelBatch
from tests.api.conftest import WRITE_KEYS, Writable

SECTION = "Accountable writes"
RECORD = """mutation($i: CollaborationInput!) { recordCollaboration(input: $i) { version
  talent { id history(first: 50) { id gmv } } } }"""
KEYS = WRITE_KEYS


@pytest.fixture
def w(tiny_api: Writable) -> Writable:
    return tiny_api


def _collab(w: Writable, cid: str, **over: Any) -> dict[str, Any]:
    v = {
        "id": cid,
        "talent": w.talent,
        "product": w.product,
        "gmv": 250000.0,
        "orders": 120,
        "fee": 30000.0,
        "time": "2026-07-01",
    }
    return {**v, **over}


def _gmv_of(w: Writable, cid: str) -> float:
    return w.service.snapshot.collaborations[cid].gmv


def test_the_same_id_with_other_values_is_refused_and_the_first_stands(
    w: Writable, ledger: Any
) -> None:
    """The issue's case: the same id sent twice overwrote GMV 250,000 with 1."""
    ledger.case(SECTION, "a collaboration id sent again with other values: CONFLICT").tried()
    first = w.post(RECORD, variables={"i": _collab(w, "c-dup")})["data"]["recordCollaboration"]
    version = first["version"]
    body = w.post(RECORD, variables={"i": _collab(w, "c-dup", gmv=1.0, orders=1)})
    (err,) = body["errors"]
    assert err["extensions"]["code"] == "CONFLICT" and err["path"] == ["recordCollaboration"]
    assert "'c-dup'" in err["message"] and "gmv, orders" in err["message"]
    assert body["data"] == {"recordCollaboration": None}
    assert _gmv_of(w, "c-dup") == 250000.0 and w.store.version() == version
    # the merchant selling the product is told which fields differ, as internal tools are
    body = w.post(RECORD, "m_own", variables={"i": _collab(w, "c-dup", time="2026-07-02")})
    assert body["errors"][0]["extensions"]["code"] == "CONFLICT"
    assert "different time" in body["errors"][0]["message"]


def test_the_same_id_with_the_same_values_is_a_no_op(w: Writable, ledger: Any) -> None:
    ledger.case(SECTION, "a collaboration id sent again with the same values: no-op").tried()
    v = _collab(w, "c-same", campaign=None)
    first = w.post(RECORD, variables={"i": v})["data"]["recordCollaboration"]
    again = w.post(RECORD, "m_own", variables={"i": {**v, "time": "2026-07-01"}})
    assert "errors" not in again, again
    assert again["data"]["recordCollaboration"]["version"] == first["version"]
    assert w.store.version() == first["version"]
    ids = [c["id"] for c in again["data"]["recordCollaboration"]["talent"]["history"]]
    assert ids.count("c-same") == 1
    outcomes = [e["outcome"] for e in w.audit.entries() if e.get("target") == "c-same"]
    assert outcomes == ["pending", "written", "unchanged"]


def test_another_merchants_collaboration_id_is_refused_without_its_details(w: Writable) -> None:
    """A merchant reusing an id of a collaboration it cannot see learns that it is taken,
    not which of its values differ (an equality oracle on another merchant's GMV)."""
    snap = w.service.snapshot
    theirs = next(c for c in snap.collaborations.values() if c.merchant and c.merchant != w.seller)
    body = w.post(RECORD, "m_own", variables={"i": _collab(w, theirs.collab_id)})
    (err,) = body["errors"]
    assert err["extensions"]["code"] == "CONFLICT"
    assert "different" not in err["message"] and "gmv" not in err["message"]
    assert w.service.snapshot.collaborations[theirs.collab_id] == theirs


def test_bulk_loads_keep_their_idempotent_upsert(w: Writable) -> None:
    """Only the API refuses a changed collaboration; a load's upsert still corrects one."""
    w.post(RECORD, variables={"i": _collab(w, "c-bulk")})
    row = {
        "src": w.talent,
        "dst": w.product,
        "collab_id": "c-bulk",
        "gmv": 260000.0,
        "orders": 120,
        "fee": 30000.0,
        "time": "2026-07-01",
        "campaign": None,
    }
    w.store.write([RelBatch.of("PROMOTED", "Talent", [row])])
    w.store.write([RelBatch.of("PROMOTED", "Talent", [row])])  # twice: the same result
    snap = w.service.refresh()
    assert snap.collaborations["c-bulk"].gmv == 260000.0
    assert sum(c.collab_id == "c-bulk" for c in snap.history[w.talent]) == 1


def test_a_write_through_a_stale_snapshot_checks_what_another_process_wrote(w: Writable) -> None:
    row = {
        "src": w.talent,
        "dst": w.product,
        "collab_id": "c-elsewhere",
        "gmv": 5.0,
        "orders": 1,
        "fee": 1.0,
        "time": "2026-07-01",
        "campaign": None,
    }
    w.store.write([RelBatch.of("PROMOTED", "Talent", [row])])  # not through this service
    body = w.post(RECORD, variables={"i": _collab(w, "c-elsewhere")})
    assert body["errors"][0]["extensions"]["code"] == "CONFLICT"
    assert w.service.snapshot.collaborations["c-elsewhere"].gmv == 5.0


def test_violation_writes_check_what_another_process_wrote(w: Writable) -> None:
    """A violation id taken, or resolvable, through another process is seen at once."""
    node = {"id": "v-else", "kind": "x", "severity": "minor", "time": "2026-06-01"}
    w.store.write(
        [
            NodeBatch.of("Violation", [{**node, "resolved": False}]),
            RelBatch.of("HAS_VIOLATION", "Talent", [{"src": w.talent, "dst": "v-else"}]),
        ]
    )  # not through this service: its snapshot does not have it yet
    flag = (
        'mutation { flagViolation(input: {id: "v-else", label: "Talent", '
        f'target: "{w.talent}", kind: "x", severity: "minor", time: "2026-06-01"}}) '
        "{ version } }"
    )
    body = w.post(flag)
    assert body["errors"][0]["extensions"]["code"] == "BAD_ARGUMENT", body
    assert "exists" in body["errors"][0]["message"]
    w.store.write([NodeBatch.of("Violation", [{**node, "id": "v-else2", "resolved": False}])])
    body = w.post('mutation { resolveViolation(id: "v-else2") { version } }')
    assert "errors" not in body, body  # known now, though written elsewhere


def test_every_answer_names_the_graph_version_it_reflects(w: Writable) -> None:
    """The version header (issue 18): a read names the version it read, a write the one it
    made; a batch its oldest; an export its snapshot's. A client can tell a stale worker."""
    head = {"Authorization": f"Bearer {KEYS['internal']}"}
    read = {"query": "{ me { kind } }"}

    def post(body: Any) -> httpx.Response:
        r = w.client.post(f"{w.url}/graphql", json=body, headers=head)
        assert r.status_code == 200, r.text
        return r

    v0 = int(post(read).headers[GRAPH_VERSION_HEADER])
    assert v0 == w.service.snapshot.version == w.store.version()
    flag = (
        'mutation { flagViolation(input: {id: "v-hdr", label: "Talent", '
        f'target: "{w.talent}", kind: "x", severity: "minor", time: "2026-06-01"}}) '
        "{ version } }"
    )
    r = post({"query": flag})
    made = r.json()["data"]["flagViolation"]["version"]
    assert made == v0 + 1 and int(r.headers[GRAPH_VERSION_HEADER]) == made
    assert int(post(read).headers[GRAPH_VERSION_HEADER]) == made
    # a batch whose second operation writes: the header is the first's, the older version
    body = [read, {"query": 'mutation { resolveViolation(id: "v-hdr") { version } }'}]
    r = post(body)
    assert r.json()[1]["data"]["resolveViolation"]["version"] == made + 1
    assert int(r.headers[GRAPH_VERSION_HEADER]) == made
    query = {"format": "jsonl", "merchant": w.seller}
    r = w.client.get(f"{w.url}/export/matches", params=query, headers=head)
    assert r.status_code == 200 and int(r.headers[GRAPH_VERSION_HEADER]) == made + 1


def test_resolving_twice_writes_once_and_an_unknown_campaign_is_refused(w: Writable) -> None:
    flag = (
        'mutation { flagViolation(input: {id: "v-twice", label: "Talent", '
        f'target: "{w.talent}", kind: "x", severity: "minor", time: "2026-06-01"}}) '
        "{ version } }"
    )
    assert "errors" not in w.post(flag)
    resolve = 'mutation { resolveViolation(id: "v-twice") { version } }'
    first = w.post(resolve)["data"]["resolveViolation"]["version"]
    again = w.post(resolve)["data"]["resolveViolation"]["version"]
    assert again == first == w.store.version()  # nothing written the second time
    outcomes = [e["outcome"] for e in w.audit.entries() if e["target"] == "v-twice"]
    assert outcomes[-1] == "unchanged"
    body = w.post(RECORD, variables={"i": _collab(w, "c-campaign", campaign="cpX")})
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert "cpX" in body["errors"][0]["message"]
    assert "c-campaign" not in w.service.snapshot.collaborations


def test_an_unknown_amount_is_null_not_zero(w: Writable) -> None:
    row = {
        "src": w.talent,
        "dst": w.product,
        "collab_id": "c-unknown",
        "gmv": None,
        "orders": None,
        "fee": None,
        "time": "2026-07-01",
        "campaign": None,
    }
    w.store.write([RelBatch.of("PROMOTED", "Talent", [row])])
    w.service.refresh()
    q = f'{{ talent(id: "{w.talent}") {{ history(first: 100) {{ id gmv orders fee }} }} }}'
    body = w.post(q)
    item = next(h for h in body["data"]["talent"]["history"] if h["id"] == "c-unknown")
    assert item == {"id": "c-unknown", "gmv": None, "orders": None, "fee": None}
    # sending it again with amounts is a conflict, not a silent fill-in
    body = w.post(RECORD, variables={"i": _collab(w, "c-unknown")})
    assert body["errors"][0]["extensions"]["code"] == "CONFLICT"


def test_a_write_refused_by_an_unfinished_load_is_audited(
    w: Writable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that cannot say its version (another process's Neo4j load is unfinished:
    injected here, SQLite's writes are atomic) refuses every write, and the log says so."""

    def unfinished() -> int:
        raise IncompleteLoad(w.store.uri, ["another process load"])

    monkeypatch.setattr(w.store, "version", unfinished)
    for mutation, variables in (
        ('mutation { resolveViolation(id: "nope") { version } }', None),
        (RECORD, {"i": _collab(w, "c-during-load")}),
        (
            'mutation { flagViolation(input: {id: "v-load", label: "Talent", '
            f'target: "{w.talent}", kind: "x", severity: "minor", time: "2026-06-01"}}) '
            "{ version } }",
            None,
        ),
    ):
        body = w.post(mutation, **({"variables": variables} if variables else {}))
        assert body.get("errors"), body
    refused = [e for e in w.audit.entries() if e["outcome"] == "refused"]
    assert {e["target"] for e in refused} == {"nope", "c-during-load", "v-load"}


def test_every_write_is_audited_with_who_when_what_before_and_after(
    w: Writable, ledger: Any
) -> None:
    ledger.case(SECTION, "every mutation, written or refused, in the audit log").tried(6)
    v0 = w.store.version()
    w.post(RECORD, "m_own", variables={"i": _collab(w, "c-audit")})
    w.post(RECORD, "m_other", variables={"i": _collab(w, "c-audit2")})  # not its product
    flag = (
        'mutation { flagViolation(input: {id: "v-audit", label: "Talent", '
        f'target: "{w.talent}", kind: "fake reviews", severity: "minor", '
        'time: "2026-06-01"}) { version } }'
    )
    assert "errors" not in w.post(flag)
    assert w.post(flag, "m_own")["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "errors" not in w.post('mutation { resolveViolation(id: "v-audit") { version } }')
    assert "errors" not in w.post("mutation { refreshFeatures { version } }")

    entries = w.audit.entries()
    for e in entries:
        assert e["id"] and e["time"].endswith("+00:00")
    written = [e for e in entries if e["outcome"] == "pending"]
    assert [(e["actor"], e["action"], e["target"]) for e in written] == [
        (f"merchant:{w.seller}", "recordCollaboration", "c-audit"),
        ("internal", "flagViolation", "v-audit"),
        ("internal", "resolveViolation", "v-audit"),
    ]
    rec, flagged, resolved = written
    assert rec["before"] is None and rec["version"] == v0
    assert rec["after"]["gmv"] == 250000.0 and rec["after"]["merchant"] == w.seller
    assert flagged["before"] is None and flagged["after"]["severity"] == "minor"
    assert resolved["before"]["resolved"] is False and resolved["after"]["resolved"] is True
    endings = {e["id"]: e for e in entries if e["outcome"] == "written"}
    assert set(endings) == {e["id"] for e in written}
    assert endings[rec["id"]]["version"] == v0 + 1
    refused = [e for e in entries if e["outcome"] == "refused"]
    assert [(e["actor"], e["action"], e["error"]["type"]) for e in refused] == [
        (f"merchant:{w.other}", "recordCollaboration", "Forbidden"),
        (f"merchant:{w.seller}", "flagViolation", "Forbidden"),
    ]
    (refresh,) = [e for e in entries if e["action"] == "refreshFeatures"]
    assert refresh["actor"] == "internal" and refresh["outcome"] == "refreshed"
    assert refresh["after"]["version"] == w.store.version()
    # the log names principals, never their keys; it is readable by its owner only
    text = w.audit.path.read_text()
    assert not any(k in text for k in KEYS.values())
    assert os.stat(w.audit.path).st_mode & 0o077 == 0
    assert all(json.loads(line) for line in text.splitlines())


def test_a_write_whose_audit_cannot_be_written_is_refused_and_nothing_is_written(
    w: Writable, ledger: Any
) -> None:
    ledger.case(SECTION, "audit log not writable: the write is refused, store unchanged").tried()
    # the log's folder is a file: nothing can be created under it (root or not)
    folder = w.audit.path.parent
    if folder.exists():
        shutil.rmtree(folder)
    folder.write_text("not a folder")
    v0 = w.store.version()
    r = w.client.post(
        f"{w.url}/graphql",
        json={"query": RECORD, "variables": {"i": _collab(w, "c-unaudited")}},
        headers={"Authorization": f"Bearer {KEYS['internal']}"},
    )
    assert r.status_code == 503
    err = r.json()["errors"][0]
    assert err["extensions"]["code"] == "STORE_UNAVAILABLE" and "audit log" in err["message"]
    assert w.store.version() == v0 and "c-unaudited" not in w.service.snapshot.collaborations


def test_the_audit_log_defaults_beside_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KOLMATCH_AUDIT_LOG", raising=False)
    monkeypatch.delenv("KOLMATCH_CACHE", raising=False)
    assert audit_path("/srv/km/cache") == Path("/srv/km/audit.jsonl")
    assert audit_path(None) == Path(".kolmatch/audit.jsonl")
    monkeypatch.setenv("KOLMATCH_CACHE", "/var/km/cache")
    assert audit_path(None) == Path("/var/km/audit.jsonl")
    monkeypatch.setenv("KOLMATCH_AUDIT_LOG", "/var/log/km.jsonl")
    assert audit_path("/srv/km/cache") == Path("/var/log/km.jsonl")
