"""The feature build on a Dask cluster equals the build in process; an unreachable one is said."""

from __future__ import annotations

import gc
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import distributed  # kolmatch[dask], in the dev extra: CI runs these tests, never skips them
import numpy as np
import pytest
import scipy.sparse as sp

from kolmatch.cli import main
from kolmatch.engine import distributed as kd
from kolmatch.engine.cache import cached_features, cached_rankings
from kolmatch.engine.distributed import (
    DASK_OPTION_VARIABLE,
    SHARED_DIR_VARIABLE,
    DaskPartitions,
    map_shared,
    partitions_on,
    write_shared,
)
from kolmatch.errors import BadArgument, StoreUnavailable
from kolmatch.graph.market import MarketGraph
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from kolmatch.matching.features import MarketFeatures, build_features
from kolmatch.matching.score import rank_merchants
from tests.conftest import free_port
from tests.matching.test_features import assert_features_close, market_graph
from tests.matching.test_ranking_partition import assert_same_rankings


@pytest.fixture(scope="module")
def s_graph(s_market: Path, tmp_path_factory: pytest.TempPathFactory) -> MarketGraph:
    return market_graph(s_market, tmp_path_factory.mktemp("db") / "s.db")


@pytest.fixture(scope="module")
def s_in_process(s_graph: MarketGraph) -> MarketFeatures:
    return build_features(s_graph)


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    """Two worker processes of one thread each, as on two machines (no dashboard, no port)."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as c:
        yield c


@pytest.mark.parametrize("shared_dir", [None, "off"])
def test_the_features_built_on_two_dask_workers_are_those_built_in_process(
    shared_dir: str | None,
    s_graph: MarketGraph,
    s_in_process: MarketFeatures,
    cluster: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The shared arrays mapped from a file by the workers (this machine's: the default), or
    sent to each by Dask (``off``): the same features as in process either way."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where the default writes them: watched
    monkeypatch.setattr(kd.tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    with distributed.Client(cluster, set_as_default=False) as client:
        partitions = DaskPartitions(client, shared_dir=shared_dir)
        on_dask = build_features(s_graph, partitions=partitions)
        # both workers took parts: the build was spread, not run on one of them
        ran = client.run(lambda dask_worker: len(dask_worker.state.log) > 0)
        held = client.run(lambda: len(kd._mapped))
    monkeypatch.undo()
    assert partitions.mapped == (shared_dir is None)
    assert sorted(ran.values()) == [True, True]
    assert sorted(held.values()) == [0, 0]  # every worker let go of the build's files
    assert not list(tmp_path.iterdir())  # and they were deleted
    assert len(s_graph.node("User")) > 25_000  # the s market is several user partitions
    assert_features_close(s_in_process, on_dask, rtol=1e-9)


def _scaled(part: int, shared: dict[str, object]) -> float:
    if part < 0:
        raise ValueError(f"part {part} refused")
    return float(part * shared["w"][part % 3])  # type: ignore[index]


def test_a_window_of_parts_is_on_the_cluster_and_results_come_in_part_order(
    cluster: object, tmp_path: Path
) -> None:
    """The parts are drawn as results are taken (a window of two a worker), so this process
    holds one result at a time and the workers a window's parts, not every part at once."""
    drawn: list[int] = []

    def parts(n: int) -> Iterator[int]:
        for i in range(n):
            drawn.append(i)
            yield i

    shared = {"w": np.array([1.0, 2.0, 3.0])}
    with distributed.Client(cluster, set_as_default=False) as client:
        partitions = DaskPartitions(client, shared_dir=str(tmp_path))
        assert partitions.window() == 4  # two workers
        results = partitions(_scaled, parts(30), shared)
        first = next(results)
        assert first == 0.0 and len(drawn) == 4  # the window, not the 30 parts
        rest = list(results)
        assert [first, *rest] == [i * [1.0, 2.0, 3.0][i % 3] for i in range(30)]
        assert partitions.mapped and not list(tmp_path.iterdir())
        assert list(DaskPartitions(client, shared_dir=str(tmp_path))(_scaled, [], shared)) == []
        # a part's error is the caller's, and the build's file goes with it
        with pytest.raises(ValueError, match="part -1 refused"):
            list(partitions(_scaled, [2, -1, 3], shared))
        assert not list(tmp_path.iterdir())
        assert sorted(client.run(lambda: len(kd._mapped)).values()) == [0, 0]


def test_shared_values_round_trip_through_a_mapped_file_as_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    value = {
        "csr": sp.random(300, 40, density=0.05, format="csr", random_state=3),
        "fortran": np.asfortranarray(rng.random((50, 4))),
        "strided": rng.random(100)[::3],  # not contiguous: in the pickle stream instead
        "ints": np.arange(7, dtype=np.int32),
        "names": np.array(["a", None, "c"], dtype=object),
        "n": 5,
    }
    f = write_shared(value, tmp_path)
    got, again = map_shared(f), map_shared(f)
    nothing = write_shared({"a": np.zeros(0), "b": np.zeros((0, 3))}, tmp_path)
    assert Path(nothing.path).stat().st_size == 0
    assert map_shared(nothing)["b"].shape == (0, 3)
    assert (got["csr"] != value["csr"]).nnz == 0 and got["csr"].shape == (300, 40)
    for k in ("fortran", "strided", "ints"):
        assert np.array_equal(got[k], value[k]) and got[k].dtype == value[k].dtype
    assert got["fortran"].flags.f_contiguous
    assert got["names"].tolist() == ["a", None, "c"] and got["n"] == 5
    # the arrays' bytes are in the file, at page boundaries, not in the stream
    assert len(f.header) < 4_000 < Path(f.path).stat().st_size
    assert all(offset % 4096 == 0 for offset, _ in f.spans)
    # copy-on-write: a write stays in the process that made it
    got["ints"][0] = 99
    assert again["ints"][0] == 0 and map_shared(f)["ints"][0] == 0
    empty = write_shared({"n": 1}, tmp_path)
    assert map_shared(empty) == {"n": 1}


def test_a_shared_folder_that_cannot_be_written_is_a_bad_argument_naming_it(
    cluster: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "not-there"
    monkeypatch.setenv(SHARED_DIR_VARIABLE, str(missing))
    with distributed.Client(cluster, set_as_default=False) as client:
        partitions = DaskPartitions(client)
        with pytest.raises(BadArgument, match="not-there: cannot write there") as err:
            list(partitions(lambda part, shared: part, [1], 0))
    assert err.value.argument == SHARED_DIR_VARIABLE


class _ClientOfWorkersElsewhere:
    """What a client of workers on other machines sees of the probe: one worker reads the
    file, the other finds nothing at its path (workers on two machines cannot run here)."""

    def run(self, fn: object, path: str) -> dict[str, str | None]:
        return {"tcp://here:1": Path(path).read_text(), "tcp://elsewhere:1": None}


def test_workers_that_cannot_read_the_folder_get_the_arrays_sent_or_a_named_error(
    tmp_path: Path,
) -> None:
    client = _ClientOfWorkersElsewhere()
    default = DaskPartitions(client, shared_dir="")
    assert default._shared_folder() is None  # sent to each, as before
    named = DaskPartitions(client, shared_dir=str(tmp_path))
    with pytest.raises(BadArgument, match=r"\['tcp://elsewhere:1'\] cannot read") as err:
        named._shared_folder()
    assert err.value.argument == SHARED_DIR_VARIABLE and not list(tmp_path.iterdir())


def test_a_default_folder_without_room_sends_the_arrays_and_a_named_one_is_refused(
    cluster: object, tmp_path: Path
) -> None:
    """The probe fits where the arrays do not (a small /tmp): the default folder falls back
    to sending them; a named folder is the user's to fix."""
    shared = {"w": np.arange(300_000, dtype=np.float64)}  # 2.4 MB
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not a killed process
    with distributed.Client(cluster, set_as_default=False) as client:
        default = DaskPartitions(client, shared_dir="")
        default._folder = str(tmp_path)  # this machine's temporary folder, as if small
        named = DaskPartitions(client, shared_dir=str(tmp_path))
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, limits[1]))
        try:
            got = list(default(_scaled, [1, 2], shared))
            with pytest.raises(BadArgument, match="cannot write the shared arrays") as err:
                list(named(_scaled, [1], shared))
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, limits)
            signal.signal(signal.SIGXFSZ, handler)
    assert got == [1.0, 4.0] and not default.mapped  # part x w[part % 3], w[i] = i
    assert err.value.argument == SHARED_DIR_VARIABLE and not list(tmp_path.iterdir())


def test_files_left_by_killed_builds_go_at_the_next_build_on_this_machine(
    cluster: object, tmp_path: Path
) -> None:
    """A build killed (SIGTERM, SIGKILL) runs no finally: its file, named by its process,
    is deleted by the next build that writes to this machine's folder; live writers' files
    and other names stay."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid is free now (reaped)
    orphan = tmp_path / f"kolmatch-shared-{gone.pid}-abc123.bin"
    live = tmp_path / f"kolmatch-shared-{os.getppid()}-def456.bin"
    other = tmp_path / "kolmatch-shared-notes.bin"
    for f in (orphan, live, other):
        f.write_bytes(b"x")
    with distributed.Client(cluster, set_as_default=False) as client:
        named = DaskPartitions(client, shared_dir=str(tmp_path))  # maybe another machine's
        assert list(named(_scaled, [1], {"w": np.ones(3)})) == [1.0]
        assert orphan.exists()
        default = DaskPartitions(client, shared_dir="")
        default._folder = str(tmp_path)  # this machine's temporary folder
        assert list(default(_scaled, [1], {"w": np.ones(3)})) == [1.0] and default.mapped
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])


def test_a_build_stopped_early_or_outliving_its_client_leaves_no_file_nor_mapping(
    cluster: object, tmp_path: Path
) -> None:
    shared = {"w": np.array([1.0, 2.0, 3.0])}
    with distributed.Client(cluster, set_as_default=False) as client:
        results = DaskPartitions(client, shared_dir=str(tmp_path))(_scaled, range(20), shared)
        assert next(results) == 0.0 and len(list(tmp_path.iterdir())) == 1
        results.close()  # the consumer stopped (a reduce that raised)
        assert not list(tmp_path.iterdir())
        assert sorted(client.run(lambda: len(kd._mapped)).values()) == [0, 0]
        late = DaskPartitions(client, shared_dir=str(tmp_path))(_scaled, range(20), shared)
        assert next(late) == 0.0
    # the client closed first (partitions_on's block ended while a traceback held the build):
    # collected afterwards, the build still deletes its file, and raises nothing
    del late
    gc.collect()
    assert not list(tmp_path.iterdir())


def test_several_user_partitions_in_process_build_the_features_of_the_default(
    s_graph: MarketGraph, s_in_process: MarketFeatures
) -> None:
    assert_features_close(s_in_process, build_features(s_graph, user_partition_rows=7_000))


def test_the_engine_builds_and_ranks_on_the_scheduler_kolmatch_dask_names(
    tiny_market: Path, tmp_path: Path, cluster: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(tmp_path / "k.db")
    try:
        load_folder(tiny_market, store)
        monkeypatch.setenv("KOLMATCH_DASK", str(cluster.scheduler_address))  # type: ignore[attr-defined]
        on_dask = cached_features(store, tmp_path / "a")
        lists = cached_rankings(store.uri, store.identity(), on_dask, tmp_path / "a")
        monkeypatch.delenv("KOLMATCH_DASK")
        assert_features_close(cached_features(store, tmp_path / "b"), on_dask)
        assert_same_rankings(rank_merchants(on_dask), lists)
    finally:
        store.close()


def test_an_unreachable_scheduler_is_store_unavailable_naming_it(
    tiny_market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    with (
        pytest.raises(StoreUnavailable, match=f"{address} \\(dask\\) cannot be reached"),
        partitions_on(address, timeout=2, argument="dask"),
    ):
        pass
    # through the engine, named by the environment: nothing is cached, the error says where
    store = SQLiteStore(tmp_path / "k.db")
    try:
        load_folder(tiny_market, store)
        monkeypatch.setenv("KOLMATCH_DASK", address)
        with pytest.raises(StoreUnavailable, match=f"{address} \\(KOLMATCH_DASK\\)"):
            cached_features(store, tmp_path / "cache")
        assert not list((tmp_path / "cache").glob("features-*"))
        # nor the graph a delta would start from (kept before the build, dropped with it)
        assert not list((tmp_path / "cache").glob("*graph-*"))
        assert not list((tmp_path / "cache").glob("stage-*"))
        # an explicit empty address builds in process whatever the environment says
        assert cached_features(store, tmp_path / "cache", dask="").n_talents > 0
    finally:
        store.close()


@pytest.mark.parametrize("given", ["--dask", "KOLMATCH_DASK"])
def test_the_command_line_names_the_setting_the_user_gave_an_unreachable_scheduler_in(
    given: str,
    tiny_market: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--dask`` reaches the engine through KOLMATCH_DASK; the error names the option."""
    address = f"tcp://127.0.0.1:{free_port()}"
    store = SQLiteStore(tmp_path / "k.db")
    load_folder(tiny_market, store)
    store.close()
    monkeypatch.setenv("KOLMATCH_CACHE", str(tmp_path / "cache"))
    # recorded before main sets them, so that they are restored after the test
    monkeypatch.setenv(DASK_OPTION_VARIABLE, "")
    monkeypatch.delenv(DASK_OPTION_VARIABLE)
    args = ["match", "any-merchant", "--store", f"sqlite:///{tmp_path / 'k.db'}"]
    if given == "--dask":
        monkeypatch.setenv("KOLMATCH_DASK", "tcp://elsewhere:8786")  # the option wins
        args += ["--dask", address]
    else:
        monkeypatch.setenv("KOLMATCH_DASK", address)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"the Dask scheduler at {address} ({given}) cannot be reached" in err
    assert ("KOLMATCH_DASK" in err) == (given == "KOLMATCH_DASK")


def test_a_port_where_something_else_listens_is_store_unavailable_within_the_timeout() -> None:
    """An HTTP server (the scheduler's dashboard, say) accepts and waits for a request: Dask's
    client waited on it for minutes; the probe sees it does not speak first, as Dask does."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        started = time.monotonic()
        with (
            pytest.raises(StoreUnavailable, match=r"is not a Dask scheduler \(it said nothing"),
            partitions_on(address, timeout=1, argument="--dask"),
        ):
            pass
    assert time.monotonic() - started < 5


def test_an_address_of_an_unknown_scheme_is_a_bad_argument_at_once() -> None:
    with (
        pytest.raises(BadArgument, match=r"unknown scheme 'http': one of .*tcp") as err,
        partitions_on("http://127.0.0.1:8786", timeout=1, argument="--dask"),
    ):
        pass
    assert err.value.argument == "--dask"


def test_an_address_without_a_port_is_a_bad_argument() -> None:
    with (
        pytest.raises(BadArgument, match="dask") as err,
        partitions_on("scheduler-host", timeout=1, argument="dask"),
    ):
        pass
    assert err.value.argument == "dask"
