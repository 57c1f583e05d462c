"""API keys: every lookup compares against every key in constant time; keys never logged."""

from __future__ import annotations

import hmac
import logging
from typing import Any

import pytest

from kolmatch.api.auth import KeyRing, Principal, load_keys


def test_every_lookup_compares_every_key_with_compare_digest(
    monkeypatch: pytest.MonkeyPatch, ledger: Any
) -> None:
    case = ledger.case("Access boundaries", "API key lookup: constant-time, no early exit")
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    ring = KeyRing({f"key-{i}": Principal.parse(f"merchant:m{i}") for i in range(50)})
    for given in ["key-0", "key-25", "key-49", "nope", "key-4", "key-"]:
        calls.clear()
        found = ring.principal(given)
        case.tried()
        assert len(calls) == 50, "a lookup stopped early: its time would tell where it matched"
        assert all(b == given.encode() for _, b in calls)
        assert (found is not None) == (given in {f"key-{i}" for i in range(50)})
    assert ring.principal("") is None and ring.principal(None) is None


def test_bad_key_config_names_the_place_and_never_echoes_a_key(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-live-0123456789abcdef"
    monkeypatch.setenv("KOLMATCH_API_KEYS", f"{secret}=emperor:zz")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(Exception) as err:
        load_keys()
    assert "--keys" in str(err.value) and "cdef" in str(err.value)
    assert secret not in str(err.value) and secret not in caplog.text
