"""API keys and principals: who is asking, compared in constant time, never logged."""

from __future__ import annotations

import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path

from kolmatch.errors import BadArgument

__all__ = ["KeyRing", "Principal", "load_keys"]


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: ``merchant:<id>``, ``agency:<id>``, ``provider:<id>`` (a
    service provider) or ``internal``."""

    kind: str
    id: str | None = None

    @classmethod
    def parse(cls, text: str) -> Principal:
        """Read ``merchant:m3``, ``agency:a1``, ``provider:sp2`` or ``internal``.

        Raises
        ------
        BadArgument
            If the text names no known kind.

        Examples
        --------
        >>> Principal.parse("merchant:m3")
        Principal(kind='merchant', id='m3')
        >>> Principal.parse("provider:sp2")
        Principal(kind='provider', id='sp2')
        """
        if text == "internal":
            return cls("internal")
        kind, _, ident = text.partition(":")
        if kind in ("merchant", "agency", "provider") and ident:
            return cls(kind, ident)
        raise BadArgument(
            "principal",
            f"expected merchant:<id>, agency:<id>, provider:<id> or internal, got {text!r}",
        )

    @property
    def internal(self) -> bool:
        return self.kind == "internal"

    def is_merchant(self, merchant_id: str) -> bool:
        return self.internal or (self.kind == "merchant" and self.id == merchant_id)

    def is_agency(self, agency_id: str) -> bool:
        return self.internal or (self.kind == "agency" and self.id == agency_id)

    def is_provider(self, provider_id: str) -> bool:
        return self.internal or (self.kind == "provider" and self.id == provider_id)

    def __str__(self) -> str:
        return self.kind if self.id is None else f"{self.kind}:{self.id}"


class KeyRing:
    """API keys to principals. Lookup compares against every key in constant time."""

    def __init__(self, keys: dict[str, Principal]) -> None:
        self._keys = [(k.encode(), p) for k, p in keys.items()]

    def __len__(self) -> int:
        return len(self._keys)

    def principal(self, key: str | None) -> Principal | None:
        """The key's principal, or None; the time taken does not depend on where it matched."""
        if not key:
            return None
        given = key.encode()
        found = None
        for k, p in self._keys:
            if hmac.compare_digest(k, given):
                found = p
        return found


def load_keys(path: str | Path | None = None) -> KeyRing:
    """Keys from a JSON file ``{"<key>": "merchant:m3", ...}`` or ``KOLMATCH_API_KEYS``.

    The file is ``path`` or ``KOLMATCH_API_KEYS_FILE``; otherwise ``KOLMATCH_API_KEYS``
    holds ``key=principal`` pairs separated by commas. Keys never live in code.

    Raises
    ------
    BadArgument
        If the file or variable cannot be read, naming where.
    """
    file = path or os.environ.get("KOLMATCH_API_KEYS_FILE")
    raw: dict[str, str] = {}
    if file:
        try:
            data = json.loads(Path(file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BadArgument("--keys", f"cannot read API keys from {file}: {exc}") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise BadArgument("--keys", f"{file}: expected an object of key: principal strings")
        raw = data
    else:
        for i, pair in enumerate(filter(None, os.environ.get("KOLMATCH_API_KEYS", "").split(","))):
            key, sep, who = pair.partition("=")
            if not sep or not key.strip():
                raise BadArgument("KOLMATCH_API_KEYS", f"entry {i + 1}: expected key=principal")
            raw[key.strip()] = who.strip()
    keys = {}
    for k, who in raw.items():
        try:
            keys[k] = Principal.parse(who)
        except BadArgument as exc:
            raise BadArgument("--keys", f"key ending ...{k[-4:]}: {exc.reason}") from None
    return KeyRing(keys)
