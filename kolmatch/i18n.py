"""The reader's language, en or zh-CN: ``--lang``, ``KOLMATCH_LANG``, ``Accept-Language``."""

from __future__ import annotations

__all__ = ["DEFAULT_LANG", "LANGS", "negotiate"]

#: Languages kolmatch writes, in the order a tie is broken.
LANGS = ("en", "zh-CN")
DEFAULT_LANG = "en"


def negotiate(header: str | None) -> str:
    """The best of :data:`LANGS` for an ``Accept-Language`` header (``en`` when none fits).

    Parameters
    ----------
    header
        The header's value, e.g. ``"zh-CN,zh;q=0.9,en;q=0.8"``; ``None`` or empty for none.

    Returns
    -------
    str
        ``"zh-CN"`` for any Chinese tag ranked above English, else ``"en"``.

    Examples
    --------
    >>> negotiate("zh-CN,zh;q=0.9,en;q=0.8"), negotiate("en-GB"), negotiate("fr, zh;q=0.5")
    ('zh-CN', 'en', 'zh-CN')
    >>> negotiate(None), negotiate("q=;;,")
    ('en', 'en')
    """
    best, best_q = DEFAULT_LANG, -1.0
    for part in (header or "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            name, _, value = p.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        primary = tag.strip().lower().split("-")[0]
        lang = {"zh": "zh-CN", "en": "en"}.get(primary)
        if lang is not None and q > best_q and q > 0:
            best, best_q = lang, q
    return best
