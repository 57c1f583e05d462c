"""Strict JSON out: what kolmatch prints or logs parses in any JSON reader.

Python's ``json`` writes ``NaN`` and ``Infinity``, which are not JSON (RFC 8259): a plan whose
gap is infinite or an evaluation whose interval is undefined broke ``jq`` and every strict
parser. Here a value that is not a finite number is written as ``null`` (not known), and
``allow_nan=False`` makes any that slips through an error rather than invalid output.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["dumps", "finite"]


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, +-inf) replaced by None, recursively.

    numpy scalars become Python numbers; tuples become lists.

    Examples
    --------
    >>> finite({"gap": float("inf"), "xs": (1.0, float("nan"))})
    {'gap': None, 'xs': [1.0, None]}
    """
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [finite(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """:func:`json.dumps` of :func:`finite` ``(obj)``, strict (``allow_nan=False``).

    Parameters
    ----------
    obj
        Any JSON-like value (dicts, lists, numbers, strings, numpy scalars and arrays).
    **kwargs
        Passed to :func:`json.dumps` (``indent``, ``ensure_ascii``, ``sort_keys``, ``default``).

    Examples
    --------
    >>> dumps({"roi": float("nan"), "n": np.int64(3)})
    '{"roi": null, "n": 3}'
    """
    import json

    return json.dumps(finite(obj), allow_nan=False, **kwargs)
