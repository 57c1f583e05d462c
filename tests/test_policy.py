"""The adversarial policy test: what each role sees must not give away what it may not see.

On the s market, served by the real app with a key per role, every output a role can read is
swept — CLI JSON and text of match / why / plan / similar, GraphQL match lists, "why not",
plans, talent fields and error messages — and every number in it (breakdowns, prices, scores,
and the numbers in evidence and messages, each labelled by its line's template) is collected
per talent. The attacker then tries each visible number and every ratio, product, difference
and sum of two of them, plus scores under weights that isolate one signal and budgets bisected
until a talent drops out, against the talent's private values: its negotiated fee, its own
commission rate, its capacity and bookings, and other merchants' GMV with it.

A *formula* (say "breakdown expected_gmv / breakdown roi") is a leak when it reproduces a
private value within 1% for at least :data:`LEAK_SHARE` of the talents it can be computed for
(and :data:`LEAK_MIN` of them): that is a rule an attacker can apply to every talent. One
number landing within 1% of one fee by chance is not; with thousands of candidate numbers per
talent such coincidences are certain, which is why a single hit is not the criterion.
"""

from __future__ import annotations

import io
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kolmatch.api.app import create_app
from kolmatch.api.auth import KeyRing, Principal
from kolmatch.api.limits import Limits
from kolmatch.engine.providers import provider_track
from kolmatch.engine.service import EngineService, Snapshot
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.graph.store import RelBatch
from kolmatch.loaders.load import load_folder
from kolmatch.matching.features import MarketFeatures
from kolmatch.matching.score import DEFAULT_WEIGHTS
from kolmatch.policy import percentile, percentile_among
from tests.api.conftest import Api, serve

#: A formula leaks when it hits (within TOLERANCE) for this share of the talents it covers...
LEAK_SHARE = 0.2
#: ... and for at least this many of them (thousands of formulas are tried: a handful of
#: talents hit by chance is expected, e.g. one booking equal to a count of one).
LEAK_MIN = 8
TOLERANCE = 0.01

Visible = dict[str, dict[str, float]]  # talent -> label -> value
Private = dict[str, dict[str, list[float]]]  # talent -> kind -> values

_NUMBER = re.compile(r"(?<![A-Za-z\d.])(-?\d[\d,]*(?:\.\d+)?)(k|M)?(%|x)?")


def numbers_in(text: str) -> tuple[str, list[float]]:
    """A line's template (numbers replaced by #) and its numbers (¥12k -> 12000, 25% -> 0.25)."""
    values = []
    for m in _NUMBER.finditer(text):
        x = float(m.group(1).replace(",", ""))
        x *= {"k": 1e3, "M": 1e6, None: 1.0}[m.group(2)]
        if m.group(3) == "%":
            x /= 100
        values.append(x)
    return _NUMBER.sub("#", text), values


def add_text(visible: Visible, talent: str, source: str, text: str) -> None:
    template, values = numbers_in(text)
    for i, x in enumerate(values):
        visible[talent][f"{source}:{template}[{i}]"] = x


@dataclass
class Leak:
    formula: str
    kind: str
    hits: int
    covered: int
    example: str


@dataclass
class Attack:
    """Every formula of one or two visible numbers, scored against the private values."""

    hits: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    covered: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    example: dict[tuple[str, str], str] = field(default_factory=dict)
    # per talent: its formulas' values and its private values (for the group's own chance)
    rows: list[tuple[dict[str, int], Any, dict[str, Any]]] = field(default_factory=list)

    def values_of(self, formula: str, kind: str) -> list[tuple[float, Any]]:
        """The formula's value and the private ``kind`` values of every talent it covers."""
        out = []
        for index, cand, secret in self.rows:
            i = index.get(formula)
            if i is not None and kind in secret:
                out.append((float(cand[i]), secret[kind]))
        return out

    def run(self, visible: Visible, private: Private) -> list[Leak]:
        for t, seen in visible.items():
            secret = private.get(t)
            if not secret or not seen:
                continue
            labels = sorted(seen)
            v = np.array([seen[k] for k in labels], dtype=np.float64)
            names, values = [*labels], [*v]
            i, j = np.triu_indices(len(v), 1)
            a, b = v[i], v[j]
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                ops = {
                    "/": (a / b, b / a),
                    "*": (a * b,),
                    "-": (a - b, b - a),
                    "+": (a + b,),
                }
            for op, results in ops.items():
                for k, r in enumerate(results):
                    left, right = (i, j) if k == 0 else (j, i)
                    names += [
                        f"{labels[x]} {op} {labels[y]}" for x, y in zip(left, right, strict=True)
                    ]
                    values += list(r)
            cand = np.array(values)
            kept: dict[str, Any] = {}
            self.rows.append(({n: k for k, n in enumerate(names)}, cand, kept))
            for kind, targets in secret.items():
                p = np.array([x for x in targets if np.isfinite(x) and x != 0])
                if not len(p):
                    continue
                for n in names:
                    self.covered[(n, kind)] += 1
                kept[kind] = p
                rel = np.abs(cand[:, None] / p[None, :] - 1.0)
                hit = np.nonzero((rel < TOLERANCE).any(axis=1) & np.isfinite(cand))[0]
                for h in hit:
                    key = (names[h], kind)
                    self.hits[key] += 1
                    self.example.setdefault(key, f"{t}: {cand[h]:.6g} vs {kind} {list(p)[:3]}")
        return [
            Leak(n, kind, h, self.covered[(n, kind)], self.example[(n, kind)])
            for (n, kind), h in sorted(self.hits.items(), key=lambda kv: -kv[1])
            if h >= LEAK_MIN and h >= LEAK_SHARE * self.covered[(n, kind)]
        ]


def find_leaks(visible: Visible, private: Private) -> list[Leak]:
    """Formulas that reproduce private values far more often than chance.

    Chance is measured twice: the same attack against the private values shuffled among the
    talents (a small count such as one booking equals x / x for every talent; that is no
    leak), and each formula against the private values dealt at random within the group of
    talents it covers (:func:`_group_chance`). A leak hits :data:`LEAK_SHARE` of the talents
    it covers, at least :data:`LEAK_MIN`, and more than twice as often (plus two) as either.
    """
    keys = sorted(private)
    shuffled = dict(
        zip(keys, [private[k] for k in np.random.default_rng(0).permutation(keys)], strict=True)
    )
    chance = Attack()
    chance.run(visible, shuffled)
    attack = Attack()
    return [
        x
        for x in attack.run(visible, private)
        if x.hits > 2 * chance.hits.get((x.formula, x.kind), 0) + 2
        and x.hits > 2 * _group_chance(attack.values_of(x.formula, x.kind)) + 2
    ]


def _group_chance(pairs: list[tuple[float, Any]]) -> float:
    """Hits expected if the private values were dealt at random among the talents the formula
    covers: a formula that is the same for a whole group (``1 past collaboration`` + the same
    line: 2 for every talent with one) matches a private value as often as that value is
    common in the group, which tells nothing about any one talent."""
    values = np.array([c for c, _ in pairs])
    secrets = [s for _, s in pairs]
    expected = 0.0
    for s in secrets:  # each talent's private values against every covered talent's formula
        rel = np.abs(values[:, None] / s[None, :] - 1.0)
        expected += float(((rel < TOLERANCE).any(axis=1) & np.isfinite(values)).sum())
    return expected / max(len(pairs), 1)


def assert_no_leak(visible: Visible, private: Private, who: str) -> None:
    leaks = find_leaks(visible, private)
    assert not leaks, f"{who} can derive private values:\n" + "\n".join(
        f"  {x.formula} reproduces {x.kind} within 1% for {x.hits} of {x.covered} talents "
        f"(e.g. {x.example})"
        for x in leaks[:10]
    )


# -- what is private, per viewer ---------------------------------------------------------------


def private_values(snap: Snapshot, merchant: str | None, roster: set[str]) -> Private:
    """Each talent's values the viewer may not see (talents of its own roster: none)."""
    f = snap.features
    out: Private = {}
    booked = np.bincount(f.booking_talent, minlength=f.n_talents)
    mix = f.merchant_mix[f.merchant_row(merchant)] if merchant else None
    for t, tid in enumerate(f.talent_ids):
        tid = str(tid)
        if tid in roster:
            continue
        others = [c.gmv for c in snap.history.get(tid, []) if c.merchant != merchant and c.gmv]
        v: dict[str, list[float]] = {
            "fee": [float(f.talent_fee[t])],
            "commission_rate": [float(f.talent_commission[t])],
            "capacity": [float(f.talent_capacity[t])],
            "bookings": [float(booked[t])],
            "others_gmv": [*others, float(sum(others))],
        }
        if mix is not None and others:
            # what the evidence used to quote, and the mean the track record used to show
            v["others_gmv"] += [
                float(f.talent_track_gmv[t][mix > 0].sum()),
                float(f.talent_track[t] @ mix),
            ]
        out[tid] = v
    return out


def excluded_talents(f: MarketFeatures) -> set[str]:
    return {str(x) for x in f.talent_ids[f.talent_risk >= 1.0]}


# -- the server ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def policy_api(s_market: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    d = tmp_path_factory.mktemp("policy")
    store = SQLiteStore(d / "s.db")
    load_folder(s_market, store)
    service = EngineService(store, d / "cache")
    snap = service.snapshot
    agency = max(snap.agency_roster, key=lambda a: (len(snap.agency_roster[a]), a))
    keys = {"internal": "p-internal", "m0": "p-m0", "m1": "p-m1", "agency": "p-agency"}
    principals = {"internal": "internal", "m0": "merchant:m0", "m1": "merchant:m1"}
    principals["agency"] = f"agency:{agency}"
    # the service provider with the most engagements (its leads are the longest record)
    pm = provider_track(service).market
    provider = str(pm.provider_ids[np.argmax(np.bincount(pm.engagements.provider))])
    keys["provider"], principals["provider"] = "p-provider", f"provider:{provider}"
    ring = KeyRing({keys[k]: Principal.parse(p) for k, p in principals.items()})
    # no rate limit: it would slow the attacker down, not stop it
    limits = Limits(timeout_s=120, rate_per_s=0.0, internal_rate_per_s=0.0)
    app = create_app(service, ring, production=False, limits=limits)
    url, server, thread = serve(app)
    api = Api(url, keys, store, service)  # type: ignore[arg-type]
    api.agency = agency  # type: ignore[attr-defined]
    api.provider = provider  # type: ignore[attr-defined]
    yield api
    api.client.close()
    server.should_exit = True
    thread.join(timeout=10)
    store.close()


def _q(api: Api, query: str, who: str) -> dict[str, Any]:
    r = api.post(query, who)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


# -- the sweeps ---------------------------------------------------------------------------------

MATCH_FIELDS = (
    "rank score evidence breakdown { signal value } price priceEstimated affordable talent { id }"
)


def collect_matches(visible: Visible, edges: list[dict[str, Any]], source: str) -> None:
    for e in edges:
        node = e.get("node", e)
        t = node["talent"]["id"]
        seen = visible[t]
        seen[f"{source}:score"] = node["score"]
        seen[f"{source}:rank"] = node["rank"]
        for key in ("price",):
            if node.get(key) is not None:
                seen[f"{source}:{key}"] = node[key]
        for b in node["breakdown"]:
            seen[f"{source}:bd {b['signal']}"] = b["value"]
        for line in node["evidence"]:
            add_text(visible, t, source, line)


def sweep_match_list(api: Api, who: str, merchant: str, visible: Visible) -> list[str]:
    """Every page of the merchant's list; returns the talents in order."""
    order: list[str] = []
    after = ""
    while True:
        cursor = f', after: "{after}"' if after else ""
        q = (
            f'{{ merchant(id: "{merchant}") {{ matches(first: 100{cursor}) {{ '
            f"edges {{ node {{ {MATCH_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }} }} }} }}"
        )
        body = _q(api, q, who)
        assert "errors" not in body, body["errors"]
        conn = body["data"]["merchant"]["matches"]
        collect_matches(visible, conn["edges"], "matches")
        order += [e["node"]["talent"]["id"] for e in conn["edges"]]
        if not conn["pageInfo"]["hasNextPage"]:
            return order
        after = conn["pageInfo"]["endCursor"]


def sweep_talents(api: Api, who: str, visible: Visible) -> None:
    """Every talent's public fields."""
    after = ""
    fields = (
        "id followers listPrice centrality risk riskFlags audience { size activeShare "
        "categories { share } genders { share } ageBands { share } }"
    )
    while True:
        cursor = f', after: "{after}"' if after else ""
        q = (
            f"{{ talents(first: 100{cursor}) {{ edges {{ node {{ {fields} }} }} "
            "pageInfo { hasNextPage endCursor } } }"
        )
        body = _q(api, q, who)
        assert "errors" not in body, body["errors"]
        conn = body["data"]["talents"]
        for e in conn["edges"]:
            n = e["node"]
            seen = visible[n["id"]]
            for k in ("followers", "listPrice", "centrality", "risk"):
                if n[k] is not None:
                    seen[f"talent:{k}"] = n[k]
            a = n["audience"]
            seen["talent:audience size"] = a["size"]
            seen["talent:active share"] = a["activeShare"]
            for part in ("categories", "genders", "ageBands"):
                for i, s in enumerate(a[part]):
                    seen[f"talent:{part}[{i}]"] = s["share"]
            for line in n["riskFlags"]:
                add_text(visible, n["id"], "talent", line)
        if not conn["pageInfo"]["hasNextPage"]:
            return
        after = conn["pageInfo"]["endCursor"]


def sweep_why_not(
    api: Api, who: str, merchant: str, talents: list[str], visible: Visible, budget: str = ""
) -> None:
    answers: list[dict[str, Any]] = []
    for start in range(0, len(talents), 15):  # within the API's alias limit
        aliases = " ".join(
            f'w{i}: whyNot(talent: "{t}", first: 20{budget}) {{ talent reason detail rank score '
            "cutRank cutScore eligible price priceEstimated }"
            for i, t in enumerate(talents[start : start + 15])
        )
        body = _q(api, f'{{ merchant(id: "{merchant}") {{ {aliases} }} }}', who)
        assert "errors" not in body, body["errors"]
        answers += body["data"]["merchant"].values()
    for w in answers:
        seen = visible[w["talent"]]
        for k in ("rank", "score", "cutRank", "cutScore", "price"):
            if w[k] is not None:
                seen[f"why:{k}"] = w[k]
        add_text(visible, w["talent"], "why", w["detail"])


def sweep_plan(api: Api, who: str, merchant: str, budget: float, visible: Visible) -> list[str]:
    q = (
        f'{{ merchant(id: "{merchant}") {{ plan(budget: {budget}) {{ talents {{ '
        "talent { id } tier fee expectedGmv marginalReach } } } }"
    )
    body = _q(api, q, who)
    if "errors" in body:  # an infeasible plan: its message is swept instead
        for e in body["errors"]:
            add_text(visible, "_messages", "plan error", e["message"])
        return []
    out = []
    for p in body["data"]["merchant"]["plan"]["talents"]:
        t = p["talent"]["id"]
        out.append(t)
        for k in ("fee", "expectedGmv", "marginalReach"):
            visible[t][f"plan:{k}"] = p[k]
    return out


def _cli(f: MarketFeatures, monkeypatch: pytest.MonkeyPatch) -> Any:
    from kolmatch import cli

    monkeypatch.setattr(cli, "_features", lambda store: f)

    def run(*argv: str) -> str:
        out = io.StringIO()
        with redirect_stdout(out):
            assert cli.main(list(argv)) == 0
        return out.getvalue()

    return run


def sweep_cli(f: MarketFeatures, monkeypatch: pytest.MonkeyPatch, visible: Visible) -> list[str]:
    """`kolmatch match`, `why`, `plan` and `similar` for m0, JSON and text.

    Returns every talent they name (listed, planned, similar).
    """
    from kolmatch import cli

    run = _cli(f, monkeypatch)
    doc = json.loads(run("match", "m0", "--top", str(f.n_talents), "--json"))
    listed = []
    for m in doc["matches"]:
        t = m["talent"]
        listed.append(t)
        visible[t]["cli:score"] = m["score"]
        for k, v in m["breakdown"].items():
            visible[t][f"cli:bd {k}"] = v
        if "price" in m:
            visible[t]["cli:price"] = m["price"]
        for line in m["evidence"]:
            add_text(visible, t, "cli", line)
    current = ""
    for line in run("match", "m0", "--top", "300").splitlines():
        head = re.match(r"\s*\d+\.\s+(t\d+)\s+(.*)", line)
        if head:
            current = head.group(1)
            add_text(visible, current, "cli text head", head.group(2))
        elif current:
            add_text(visible, current, "cli text", line)
    matched = list(listed)
    plan = json.loads(run("plan", "m0", "--budget", "1000000", "--json"))
    for item in plan["talents"]:
        for k, v in item.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                visible[item["talent"]][f"cli plan:{k}"] = v
    for k, v in plan.items():  # plan-wide figures: a private value of one planned talent?
        if isinstance(v, int | float) and not isinstance(v, bool) and len(plan["talents"]) == 1:
            visible[plan["talents"][0]["talent"]][f"cli plan total:{k}"] = v
    planned = [p["talent"] for p in plan["talents"]]
    for line in run("plan", "m0", "--budget", "1000000").splitlines():
        head = re.match(r"\s*(t\d+)\s+(.*)", line)
        if head:
            add_text(visible, head.group(1), "cli plan text", head.group(2))
    for t in matched[:5]:
        sim = json.loads(run("similar", t, "--json"))
        for x in sim["similar"]:
            visible[x["talent"]][f"cli similar to {t}"] = x["similarity"]
        listed += [x["talent"] for x in sim["similar"]]
        for line in run("similar", t).splitlines():
            head = re.match(r"\s*\d+\.\s+(t\d+)\s+(.*)", line)
            if head:
                add_text(visible, head.group(1), f"cli similar text {t}", head.group(2))
    listed += planned
    if "why" in cli._COMMANDS:
        for t in matched[::97][:12]:
            w = json.loads(run("why", "m0", t, "--json"))
            for k in ("rank", "score", "cut_score", "price"):
                if w[k] is not None:
                    visible[t][f"cli why:{k}"] = w[k]
            add_text(visible, t, "cli why", run("why", "m0", t))
    return listed


# -- the tests ----------------------------------------------------------------------------------


def test_the_attack_finds_a_planted_leak() -> None:
    """The attack itself can fail: a fee written as GMV / ROI is found, noise is not."""
    rng = np.random.default_rng(0)
    visible: Visible = defaultdict(dict)
    private: Private = {}
    for t in range(200):
        fee, gmv = float(rng.uniform(1e3, 1e6)), float(rng.uniform(1e3, 1e7))
        visible[f"t{t}"] = {
            "gmv": gmv,
            "roi": gmv / fee,
            "noise a": float(rng.uniform(0, 1)),
            "noise b": float(rng.uniform(1e3, 1e6)),
        }
        private[f"t{t}"] = {"fee": [fee]}
    leaks = find_leaks(visible, private)
    assert [x.formula for x in leaks] == ["gmv / roi"] and leaks[0].hits == 200
    for seen in visible.values():
        del seen["roi"]
    assert not find_leaks(visible, private)


def test_cli_outputs_leak_nothing(policy_api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    snap = policy_api.service.snapshot
    visible: Visible = defaultdict(dict)
    listed = sweep_cli(snap.features, monkeypatch, visible)
    assert len(listed) > 1_000
    assert not set(listed) & excluded_talents(snap.features)
    assert_no_leak(visible, private_values(snap, "m0", set()), "merchant m0 through the CLI")


def test_merchant_sees_nothing_private(policy_api: Api) -> None:
    api, snap = policy_api, policy_api.service.snapshot
    f = snap.features
    visible: Visible = defaultdict(dict)
    listed = sweep_match_list(api, "m0", "m0", visible)
    assert len(listed) == int((f.talent_risk < 1.0).sum())
    assert not set(listed) & excluded_talents(f)
    sweep_talents(api, "m0", visible)
    sample = listed[::40] + sorted(excluded_talents(f))[:5]
    sweep_why_not(api, "m0", "m0", sample, visible)
    planned = sweep_plan(api, "m0", "m0", 1_000_000.0, visible)
    assert not set(planned) & excluded_talents(f)
    # private fields asked for: refused, and the messages say no number of them
    for t in listed[:20]:
        body = _q(
            api,
            f'{{ talent(id: "{t}") {{ fee commissionRate capacity bookings {{ start }} }} }}',
            "m0",
        )
        assert body.get("errors"), body
        for e in body["errors"]:
            add_text(visible, t, "error", e["message"])
    assert_no_leak(visible, private_values(snap, "m0", set()), "merchant m0")


def test_weights_isolating_one_signal_reveal_nothing(policy_api: Api) -> None:
    """Scores under one-hot weights: no pair formula, and no affine map of a private value."""
    api, snap = policy_api, policy_api.service.snapshot
    private = private_values(snap, "m0", set())
    visible: Visible = defaultdict(dict)
    for signal in DEFAULT_WEIGHTS:
        w = ", ".join(
            f'{{signal: "{k}", weight: {1.0 if k == signal else 0.0}}}' for k in DEFAULT_WEIGHTS
        )
        q = (
            f'{{ merchant(id: "m0") {{ matches(first: 100, weights: [{w}]) {{ edges {{ node {{ '
            "rank score breakdown { signal value } talent { id } } } } } }"
        )
        body = _q(api, q, "m0")
        assert "errors" not in body, body["errors"]
        edges = body["data"]["merchant"]["matches"]["edges"]
        talents = [e["node"]["talent"]["id"] for e in edges]
        scores = np.array([e["node"]["score"] for e in edges])
        for t, s in zip(talents, scores, strict=True):
            visible[t][f"iso {signal}:score"] = float(s)
            for b in next(e for e in edges if e["node"]["talent"]["id"] == t)["node"]["breakdown"]:
                visible[t][f"bd {b['signal']}"] = b["value"]
        if np.ptp(scores) == 0:
            continue
        # a score affine in log(private) lets two known anchors recover every other talent's
        for kind in ("fee", "commission_rate", "capacity", "bookings"):
            p = np.array([private[t][kind][0] for t in talents])
            ok = np.isfinite(p) & (p > 0)
            if ok.sum() > 10 and np.ptp(np.log(p[ok])) > 0:
                for g in (np.log(p[ok]), np.log1p(p[ok]), p[ok]):
                    r = abs(np.corrcoef(scores[ok], g)[0, 1])
                    assert r < 0.999, f"isolating {signal} gives scores affine in {kind} (r={r})"
        gmv = np.array(
            [
                private[t]["others_gmv"][-1] if len(private[t]["others_gmv"]) > 2 else np.nan
                for t in talents
            ]
        )
        ok = np.isfinite(gmv) & (gmv > 0)
        if ok.sum() > 10:
            r = abs(np.corrcoef(scores[ok], np.log1p(gmv[ok]))[0, 1])
            assert r < 0.999, f"isolating {signal} gives scores affine in others' GMV (r={r})"
    assert_no_leak(visible, private, "merchant m0 with one-hot weights")


def test_budget_bisection_finds_only_the_list_price(policy_api: Api) -> None:
    api, snap = policy_api, policy_api.service.snapshot
    f = snap.features
    listed = sweep_match_list(api, "m0", "m0", defaultdict(dict))
    visible: Visible = defaultdict(dict)
    for t in listed[:: max(len(listed) // 8, 1)][:8]:
        lo, hi = 1.0, 1e9  # lo: dropped out; hi: still there
        for _ in range(40):
            mid = (lo * hi) ** 0.5
            body = _q(
                api,
                f'{{ merchant(id: "m0") {{ whyNot(talent: "{t}", budget: {mid}) {{ reason }} }} }}',
                "m0",
            )
            reason = body["data"]["merchant"]["whyNot"]["reason"]
            lo, hi = (mid, hi) if reason == "unaffordable" else (lo, mid)
            if hi / lo < 1.0005:
                break
        visible[t]["bisected budget"] = hi
        row = f.talent_row(t)
        assert hi == pytest.approx(f.talent_list_price[row], rel=1e-3)
    assert_no_leak(visible, private_values(snap, "m0", set()), "merchant m0 bisecting budgets")


def test_agency_sees_nothing_private_beyond_its_roster(policy_api: Api) -> None:
    api, snap = policy_api, policy_api.service.snapshot
    roster = set(snap.agency_roster[api.agency])  # type: ignore[attr-defined]
    visible: Visible = defaultdict(dict)
    sweep_talents(api, "agency", visible)
    body = _q(api, '{ merchant(id: "m0") { matches(first: 5) { totalCount } } }', "agency")
    assert body.get("errors") and body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    outsiders = sorted(set(visible) - roster)[:20]
    for t in outsiders:
        body = _q(api, f'{{ talent(id: "{t}") {{ fee commissionRate capacity }} }}', "agency")
        for e in body.get("errors", []):
            add_text(visible, t, "error", e["message"])
    assert_no_leak(visible, private_values(snap, None, roster), f"agency {api.agency}")  # type: ignore[attr-defined]


def test_internal_lists_recommend_no_ineligible_talent(policy_api: Api) -> None:
    api, snap = policy_api, policy_api.service.snapshot
    f = snap.features
    ids = [str(m) for m in f.merchant_ids[:40]]
    q = (
        f"{{ matchLists(merchantIds: {json.dumps(ids)}, first: 100) "
        "{ merchant matches { talent { id } } } }"
    )
    body = _q(api, q, "internal")
    bad = excluded_talents(f)
    for lst in body["data"]["matchLists"]:
        if lst is not None:
            assert not {m["talent"]["id"] for m in lst["matches"]} & bad


def test_an_ineligible_merchant_gets_no_list(policy_api: Api) -> None:
    api, f = policy_api, policy_api.service.snapshot.features
    bad = [str(m) for m in f.merchant_ids[f.merchant_risk >= 1.0]]
    assert bad, "the s market should have a merchant excluded for compliance"
    for q in (
        f'{{ merchant(id: "{bad[0]}") {{ matches(first: 5) {{ edges {{ node {{ rank }} }} }} }} }}',
        f'{{ merchant(id: "{bad[0]}") {{ whyNot(talent: "t1") {{ reason }} }} }}',
        f'{{ merchant(id: "{bad[0]}") {{ plan(budget: 1000000) {{ cost }} }} }}',
    ):
        body = _q(api, q, "internal")
        assert body.get("errors"), body
        assert all(e["extensions"]["code"] == "NOT_ELIGIBLE" for e in body["errors"]), body


def test_leads_and_assignments_recommend_only_eligible(
    policy_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`leads` and `assign` (every method, with and without a campaign) through the CLI:
    no ineligible merchant, talent or product, and a campaign's merchants only."""
    from kolmatch.matching.eligibility import (
        merchant_eligibility,
        product_eligibility,
        talent_eligibility,
    )

    snap = policy_api.service.snapshot
    f = snap.features
    run = _cli(f, monkeypatch)
    bad_m = set(merchant_eligibility(f).refused())
    bad_p = set(product_eligibility(f).refused())
    bad_t = set(talent_eligibility(f).refused())
    assert bad_m and bad_p and bad_t, "the s market should exclude some of each"
    sample = [str(t) for t in f.talent_ids[:: max(f.n_talents // 30, 1)]]
    led = 0
    for t in sample:
        doc = json.loads(run("leads", t, "--top", "50", "--json"))
        for x in doc["leads"]:
            led += 1
            assert x["merchant"] not in bad_m, (t, x)
            assert x["best_product"] not in bad_p, (t, x)
            assert snap.product_merchant[x["best_product"]] == x["merchant"], (t, x)
    assert led > 500
    campaign = str(f.campaign_ids[0])
    joined = {
        str(f.merchant_ids[m])
        for m in f.merchant_campaigns[:, f.campaign_row(campaign)].nonzero()[0]
    }
    for argv in (
        ("--method", "milp"),
        ("--method", "lagrangian"),
        ("--method", "stable"),
        ("--method", "stable", "--proposing", "talents"),
        ("--method", "milp", "--campaign", campaign),
        ("--method", "stable", "--campaign", campaign),
    ):
        doc = json.loads(run("assign", *argv, "--json"))
        pairs = doc["pairs"]
        assert pairs, argv
        merchants = {p["merchant"] for p in pairs}
        assert not merchants & bad_m, argv
        assert not {p["talent"] for p in pairs} & bad_t, argv
        if "--campaign" in argv:
            assert merchants <= joined, (argv, sorted(merchants - joined)[:5])


def merchant_private(snap: Snapshot, roster: set[str]) -> Private:
    """Each merchant's values an agency may not see: its budget, talent cap, customers and
    its GMV with talents outside the agency's roster."""
    f = snap.features
    gmv: dict[str, list[float]] = defaultdict(list)
    for t, items in snap.history.items():
        if t in roster:
            continue
        for c in items:
            if c.merchant and c.gmv:
                gmv[c.merchant].append(c.gmv)
    customers = np.diff(f.merchant_buyers.indptr)
    out: Private = {}
    for m, mid in enumerate(f.merchant_ids):
        mid = str(mid)
        out[mid] = {
            "budget": [float(f.merchant_budget[m])],
            "max_talents": [float(f.merchant_max_talents[m])],
            "customers": [float(customers[m])],
            "others_gmv": [*gmv[mid], float(sum(gmv[mid]))],
        }
    return out


def test_agency_leads_reveal_nothing_of_merchants(policy_api: Api) -> None:
    """An agency's leads (recommendedMerchants) for its roster: eligible merchants and
    products only, and no merchant's budget, customers or other GMV derivable."""
    api, snap = policy_api, policy_api.service.snapshot
    f = snap.features
    roster = sorted(snap.agency_roster[api.agency])  # type: ignore[attr-defined]
    asked = roster[:: max(len(roster) // 12, 1)][:12]  # a lead list costs ~1 s: a sample
    visible: Visible = defaultdict(dict)
    bad = {str(x) for x in f.merchant_ids[f.merchant_risk >= 1.0]}
    fields = "merchant merchantName rank expectedGmv bestProduct roi customersReached"
    for start in range(0, len(asked), 6):
        aliases = " ".join(
            f'r{i}: talent(id: "{t}") {{ id recommendedMerchants(first: 50) {{ {fields} }} }}'
            for i, t in enumerate(asked[start : start + 6])
        )
        body = _q(api, f"{{ {aliases} }}", "agency")
        for e in body.get("errors", []):  # customersReached: internal tools only
            code = e["extensions"]["code"]
            assert code == "FORBIDDEN" or (code == "NOT_ELIGIBLE" and "excluded" in e["message"])
        for node in (body.get("data") or {}).values():
            for x in (node or {}).get("recommendedMerchants") or []:
                assert x["merchant"] not in bad
                # the storefront name, public as Merchant.name (the explorer's pitch lists)
                assert x["merchantName"] == snap.merchant_names.get(x["merchant"], x["merchant"])
                seen = visible[x["merchant"]]
                for k in ("rank", "expectedGmv", "roi", "customersReached"):
                    if x.get(k) is not None:
                        seen[f"lead {node['id']}:{k}"] = x[k]
    assert len(visible) > 20
    assert_no_leak(visible, merchant_private(snap, set(roster)), f"agency {api.agency} leads")  # type: ignore[attr-defined]


def test_figures_before_and_after_a_write_reveal_nothing(policy_api: Api, tmp_path: Path) -> None:
    """Merchant m0 reads its list before and after other merchants' collaborations are
    recorded: no difference or ratio of what it sees gives their GMV or orders."""
    import sqlite3

    src = policy_api.store
    copy = tmp_path / "s.db"
    with sqlite3.connect(src.path) as a, sqlite3.connect(copy) as b:  # type: ignore[attr-defined]
        a.backup(b)
    store = SQLiteStore(copy)
    service = EngineService(store, tmp_path / "cache")
    keys = {"m0": "w-m0"}
    ring = KeyRing({"w-m0": Principal.parse("merchant:m0")})
    limits = Limits(timeout_s=120, rate_per_s=0.0, internal_rate_per_s=0.0)
    url, server, thread = serve(create_app(service, ring, production=False, limits=limits))
    api = Api(url, keys, store, service)  # type: ignore[arg-type]
    try:
        listed = sweep_match_list(api, "m0", "m0", defaultdict(dict))
        written = listed[5:300:25][:12]
        rng = np.random.default_rng(7)
        # m1's products (another merchant's sales, private to m0), one per written talent
        products = [p for p, m in service.snapshot.product_merchant.items() if m == "m1"]
        rows, new = [], {}
        for i, t in enumerate(written):
            gmv, orders = float(rng.uniform(2e4, 2e6)), int(rng.integers(20, 4000))
            rows.append(
                {
                    "src": t,
                    "dst": products[i % len(products)],
                    "collab_id": f"policy-write-{i}",
                    "gmv": gmv,
                    "orders": orders,
                    "fee": float(rng.uniform(1e3, 1e5)),
                    "time": "2026-11-20",
                    "campaign": None,
                }
            )
            new[t] = {"new_gmv": [gmv], "new_orders": [float(orders)]}

        def sweep(label: str) -> Visible:
            seen: Visible = defaultdict(dict)
            sweep_match_list(api, "m0", "m0", seen)
            sweep_why_not(api, "m0", "m0", written, seen)
            return seen

        before = sweep("before")
        store.write([RelBatch.of("PROMOTED", "Talent", rows)])
        service.refresh()
        assert service.snapshot.version == store.version()
        after = sweep("after")
        visible: Visible = defaultdict(dict)
        for t in written:
            for k, v in before[t].items():
                visible[t][f"before {k}"] = v
            for k, v in after[t].items():
                visible[t][f"after {k}"] = v
            assert after[t] != before[t], f"{t}'s figures did not move: the write is not seen"
        private = private_values(service.snapshot, "m0", set())
        for t, v in new.items():
            private[t].update(v)
        assert_no_leak(visible, private, "merchant m0 comparing figures around a write")
    finally:
        api.client.close()
        server.should_exit = True
        thread.join(timeout=10)
        store.close()


def test_every_merchant_and_agency_field_as_each_role(policy_api: Api) -> None:
    """The merchant directory, other merchants' and agencies' fields and audience overlaps,
    read as a merchant and as an agency: other merchants' customer aggregates and other
    agencies' roster analytics are refused, and no merchant's or talent's private value is
    derivable from what is answered."""
    api, snap = policy_api, policy_api.service.snapshot
    f = snap.features
    agency = api.agency  # type: ignore[attr-defined]
    other_agency = next(a for a in sorted(snap.agency_roster) if a != agency)
    for who, own_agency in (("m0", None), ("agency", agency)):
        by_merchant: Visible = defaultdict(dict)
        by_talent: Visible = defaultdict(dict)
        after = ""
        while True:
            cursor = f', after: "{after}"' if after else ""
            body = _q(
                api,
                f"{{ merchants(first: 100{cursor}) {{ edges {{ node {{ id categories "
                "products(first: 20) { id price } audienceSummary { buyers categories "
                "{ value } } } } pageInfo { hasNextPage endCursor } } }",
                who,
            )
            assert all("path" in e for e in body.get("errors", [])), body["errors"]
            refused = {e["path"][2] for e in body.get("errors", [])}
            for e in body.get("errors", []):
                assert e["extensions"]["code"] == "FORBIDDEN", e
            for i, edge in enumerate(body["data"]["merchants"]["edges"]):
                n = edge["node"]
                if n["id"] != "m0" or who != "m0":
                    assert n["audienceSummary"] is None and i in refused, (who, n["id"])
                else:
                    assert n["audienceSummary"]["buyers"] == len(f.merchant_buyers[0].indices)
                for k, p in enumerate(n["products"]):
                    by_merchant[n["id"]][f"product[{k}] price"] = p["price"]
            page = body["data"]["merchants"]["pageInfo"]
            if not page["hasNextPage"]:
                break
            after = page["endCursor"]
        analytics = (
            "rosterReach rosterOverlap(first: 20) { a b shared shareOfSmaller jaccard } "
            "categoryGaps(first: 5) { demandShare rosterShare } communities "
            "rosterEdges(perTalent: 2) { a b shared shareOfSmaller jaccard }"
        )
        for a in (own_agency, other_agency):
            if a is None:
                continue
            body = _q(api, f'{{ agency(id: "{a}") {{ id name {analytics} }} }}', who)
            if a == own_agency:
                assert "errors" not in body, body
                for o in body["data"]["agency"]["rosterOverlap"]:
                    for k in ("shared", "shareOfSmaller", "jaccard"):
                        by_talent[o["a"]][f"overlap with {o['b']}:{k}"] = o[k]
                # the explorer's network: both ends see the edge, as overlapWith does
                for o in body["data"]["agency"]["rosterEdges"]:
                    for x, y in ((o["a"], o["b"]), (o["b"], o["a"])):
                        for k in ("shared", "shareOfSmaller", "jaccard"):
                            by_talent[x][f"overlap with {y}:{k}"] = o[k]
            else:
                codes = {e["extensions"]["code"] for e in body.get("errors", [])}
                assert codes == {"FORBIDDEN"}, body
                assert body["data"]["agency"]["name"], "siblings of a refused field answered"
        talents = [str(t) for t in f.talent_ids[:: max(f.n_talents // 40, 1)]]
        ids = json.dumps(talents[1:21])
        body = _q(
            api,
            f'{{ talent(id: "{talents[0]}") {{ overlapWith(ids: {ids}) '
            "{ other shared shareOfSmaller jaccard } } }",
            who,
        )
        for o in body["data"]["talent"]["overlapWith"]:
            for k in ("shared", "shareOfSmaller", "jaccard"):
                by_talent[o["other"]][f"overlap with {talents[0]}:{k}"] = o[k]
        roster = set(snap.agency_roster[agency]) if who == "agency" else set()
        m_private = merchant_private(snap, roster)
        if who == "m0":
            del m_private["m0"]
        assert_no_leak(by_merchant, m_private, f"{who} reading the merchant directory")
        merchant = "m0" if who == "m0" else None
        assert_no_leak(by_talent, private_values(snap, merchant, roster), f"{who} overlaps")


# -- service providers --------------------------------------------------------------------------

PROVIDER_MATCH_FIELDS = (
    "rank provider listPrice expectedLift engagements inCategories medianLift tooFew "
    "extraGmvPerYuan evidence"
)


def engagement_private(service: EngineService, merchant: str | None, by: str) -> Private:
    """Engagements' values a viewer may not see, grouped ``by`` provider or merchant: each
    engagement's fee, GMV before and during, their ratio and log ratio (the raw outcome), of
    every merchant but ``merchant`` (the viewer's own)."""
    m = provider_track(service).market
    e = m.engagements
    out: Private = defaultdict(lambda: defaultdict(list))
    for i in range(len(e)):
        mid = str(m.merchant_ids[e.merchant[i]])
        if mid == merchant:
            continue
        key = str(m.provider_ids[e.provider[i]]) if by == "provider" else mid
        v = out[key]
        v["fee"].append(float(e.fee[i]))
        v["gmv_before"].append(float(e.gmv_before[i]))
        if np.isfinite(e.gmv_during[i]):
            v["gmv_during"].append(float(e.gmv_during[i]))
            v["outcome"] += [
                float(e.gmv_during[i] / e.gmv_before[i]),
                float(np.log(e.gmv_during[i] / e.gmv_before[i])),
            ]
    return {k: dict(v) for k, v in out.items()}


def test_service_provider_lists_reveal_no_engagement(policy_api: Api) -> None:
    """m0's ranked providers (every provider, evidence and all) and every provider's public
    profile: no other merchant's engagement fee, GMV or raw outcome derivable, per provider;
    other providers' engagements, clients and leads refused."""
    api = policy_api
    m = provider_track(api.service).market
    visible: Visible = defaultdict(dict)
    for who in ("m0", "m1"):
        merchant = who
        q = (
            f'{{ serviceProviders(merchant: "{merchant}", first: {len(m.provider_ids)}) '
            f"{{ {PROVIDER_MATCH_FIELDS} }} }}"
        )
        body = _q(api, q, who)
        assert "errors" not in body, body["errors"]
        rows = body["data"]["serviceProviders"]
        assert len(rows) == len(m.provider_ids)
        for x in rows:
            seen = visible[x["provider"]]
            for k in ("rank", "listPrice", "expectedLift", "engagements", "inCategories"):
                if x[k] is not None:
                    seen[f"{who}:{k}"] = x[k]
            for k in ("medianLift", "extraGmvPerYuan"):
                if x[k] is not None:
                    seen[f"{who}:{k}"] = x[k]
            for line in x["evidence"]:
                add_text(visible, x["provider"], who, line)
            if x["inCategories"] < 5:
                assert x["tooFew"] and x["medianLift"] is None, x
    for p in m.provider_ids:
        body = _q(api, f'{{ serviceProvider(id: "{p}") {{ id name kind listPrice }} }}', "m0")
        assert "errors" not in body
        if body["data"]["serviceProvider"]["listPrice"] is not None:
            visible[str(p)]["profile:listPrice"] = body["data"]["serviceProvider"]["listPrice"]
        for ask in ("engagements { fee gmvDuring }", "clients", "leads(first: 5) { merchant }"):
            body = _q(api, f'{{ serviceProvider(id: "{p}") {{ {ask} }} }}', "m0")
            assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
            for e in body["errors"]:
                add_text(visible, str(p), "error", e["message"])
    # m0's own engagements' values are its own: the private values are everyone else's, and
    # m1's list was read too, so m1's count as well (the attacker holds both keys)
    private = engagement_private(api.service, "m0", "provider")
    assert_no_leak(visible, private, "merchants m0 and m1 reading service provider lists")


def test_provider_leads_reveal_nothing_of_merchants(policy_api: Api) -> None:
    """A provider's leads: eligible merchants it does not serve, named by public values and
    its own expected lift; no merchant's engagement values with other providers derivable;
    another provider's data refused."""
    api = policy_api
    f = api.service.snapshot.features
    m = provider_track(api.service).market
    me = api.provider  # type: ignore[attr-defined]
    body = _q(
        api,
        f'{{ serviceProvider(id: "{me}") {{ clients engagements {{ id merchant fee gmvDuring }} '
        "leads(first: 100) { rank merchant merchantName categories expectedLift } } }",
        "provider",
    )
    assert "errors" not in body, body["errors"]
    sp = body["data"]["serviceProvider"]
    leads = sp["leads"]
    assert len(leads) == 100
    bad = {str(x) for x in f.merchant_ids[f.merchant_risk >= 1.0]}
    assert bad, "the s market should have a merchant excluded for compliance"
    named = {x["merchant"] for x in leads}
    assert not named & bad
    assert not named & set(sp["clients"])
    visible: Visible = defaultdict(dict)
    for x in leads:
        assert x["merchantName"] == api.service.snapshot.merchant_names.get(x["merchant"])
        visible[x["merchant"]]["lead:rank"] = x["rank"]
        visible[x["merchant"]]["lead:expectedLift"] = x["expectedLift"]
    private = engagement_private(api.service, None, "merchant")
    mine = set(np.nonzero(m.provider_ids == me)[0])
    e = m.engagements
    for i in range(len(e)):  # its own engagements it sees: only the others are private
        if e.provider[i] in mine:
            mid = str(m.merchant_ids[e.merchant[i]])
            for v in private.get(mid, {}).values():
                for x in (e.fee[i], e.gmv_before[i], e.gmv_during[i]):
                    if x in v:
                        v.remove(x)
    assert_no_leak(visible, private, f"provider {me} reading its leads")
    other = next(str(p) for p in m.provider_ids if str(p) != me)
    for ask in ("engagements { fee }", "clients", "leads(first: 3) { merchant }"):
        body = _q(api, f'{{ serviceProvider(id: "{other}") {{ {ask} }} }}', "provider")
        assert [x["extensions"]["code"] for x in body["errors"]] == ["FORBIDDEN"]
    body = _q(api, '{ serviceProviders(merchant: "m0") { provider } }', "provider")
    assert [x["extensions"]["code"] for x in body["errors"]] == ["FORBIDDEN"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-3, 3), max_size=40), st.integers(0, 3))
def test_percentile_is_each_values_mid_rank(ints: list[int], scale: int) -> None:
    """Against its definition, value by value: the share below it plus half the share equal."""
    x = np.array(ints, dtype=np.float64) / (10.0**scale)
    got = percentile(x)
    want = [100.0 * ((x < v).sum() + (x == v).sum() / 2.0) / len(x) for v in x]
    assert got.tolist() == pytest.approx(want, abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(-3, 3), min_size=1, max_size=40),
    st.integers(-3, 3),
    st.lists(st.booleans(), min_size=40, max_size=40),
    st.booleans(),
)
def test_percentile_beside_a_common_value_is_the_full_sort_s_to_the_bit(
    ints: list[int], common_value: int, pick: list[bool], wrong: bool
) -> None:
    """A caller's mask of entries sharing one value sorts only the rest: the same bits; a
    mask whose entries differ (or a NaN) falls back to the full sort."""
    x = np.array(ints, dtype=np.float64) / 7.0
    mask = np.array(pick[: len(x)])
    x[mask] = common_value / 7.0
    if wrong and mask.sum() > 1:
        x[np.flatnonzero(mask)[-1]] += 1.0  # the mask is wrong now
    assert np.array_equal(percentile(x, mask), percentile(x))
    y = x.copy()
    y[0] = np.nan
    assert np.array_equal(percentile(y, mask), percentile(y), equal_nan=True)
    # a mask of another length is not a claim about these values: the full sort
    for other in (np.ones(len(x) + 1, dtype=bool), np.ones(max(len(x) - 1, 0), dtype=bool)):
        assert np.array_equal(percentile(x, other), percentile(x))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(-3, 3), min_size=1, max_size=40),
    st.lists(st.tuples(st.integers(0, 39), st.integers(-4, 4)), max_size=12),
)
def test_percentile_among_a_reference_places_only_the_moved_values(
    ints: list[int], moves: list[tuple[int, int]]
) -> None:
    """A track record against the calibration's: a value still equal to its reference has the
    reference's own percentile, a moved one its mid-rank among the reference values, and a few
    values placed alone (a patched ranking's) get the same bits as among all."""
    ref = np.array(ints, dtype=np.float64) / 7.0
    x = ref.copy()
    for i, v in moves:
        x[i % len(x)] = v / 7.0
    base = percentile(ref)
    got = percentile_among(x, ref, base)
    want = [100.0 * ((ref < v).sum() + (ref == v).sum() / 2.0) / len(ref) for v in x]
    assert got.tolist() == pytest.approx(want, abs=1e-9)
    moved = x != ref
    assert np.array_equal(got[~moved], base[~moved])
    if not moved.any():
        assert got is base  # nothing to copy
    for rows in (np.arange(min(3, len(x))), np.arange(len(x))):  # a few alone, or sorted
        assert np.array_equal(percentile_among(x[rows], ref), got[rows])
