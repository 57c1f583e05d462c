"""The audit log: an append-only, fsync'd JSON-lines record of every write through the engine."""

from __future__ import annotations

import json
import os
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kolmatch.errors import StoreUnavailable
from kolmatch.jsonio import dumps

__all__ = ["AUDIT_FILE", "AuditLog", "audit_path"]

#: The log's file name when ``KOLMATCH_AUDIT_LOG`` is not set: beside the feature cache folder.
AUDIT_FILE = "audit.jsonl"


def audit_path(cache_dir: str | Path | None = None) -> Path:
    """Where the audit log lives: ``KOLMATCH_AUDIT_LOG``, else ``audit.jsonl`` beside the cache.

    The cache folder is ``cache_dir``, else ``KOLMATCH_CACHE``, else ``.kolmatch/cache``, so
    the default log is ``.kolmatch/audit.jsonl``.

    Examples
    --------
    >>> import os
    >>> _ = os.environ.pop("KOLMATCH_AUDIT_LOG", None)
    >>> audit_path("/srv/kolmatch/cache").as_posix()
    '/srv/kolmatch/audit.jsonl'
    """
    explicit = os.environ.get("KOLMATCH_AUDIT_LOG")
    if explicit:
        return Path(explicit)
    cache = Path(cache_dir or os.environ.get("KOLMATCH_CACHE") or ".kolmatch/cache")
    return cache.parent / AUDIT_FILE


class AuditLog:
    """Appends one JSON object a line and fsyncs it before returning; never rewrites a line.

    A write is logged twice: an entry with ``"outcome": "pending"`` (who, when, what, the
    state before and the state it will write) is on disk *before* the store is written, and a
    second entry with the same ``id`` says how it ended (``written`` with the new graph
    version, ``refused`` when the store refused it in its own transaction, e.g. an id another
    server recorded a moment before, ``unchanged`` when the store found it already recorded,
    or ``failed``). A write that is refused before the store is touched (bad argument,
    conflict, forbidden) or that changes nothing (``unchanged``) is one entry. So a write the
    store holds always has its entry, even if the process dies between the two lines; a
    ``pending`` with no ending means the process died mid-write (compare the graph version).
    If the log cannot be written, the write is refused with
    :class:`~kolmatch.errors.StoreUnavailable` before touching the store.

    Entries hold the principal's role and id (``merchant:m3``), never an API key.

    Parameters
    ----------
    path
        The log file; its folder is created if missing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def append(self, entry: dict[str, Any]) -> str:
        """Append ``entry`` (with ``id`` and ``time`` added unless given); return its id.

        Raises
        ------
        StoreUnavailable
            If the log cannot be written or synced (a read-only folder, a full disk).
        """
        record = {"id": entry.get("id") or uuid.uuid4().hex, "time": _now(), **entry}
        line = dumps(record, ensure_ascii=False, sort_keys=True, default=str) + "\n"
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line.encode("utf-8"))
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise StoreUnavailable(
                    f"audit log {self.path}: {exc.strerror or exc}; nothing was written"
                ) from None
        return str(record["id"])

    def entries(self) -> list[dict[str, Any]]:
        """Every entry, oldest first (for tests and audits; the log is never rewritten)."""
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
