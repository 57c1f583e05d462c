"""Builds in a child process: the same as in process, errors named, stoppable."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kolmatch.engine.apart import build_features_apart, measure_calibration_apart
from kolmatch.engine.cache import latest_features, measure_calibration
from kolmatch.errors import Cancelled, StoreError
from kolmatch.graph.market import read_market
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from kolmatch.matching.features import build_features
from tests.matching.test_incremental import differences

#: The child's own error, its last line: the store it could not open, and why.
CANNOT_OPEN = r"kolmatch.errors.StoreUnavailable: cannot open .*nowhere does not exist"


def test_the_child_measures_what_the_process_would(tiny_market: Path, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "g.db")
    load_folder(tiny_market, store)
    here = measure_calibration(store)
    apart = measure_calibration_apart(store.uri, tmp_path / "cache", threading.Event())
    assert apart.identity == here.identity == store.identity()
    assert differences(apart.features, here.features) == []
    assert apart.record.promotions == here.record.promotions
    assert apart.record.gmv_rate == here.record.gmv_rate
    assert list((tmp_path / "cache").iterdir()) == []  # its files were read, then removed
    store.close()


@pytest.mark.parametrize(
    ("run", "what"),
    [
        (measure_calibration_apart, "measuring a calibration"),
        (build_features_apart, "rebuilding the features"),
    ],
)
def test_a_child_that_fails_says_why(run: Any, what: str, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "g.db"
    said = rf"{what} of .*nowhere.* failed \(exit status 1\): {CANNOT_OPEN}"
    with pytest.raises(StoreError, match=said):
        run(f"sqlite:///{missing}", tmp_path / "cache", threading.Event())


def test_a_stopped_measurement_kills_its_child(s_market: Path, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "g.db")
    load_folder(s_market, store)
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    t0 = time.monotonic()
    with pytest.raises(Cancelled):
        measure_calibration_apart(store.uri, tmp_path / "cache", stop)
    assert time.monotonic() - t0 < 3.0  # not the build's ~10 s at s
    store.close()


def test_the_child_builds_and_caches_what_the_process_would(
    tiny_market: Path, tmp_path: Path
) -> None:
    store = SQLiteStore(tmp_path / "g.db")
    load_folder(tiny_market, store)
    identity = build_features_apart(store.uri, tmp_path / "cache", threading.Event())
    assert identity == store.identity()
    cached = latest_features(store.uri, store.graph_id(), tmp_path / "cache")
    assert cached is not None and cached[1] == identity[1]
    here = build_features(read_market(store))
    assert differences(cached[0], here) == []
    store.close()


def test_a_child_whose_parent_ends_stops_at_once(s_market: Path, tmp_path: Path) -> None:
    """The child exits when the pipe its parent holds closes (a parent killed, or ending
    without closing its service), rather than building on for minutes."""
    import os
    import subprocess
    import sys

    store = SQLiteStore(tmp_path / "g.db")
    load_folder(s_market, store)
    store.close()
    watch, held = os.pipe()
    argv = ["-m", "kolmatch.engine.apart", "build", store.uri, str(tmp_path / "c"), str(watch)]
    child = subprocess.Popen([sys.executable, *argv], pass_fds=(watch,))
    os.close(watch)
    time.sleep(1.0)
    assert child.poll() is None  # building (~10 s at s)
    t0 = time.monotonic()
    os.close(held)  # the parent's end goes, as when it dies
    assert child.wait(timeout=10) == 3
    assert time.monotonic() - t0 < 2.0
