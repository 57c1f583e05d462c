"""How a kolmatch process gives the memory it freed back to the machine.

glibc's malloc serves a large request from its heap once a freed block of that size was
mapped (its threshold rises with every such free, up to 32 MiB), and the heap's free holes
stay resident. The feature build allocates and frees arrays of tens to hundreds of MiB, so a
process that had built the m market's features kept ~500 MiB it no longer used: a serving
process's whole life. :func:`release_freed_memory` hands the holes back (``malloc_trim``)
once a build is done, and while the build stacks its user blocks into whole-market matrices
(:func:`kolmatch.matching.user_partition.stack_rows`): each block freed there leaves a hole
the next stacked matrix (mapped, larger than any) cannot reuse, and the l market's user stage
rose from 13.2 to 18.0 GiB while it stacked. It sits at the package's top, not in the engine,
because the matching code calls it too (it changes no result, only what stays resident).

Measured at m (2 cores; docs/scale.md): mapping every block of 1 MiB or more instead
(``mallopt``) lowered the build's peak by only ~140 MiB (2,531 -> 2,395 MiB) and cost ~20% of
its time (page faults on every large temporary); trimming once afterwards was taken instead.

:func:`settle_objects` is the same idea for Python's own objects: a serving snapshot holds
millions (names, rosters, collaboration histories at m) that live as long as it does, and
every full collection of the cyclic garbage collector walks all of them. A write that
allocates a few hundred thousand small objects (a flag's note lists) paid ~50 ms per
100k lists for those walks; frozen, ~7 ms.
"""

from __future__ import annotations

import ctypes
import functools
import gc
from typing import Any

__all__ = ["release_freed_memory", "settle_objects"]


def settle_objects() -> None:
    """Collect garbage once, then exempt every surviving object from later collections.

    Call after a long-lived structure is built (a serving snapshot). Frozen objects are
    still freed when nothing refers to them; only a reference cycle among them outlives its
    use, until the next call (which unfreezes and collects first).

    Examples
    --------
    >>> import gc
    >>> settle_objects()
    >>> gc.get_freeze_count() > 0
    True
    >>> gc.unfreeze()  # (this example's process goes on as it was)
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def release_freed_memory() -> bool:
    """Return the C heap's free pages to the machine; False where the C library is not glibc.

    Examples
    --------
    >>> release_freed_memory() in (True, False)
    True
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@functools.cache
def _malloc_trim() -> Any:
    try:
        return ctypes.CDLL(None).malloc_trim  # the C library the process runs on
    except (OSError, AttributeError):
        return None
