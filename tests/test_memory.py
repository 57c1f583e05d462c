"""A kolmatch process gives the large arrays it freed back to the machine, and a serving one
exempts its snapshot's objects from the garbage collector's walks."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

_SETTLE = r"""
import gc, weakref
from kolmatch.memory import settle_objects
gc.disable()  # (no collection but the settle's)
class Node: pass
n = Node(); n.me = n; gone = weakref.ref(n); del n  # garbage in a cycle
assert gone() is not None  # not yet collected
kept = [[i] for i in range(100_000)]  # a snapshot's many objects
settle_objects()
assert gone() is None  # collected before the freeze: a cycle is not kept for good
assert gc.get_freeze_count() >= len(kept)  # exempt from every later collection
m = Node(); m.me = m; later = weakref.ref(m); del m  # garbage after the freeze
settle_objects()  # again: unfrozen and collected first, then frozen: the same survivors
assert later() is None
assert gc.get_freeze_count() >= len(kept)
print("ok")
"""


def test_settling_collects_cycles_then_freezes_the_survivors() -> None:
    out = subprocess.run([sys.executable, "-c", _SETTLE], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


_FREE_HALF = r"""
import sys, numpy as np, psutil
p = psutil.Process()
x = np.ones(2**18); del x  # a first free of a mapped 2 MiB block raises glibc's threshold
kept = [np.ones(2**18) for _ in range(200)]  # so these come from the heap
before = p.memory_info().rss
del kept[::2]  # holes in the heap
if sys.argv[1] == "release":
    from kolmatch.memory import release_freed_memory
    assert release_freed_memory()
print((before - p.memory_info().rss) / (100 * 2**21))
"""


def _returned(mode: str) -> float:
    # the allocator as glibc sets it up by default: no tunables, no preloaded malloc
    drop = ("MALLOC_", "GLIBC_TUNABLES", "LD_PRELOAD")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    out = subprocess.run(
        [sys.executable, "-c", _FREE_HALF, mode], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    return float(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_freed_large_arrays_leave_the_process() -> None:
    pytest.importorskip("psutil")  # installed with Dask (the project's dask extra, CI's install)
    assert _returned("keep") < 0.2  # glibc's default keeps the holes (the reason for this)
    assert _returned("release") > 0.4  # measured 0.57: what whole free pages the heap has
