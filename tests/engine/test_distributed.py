"""The feature build on a Dask cluster equals the build in process; an unreachable one is said."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import distributed  # kolmatch[dask], in the dev extra: CI runs these tests, never skips them
import pytest

from kolmatch.cli import main
from kolmatch.engine.cache import cached_features, cached_rankings
from kolmatch.engine.distributed import DASK_OPTION_VARIABLE, DaskPartitions, partitions_on
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


def test_the_features_built_on_two_dask_workers_are_those_built_in_process(
    s_graph: MarketGraph, s_in_process: MarketFeatures, cluster: object
) -> None:
    with distributed.Client(cluster, set_as_default=False) as client:
        on_dask = build_features(s_graph, partitions=DaskPartitions(client))
        # both workers took parts: the build was spread, not run on one of them
        ran = client.run(lambda dask_worker: len(dask_worker.state.log) > 0)
    assert sorted(ran.values()) == [True, True]
    assert len(s_graph.node("User")) > 25_000  # the s market is several user partitions
    assert_features_close(s_in_process, on_dask, rtol=1e-9)


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


def test_an_address_without_a_port_is_a_bad_argument() -> None:
    with (
        pytest.raises(BadArgument, match="dask") as err,
        partitions_on("scheduler-host", timeout=1, argument="dask"),
    ):
        pass
    assert err.value.argument == "dask"
