"""Service providers over HTTP: the provider role, a merchant's ranked providers, the rules."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kolmatch.api.app import create_app
from kolmatch.api.auth import KeyRing, Principal
from kolmatch.api.limits import Limits
from kolmatch.engine.providers import provider_track
from kolmatch.engine.service import EngineService
from kolmatch.errors import BadArgument
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.graph.store import NodeBatch, RelBatch
from kolmatch.loaders.load import load_folder
from kolmatch.policy import MIN_EVIDENCE_ENGAGEMENTS
from tests.api.conftest import Api, serve

MATCH = (
    "rank provider name kind listPrice expectedLift engagements inCategories medianLift tooFew "
    "extraGmvPerYuan evidence"
)


SMALL_PROVIDER_ENGAGEMENTS = [
    {
        "src": "m7",
        "dst": "sp-new",
        "engagement_id": "e-new-1",
        "start": "2026-01-05",
        "end": "2026-03-05",
        "fee": 61_234.0,
        "gmv_before": 2_345_678.0,
        "gmv_during": 4_123_456.0,
    },
    {
        "src": "m9",
        "dst": "sp-new",
        "engagement_id": "e-new-2",
        "start": "2026-05-01",
        "end": "2026-08-01",
        "fee": 95_000.0,
        "gmv_before": 1_111_111.0,
        "gmv_during": None,
    },
]


@pytest.fixture(scope="module")
def papi(s_market: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    d = tmp_path_factory.mktemp("providers-api")
    store = SQLiteStore(d / "s.db")
    load_folder(s_market, store)
    # a provider new to the market: two engagements, one completed (its outcome, fee and
    # GMV are the merchant's and the provider's business), one running
    store.write(
        [
            NodeBatch.of(
                "ServiceProvider",
                [{"id": "sp-new", "name": "New Studio", "kind": "live-studio", "list_price": 31e3}],
            ),
            RelBatch.of("ENGAGED", "Merchant", SMALL_PROVIDER_ENGAGEMENTS),
        ]
    )
    service = EngineService(store, d / "cache")
    track = provider_track(service)
    done = track.model.completed
    busiest = str(track.market.provider_ids[int(np.argmax(done))])
    few = "sp-new"
    assert done[track.market.provider_row(few)] == 1 < MIN_EVIDENCE_ENGAGEMENTS
    principals = {
        "internal": "internal",
        "m0": "merchant:m0",
        "m1": "merchant:m1",
        "provider": f"provider:{busiest}",
        "few": f"provider:{few}",
    }
    keys = {who: f"pk-{who}" for who in principals}
    ring = KeyRing({keys[w]: Principal.parse(p) for w, p in principals.items()})
    limits = Limits(timeout_s=60, rate_per_s=0, internal_rate_per_s=0)
    url, server, thread = serve(create_app(service, ring, production=False, limits=limits))
    api = Api(url, keys, store, service)  # type: ignore[arg-type]
    api.busiest, api.few = busiest, few  # type: ignore[attr-defined]
    yield api
    api.client.close()
    server.should_exit = True
    thread.join(timeout=10)
    store.close()


def codes(api: Api, query: str, who: str) -> list[str]:
    return [e["extensions"]["code"] for e in api.errors(query, who)]


def test_the_provider_principal() -> None:
    p = Principal.parse("provider:sp3")
    assert (p.kind, p.id, str(p)) == ("provider", "sp3", "provider:sp3")
    assert p.is_provider("sp3") and not p.is_provider("sp4") and not p.is_merchant("sp3")
    with pytest.raises(BadArgument, match="provider:<id>"):
        Principal.parse("provider:")


def test_a_provider_sees_its_own_profile_engagements_and_leads(papi: Api) -> None:
    me = papi.busiest  # type: ignore[attr-defined]
    q = (
        f'{{ serviceProvider(id: "{me}") {{ id name kind listPrice clients '
        "engagements { id merchant start end fee gmvBefore gmvDuring lift } "
        "leads(first: 20) { rank merchant merchantName categories expectedLift } } }"
    )
    sp = papi.data(q, "provider")["serviceProvider"]
    track = provider_track(papi.service)
    row = track.market.provider_row(me)
    assert sp["id"] == me and sp["name"] == track.market.provider_names[row]
    assert len(sp["engagements"]) == int((track.market.engagements.provider == row).sum())
    running = [e for e in sp["engagements"] if e["gmvDuring"] is None]
    assert running
    # the market-adjusted lift is internal: the market's change is fitted on every provider's
    # engagements, and a provider knowing its own raw outcomes would read it off
    assert all(e["lift"] is None for e in sp["engagements"])
    assert all(e["gmvBefore"] > 0 and e["fee"] > 0 for e in sp["engagements"])
    leads = sp["leads"]
    assert [x["rank"] for x in leads] == list(range(1, 21))
    lifts = [x["expectedLift"] for x in leads]
    assert lifts == sorted(lifts, reverse=True)
    assert not {x["merchant"] for x in leads} & set(sp["clients"])
    assert all(x["categories"] for x in leads)
    # internal tools see the same, and the lifts
    inside = papi.data(q, "internal")["serviceProvider"]
    lifts_in = [e.pop("lift") for e in inside["engagements"]]
    for e in sp["engagements"]:
        e.pop("lift")
    assert inside == sp
    assert all(
        (x is None) == (e["gmvDuring"] is None)
        for x, e in zip(lifts_in, sp["engagements"], strict=True)
    )


def test_a_provider_may_not_see_another_providers_data(papi: Api) -> None:
    other = papi.few  # type: ignore[attr-defined]
    for field in ("engagements { fee }", "clients", "leads(first: 3) { merchant }"):
        q = f'{{ serviceProvider(id: "{other}") {{ name {field} }} }}'
        assert codes(papi, q, "provider") == ["FORBIDDEN"]
        assert codes(papi, q, "m0") == ["FORBIDDEN"]
    # a refusal is the refused field's alone: the rest of the answer stands
    r = papi.post(f'{{ me {{ kind }} serviceProvider(id: "{other}") {{ id name clients }} }}', "m0")
    out = r.json()
    assert out["data"]["me"]["kind"] == "merchant"
    assert out["data"]["serviceProvider"]["id"] == other and out["data"]["serviceProvider"]["name"]
    assert out["data"]["serviceProvider"]["clients"] is None
    r = papi.post('{ me { kind } serviceProviders(merchant: "m1") { rank } }', "m0")
    assert r.json()["data"] == {"me": {"kind": "merchant"}, "serviceProviders": None}
    r = papi.post("{ me { kind } growth { months } }", "m0")
    assert r.json()["data"] == {"me": {"kind": "merchant"}, "growth": None}
    public = papi.data(f'{{ serviceProvider(id: "{other}") {{ name kind listPrice }} }}', "m0")
    assert public["serviceProvider"]["name"]
    assert codes(papi, '{ serviceProvider(id: "sp-none") { name } }', "provider") == ["NOT_FOUND"]
    assert codes(papi, '{ serviceProviders(merchant: "m0") { rank } }', "provider") == ["FORBIDDEN"]


def test_a_merchant_sees_its_ranked_providers_with_evidence(papi: Api) -> None:
    track = provider_track(papi.service)
    n = len(track.market.provider_ids)
    rows = papi.data(f'{{ serviceProviders(merchant: "m0", first: {n}) {{ {MATCH} }} }}', "m0")[
        "serviceProviders"
    ]
    assert len(rows) == n and [x["rank"] for x in rows] == list(range(1, n + 1))
    lifts = [x["expectedLift"] for x in rows]
    assert lifts == sorted(lifts, reverse=True)
    for x in rows:
        assert x["evidence"] and f"{x['engagements']} completed engagements" in x["evidence"][0]
        if x["inCategories"] < MIN_EVIDENCE_ENGAGEMENTS:
            assert x["tooFew"] and x["medianLift"] is None
            assert any("too few" in line for line in x["evidence"])
        else:
            assert not x["tooFew"] and x["medianLift"] is not None
    assert any(not x["tooFew"] for x in rows)
    # m0 has engagements of its own: its GMV is known, so extra GMV per yuan is stated
    assert any(x["extraGmvPerYuan"] is not None for x in rows)
    assert papi.data('{ serviceProviders(merchant: "m0", first: 3) { rank } }', "internal")
    assert codes(papi, '{ serviceProviders(merchant: "m0") { rank } }', "m1") == ["FORBIDDEN"]
    assert codes(papi, '{ serviceProviders(merchant: "m-none") { rank } }', "m0") == ["NOT_FOUND"]
    assert codes(papi, '{ serviceProviders(merchant: "m0", first: 0) { rank } }', "m0") == [
        "BAD_ARGUMENT"
    ]


def test_excluded_merchants_get_no_list_and_are_no_ones_lead(papi: Api) -> None:
    f = papi.service.snapshot.features
    bad = [str(m) for m in f.merchant_ids[f.merchant_risk >= 1.0]]
    assert bad
    q = f'{{ serviceProviders(merchant: "{bad[0]}") {{ rank }} }}'
    assert codes(papi, q, "internal") == ["NOT_ELIGIBLE"]
    track = provider_track(papi.service)
    for p in track.market.provider_ids:
        q = f'{{ serviceProvider(id: "{p}") {{ leads(first: 100) {{ merchant }} }} }}'
        leads = papi.data(q, "internal")["serviceProvider"]["leads"]
        assert leads and not {x["merchant"] for x in leads} & set(bad)


def _numbers(row: dict[str, Any]) -> list[float]:
    out = [float(v) for v in row.values() if isinstance(v, int | float) and v is not None]
    for line in row["evidence"]:
        out += [float(x.replace(",", "")) for x in re.findall(r"-?\d[\d,]*(?:\.\d+)?", line)]
    return out


def test_a_small_providers_engagements_cannot_be_derived(papi: Api) -> None:
    """The provider with the fewest completed engagements (fewer than the policy's minimum):
    what m0 and m1 see of it is its kind's prior, counts and its list price. No visible number,
    nor any ratio, product, sum or difference of two, is within 1% of any of its engagements'
    GMV before or during, fee, or outcome (during / before and its log)."""
    track = provider_track(papi.service)
    few = papi.few  # type: ignore[attr-defined]
    p = track.market.provider_row(few)
    assert not track.model.qualified[p]
    e = track.market.engagements
    mine = np.nonzero(e.provider == p)[0]
    secrets = []
    for i in mine:
        secrets += [e.fee[i], e.gmv_before[i]]
        if np.isfinite(e.gmv_during[i]):
            r = e.gmv_during[i] / e.gmv_before[i]
            secrets += [e.gmv_during[i], r, np.log(r)]
    secrets_a = np.array([s for s in secrets if np.isfinite(s) and s != 0])
    assert len(secrets_a)
    n = len(track.market.provider_ids)
    seen: list[float] = []
    for who in ("m0", "m1"):
        q = f'{{ serviceProviders(merchant: "{who}", first: {n}) {{ {MATCH} }} }}'
        row = next(x for x in papi.data(q, who)["serviceProviders"] if x["provider"] == few)
        assert row["tooFew"] and row["medianLift"] is None
        # its kind's prior, whatever its own engagements did
        assert row["expectedLift"] == pytest.approx(track.model.prior[p], abs=1e-4)
        seen += _numbers(row)
    v = np.array(seen)
    a, b = np.meshgrid(v, v)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        candidates = np.concatenate(
            [v, (a / b).ravel(), (a * b).ravel(), (a + b).ravel(), (a - b).ravel()]
        )
    candidates = candidates[np.isfinite(candidates) & (candidates != 0)]
    close = np.abs(candidates[:, None] / secrets_a[None, :] - 1.0) < 0.01
    # a small count (1 engagement, 2 of them) may equal an outcome ratio by chance: the
    # outcomes are checked above (the expected lift is the prior, whatever they were); a GMV
    # or fee may not be hit at all
    big = np.abs(secrets_a) > 100
    assert not close[:, big].any(), "a small provider's fee or GMV is derivable"
