"""The converters on hand-written sources: folders that load, truth recomputed, named errors."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from kolmatch.errors import BadArgument, InputError
from kolmatch.evaluation.convert import convert_musae, convert_twitch_follows, convert_twitch_it
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from tests.evaluation.sources import (
    APPDATA,
    EDGES,
    STREAMER_GAMES,
    musae,
    twitch_follows,
    twitch_it,
)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _load(folder: Path, tmp_path: Path) -> dict[str, int]:
    store = SQLiteStore(tmp_path / "check.db")
    try:
        load_folder(folder, store)
        return store.counts()
    finally:
        store.close()


# -- converters -----------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["test", "validation"])
def test_twitch_follows_folder_loads_and_its_truth_is_the_held_out_follows(
    tmp_path: Path, split: str
) -> None:
    src, out = twitch_follows(tmp_path), tmp_path / "market"
    task = convert_twitch_follows(src, out, split=split, min_customers=1)
    counts = _load(out, tmp_path)
    # distinct valid follows: v1 {a,b,c}, v2 {a,c,d}, v3 {b,c}, v4 {a,b,c,d}: 12; viewers with
    # >= 3 hold out round(20%) >= 1: 3 for test; validation holds out once more from the
    # test's training side, where only v4 still has 3
    train_n = 9 if split == "test" else 8
    assert counts["User"] == 4 and counts["Talent"] == 4
    assert counts["Merchant"] == counts["Product"] == counts["Category"] == 4  # Unknown dropped
    assert counts["SELLS"] == counts["IN_CATEGORY"] == 4
    assert counts["Content"] == counts["PUBLISHED"] == counts["FEATURES"] == 6
    assert counts["FOLLOWS"] == train_n == task.stats["train_follows"]
    assert counts["PURCHASED"] == task.stats["purchases"]

    # recompute customers and relevance from the written files
    games = {"a": {"Chess", "Music"}, "b": {"Chess"}, "c": {"Dota 2", "Chess"}, "d": {"Poker"}}
    every = {("v1", t) for t in "abc"} | {("v2", t) for t in "acd"} | {("v3", t) for t in "bc"}
    every |= {("v4", t) for t in "abcd"}
    train = {(r["src"], r["dst"]) for r in _rows(out / "follows.csv")}
    if split == "validation":  # the truth is what the validation split took from test's train
        convert_twitch_follows(src, tmp_path / "test", min_customers=1)
        every = {(r["src"], r["dst"]) for r in _rows(tmp_path / "test" / "follows.csv")}
    held_pairs = every - train
    assert len(held_pairs) == (3 if split == "test" else 1)
    n: dict[tuple[str, str], int] = defaultdict(int)
    for u, t in train:
        for g in games[t]:
            n[u, g] += 1
    buyers = {(u, g) for (u, g), k in n.items() if k >= 2}
    assert {(r["src"], r["dst"]) for r in _rows(out / "purchased.csv")} == buyers
    expect = {
        g: [
            sum((u, g) in buyers and (u, t) in held_pairs for u in ["v1", "v2", "v3", "v4"])
            for t in "abcd"
        ]
        for g in sorted({g for _, g in buyers})
    }
    got = dict(zip(task.merchant_ids.tolist(), task.relevance.toarray().tolist(), strict=True))
    assert got == {g: r for g, r in expect.items() if sum(r) > 0}
    assert task.follows.shape == (4, 4) and task.follows.nnz == train_n
    assert task.talent_ids.tolist() == ["a", "b", "c", "d"]
    assert task.followers.tolist() == [5_000_000, 745_100, 812, 1_000]


def test_twitch_follows_split_is_fixed_by_the_seed(tmp_path: Path) -> None:
    src = twitch_follows(tmp_path)
    a = convert_twitch_follows(src, None, seed=3, min_customers=1)
    b = convert_twitch_follows(src, None, seed=3, min_customers=1)
    assert (a.follows != b.follows).nnz == 0 and a.folder is None


def test_twitch_it_folder_loads_with_publishers_genres_and_held_out_streamers(
    tmp_path: Path,
) -> None:
    out = tmp_path / "market"
    task = convert_twitch_it(twitch_it(tmp_path), out)
    counts = _load(out, tmp_path)
    assert counts["Talent"] == 6 and counts["User"] == 0
    assert counts["Merchant"] == 2  # Pub X, DevB (developer fallback); Game C has neither
    assert counts["Product"] == 3 and counts["SELLS"] == 3
    assert counts["Category"] == 3 and counts["IN_CATEGORY"] == 4  # Game A: Action and RPG
    # Pub X has 5 streamers: round(30% of 5) = 2 held out with all their rows on its games
    assert task.merchant_ids.tolist() == ["Pub X"]
    held = [task.talent_ids[i] for i in task.relevance.indices]
    assert len(held) == 2 and task.relevance.sum() == 2
    trained = {task.talent_ids[i] for i in task.excluded.indices}
    assert trained == {"s0", "s1", "s2", "s3", "s4"} - set(held)
    on_pub_x = {"s0": 1, "s1": 2, "s2": 1, "s3": 1, "s4": 1}
    assert counts["PROMOTED"] == 7 - sum(on_pub_x[t] for t in held)
    promoted = _rows(out / "promoted.csv")
    assert {r["gmv"] for r in promoted} == {"0.0"} and not any(r["src"] in held for r in promoted)
    assert task.followers.tolist() == [500, 300, 200, 100, 50, 10]
    assert task.merchant_categories.shape == (1, 3)
    assert task.merchant_categories.sum() == pytest.approx(1.0)
    assert not task.has_users


def test_musae_folder_loads_with_streamers_as_users_and_talents(tmp_path: Path) -> None:
    out = tmp_path / "market"
    task = convert_musae(musae(tmp_path), out, merchants=3, min_customers=2)
    counts = _load(out, tmp_path)
    # 10 edges (the self-loop 3-3 dropped), round(20%) = 2 held out, both directions each
    assert counts["User"] == counts["Talent"] == 6
    assert counts["FOLLOWS"] == 16 == 2 * task.stats["train_edges"]
    assert counts["Merchant"] == counts["Product"] == counts["SELLS"] == 3
    assert counts["Category"] == 1
    assert counts["PURCHASED"] == task.stats["purchases"]
    # each merchant's own channel is excluded and never relevant
    for i, m in enumerate(task.merchant_ids.tolist()):
        own = task.talent_ids.tolist().index("t" + m[1:])
        assert task.excluded[i, own] == 1 and task.relevance[i, own] == 0
    # relevance = customers (training neighbours) with a held-out edge to the talent
    train = {(r["src"][1:], r["dst"][1:]) for r in _rows(out / "follows.csv")}
    every = {(a, b) for a, b in (line.split(",") for line in EDGES.split()[1:]) if a != b}
    every |= {(b, a) for a, b in every}
    held = every - train
    for i, m in enumerate(task.merchant_ids.tolist()):
        cust = {a for a, b in train if b == m[1:]}
        want = [sum((c, str(t)) in held for c in cust) * (str(t) != m[1:]) for t in range(6)]
        assert task.relevance[i].toarray().ravel().tolist() == want
    assert task.followers.tolist() == [600, 500, 400, 300, 200, 100]


# -- named errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("convert", "make", "missing"),
    [
        (convert_twitch_follows, twitch_follows, "follows.csv"),
        (convert_twitch_it, twitch_it, "Streamer-Games_dataset.csv"),
        (convert_musae, musae, "edges.csv"),
    ],
)
def test_a_missing_source_file_is_named(
    tmp_path: Path, convert: Any, make: Any, missing: str
) -> None:
    src = make(tmp_path)
    (src / missing).unlink()
    with pytest.raises(InputError) as e:
        convert(src, tmp_path / "out")
    p = e.value.problems[0]
    assert p.file.endswith(missing) and p.line == 0 and p.reason == "file not found"


def test_bad_rows_are_named_by_file_line_and_field(tmp_path: Path) -> None:
    src = twitch_follows(tmp_path)
    (src / "appdata.csv").write_text(APPDATA.replace("745.1K", "lots"))
    with pytest.raises(InputError) as e:
        convert_twitch_follows(src, None)
    p = e.value.problems[0]
    assert (Path(p.file).name, p.line, p.field) == ("appdata.csv", 3, "total_followers")

    src = twitch_it(tmp_path / "it")
    (src / "Streamer-Games_dataset.csv").write_text(STREAMER_GAMES + "9,0,1\n")
    with pytest.raises(InputError) as e:
        convert_twitch_it(src, None)
    p = e.value.problems[0]
    assert (p.line, p.field) == (10, "ID_streamer") and "unknown streamer" in p.reason

    src = musae(tmp_path / "musae")
    (src / "edges.csv").write_text("from,to\n0,1\n0,x\n")
    with pytest.raises(InputError) as e:
        convert_musae(src, None)
    p = e.value.problems[0]
    assert (p.line, p.field) == (3, "to")

    (src / "edges.csv").write_text("source,to\n0,1\n")
    with pytest.raises(InputError) as e:
        convert_musae(src, None)
    assert (e.value.problems[0].line, e.value.problems[0].field) == (1, "from")

    with pytest.raises(BadArgument, match="split"):
        convert_musae(musae(tmp_path / "m2"), None, split="train")
