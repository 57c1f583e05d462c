"""Per-key rate limits: token buckets, their settings, and the documented HTTP 429."""

from __future__ import annotations

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


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    clock = Clock()
    rl = RateLimiter(Limits(rate_per_s=2, burst=10), clock=clock)
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


def test_a_refused_take_spends_nothing() -> None:
    clock = Clock()
    rl = RateLimiter(Limits(rate_per_s=1, burst=10), clock=clock)
    rl.take("k", internal=False, n=8)
    with pytest.raises(RateLimited):
        rl.take("k", internal=False, n=5)
    rl.take("k", internal=False, n=2)  # the 2 left are still there


def test_keys_have_their_own_buckets_and_internal_keys_their_own_settings() -> None:
    clock = Clock()
    rl = RateLimiter(
        Limits(rate_per_s=1, burst=10, internal_rate_per_s=1, internal_burst=30), clock=clock
    )
    rl.take("a", internal=False, n=10)
    rl.take("b", internal=False, n=10)  # another key: untouched by a's spending
    rl.take("i", internal=True, n=30)
    for key, internal in (("a", False), ("b", False), ("i", True)):
        with pytest.raises(RateLimited):
            rl.take(key, internal=internal)


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
