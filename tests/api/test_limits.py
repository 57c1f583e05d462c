"""Per-key rate limits: token buckets, their settings, and the documented HTTP 429."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from kolmatch.api.app import create_app
from kolmatch.api.auth import KeyRing, Principal
from kolmatch.api.errors import RateLimited
from kolmatch.api.limits import Limits, RateLimiter
from kolmatch.errors import BadArgument
from tests.api.conftest import Api, serve

SECTION = "Bad input: GraphQL requests"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "shared file"])
def limiter(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., RateLimiter]:
    """RateLimiter in the process, and on a shared SQLite file: the same behaviour."""

    def make(clock: Clock | None = None, **kw: Any) -> RateLimiter:
        if request.param == "shared file":
            kw["rate_file"] = str(tmp_path / "buckets.db")
        return RateLimiter(Limits(**kw), **({"clock": clock} if clock else {}))

    return make


def test_a_bucket_allows_its_burst_then_its_rate(limiter: Callable[..., RateLimiter]) -> None:
    clock = Clock()
    rl = limiter(clock, rate_per_s=2, burst=10)
    for _ in range(10):
        rl.take("k", internal=False)
    with pytest.raises(RateLimited) as refused:
        rl.take("k", internal=False)
    assert refused.value.retry_after == 1  # half a second, rounded up to whole seconds
    clock.now += 0.5
    rl.take("k", internal=False)  # one token refilled
    with pytest.raises(RateLimited):
        rl.take("k", internal=False)
    clock.now += 1000  # refills up to the burst, no further
    rl.take("k", internal=False, n=10)
    with pytest.raises(RateLimited) as refused:
        rl.take("k", internal=False, n=4)
    assert refused.value.retry_after == 2  # 4 tokens at 2 a second


def test_a_refused_take_spends_nothing(limiter: Callable[..., RateLimiter]) -> None:
    clock = Clock()
    rl = limiter(clock, rate_per_s=1, burst=10)
    rl.take("k", internal=False, n=8)
    with pytest.raises(RateLimited):
        rl.take("k", internal=False, n=5)
    rl.take("k", internal=False, n=2)  # the 2 left are still there


def test_keys_have_their_own_buckets_and_internal_keys_their_own_settings(
    limiter: Callable[..., RateLimiter],
) -> None:
    clock = Clock()
    rl = limiter(clock, rate_per_s=1, burst=10, internal_rate_per_s=1, internal_burst=30)
    rl.take("a", internal=False, n=10)
    rl.take("b", internal=False, n=10)  # another key: untouched by a's spending
    rl.take("i", internal=True, n=30)
    for key, internal in (("a", False), ("b", False), ("i", True)):
        with pytest.raises(RateLimited):
            rl.take(key, internal=internal)


def _take_all(rate_file: str, start: Any, out: Any) -> None:
    """A server process's share: take one token at a time until refused; report how many."""
    rl = RateLimiter(Limits(rate_per_s=0.001, burst=40, rate_file=rate_file))
    start.wait()
    n = 0
    try:
        while True:
            rl.take("k", internal=False)
            n += 1
    except RateLimited:
        out.put(n)


def test_processes_sharing_a_rate_file_share_one_budget(tmp_path: Path) -> None:
    """kolmatch serve --workers N: a key gets its burst across the processes, not N times it."""
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_take_all, args=(str(tmp_path / "b.db"), start, out)) for _ in range(3)
    ]
    for p in procs:
        p.start()
    start.set()
    taken = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert sum(taken) == 40, taken  # within the 0.04 tokens refilled meanwhile


def test_the_rate_file_comes_from_the_environment() -> None:
    assert Limits.from_env({"KOLMATCH_RATE_FILE": "/x/b.db"}).rate_file == "/x/b.db"
    assert Limits.from_env({}).rate_file is None


def test_a_rate_of_zero_turns_the_limit_off() -> None:
    rl = RateLimiter(Limits(rate_per_s=0, internal_rate_per_s=0))
    for _ in range(10_000):
        rl.take("k", internal=False)
        rl.take("i", internal=True)


def test_settings_come_from_the_environment_with_documented_defaults() -> None:
    d = Limits.from_env({})
    assert (d.rate_per_s, d.burst, d.internal_rate_per_s, d.internal_burst) == (20, 100, 200, 400)
    e = Limits.from_env(
        {
            "KOLMATCH_RATE_PER_S": "2.5",
            "KOLMATCH_RATE_BURST": "12",
            "KOLMATCH_INTERNAL_RATE_PER_S": "0",
            "KOLMATCH_INTERNAL_RATE_BURST": "",
        }
    )
    assert (e.rate_per_s, e.burst, e.internal_rate_per_s, e.internal_burst) == (2.5, 12, 0, 400)


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"KOLMATCH_RATE_PER_S": "fast"}, "KOLMATCH_RATE_PER_S"),
        ({"KOLMATCH_RATE_BURST": "1.5"}, "KOLMATCH_RATE_BURST"),
        ({"KOLMATCH_RATE_PER_S": "-1"}, "KOLMATCH_RATE_PER_S"),
        ({"KOLMATCH_RATE_PER_S": "inf"}, "KOLMATCH_RATE_PER_S"),
        ({"KOLMATCH_INTERNAL_RATE_BURST": "3"}, "at least the batch size 10"),
    ],
)
def test_bad_settings_are_refused_naming_the_variable(env: dict[str, str], says: str) -> None:
    with pytest.raises(BadArgument, match=says):
        Limits.from_env(env)


def test_a_spent_key_gets_429_with_retry_after_and_others_are_served(api: Api, ledger: Any) -> None:
    ledger.case(SECTION, "a key over its rate: 429 with Retry-After, other keys served").tried()
    ring = KeyRing({"k-a": Principal("merchant", "m0"), "k-b": Principal("merchant", "m1")})
    app = create_app(api.service, ring, limits=Limits(rate_per_s=0.01, burst=10))
    url, server, thread = serve(app)
    me = {"query": "{ me { kind id } }"}

    def post(key: str, body: Any) -> httpx.Response:
        return httpx.post(f"{url}/graphql", json=body, headers={"Authorization": f"Bearer {key}"})

    try:
        assert post("k-a", [me] * 6).status_code == 200  # a batch costs one per operation
        for _ in range(4):
            assert post("k-a", me).json()["data"]["me"]["id"] == "m0"
        r = post("k-a", me)
        assert r.status_code == 429
        wait = int(r.headers["retry-after"])
        assert 1 <= wait <= 100
        (err,) = r.json()["errors"]
        assert err["extensions"] == {"code": "RATE_LIMITED", "retryAfter": wait}
        assert "per API key" in err["message"] and "data" not in r.json()
        assert post("k-b", me).json()["data"]["me"]["id"] == "m1"  # its own bucket
        # a batch larger than what is left is refused whole: nothing of it runs
        assert post("k-b", [me] * 10).status_code == 429
        assert post("k-b", me).status_code == 200
        # an unknown key is refused before any bucket: 401, not 429
        assert post("nope", me).status_code == 401
    finally:
        server.should_exit = True
        thread.join(timeout=10)
