"""The Twitch adapter on small hand-written sources: shapes, categories, and named errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from kolmatch.errors import InputError
from kolmatch.loaders.twitch import twitch_audience, twitch_follows_market

APPDATA = """name,image_url,total_followers,game1,game2
a,,5.0M,Chess,Music
b,,745.1K,Chess,
c,,812,Dota 2,Chess
d,,1K,Poker,
"""
# e has no appdata row; v1 follows a twice
FOLLOWS = """user_id,streamer
v1,a
v1,a
v1,b
v2,a
v2,c
v2,e
v3,d
v3,c
"""


def _source(tmp_path: Path, appdata: str = APPDATA) -> Path:
    src = tmp_path / "src"
    src.mkdir(parents=True)
    (src / "appdata.csv").write_text(appdata)
    (src / "follows.csv").write_text(FOLLOWS)
    return src


def test_audience_with_main_games_and_an_other_category(tmp_path: Path) -> None:
    tw = twitch_audience(_source(tmp_path), categories=2)
    assert tw.streamers == ["a", "b", "c", "d"]  # e has no appdata row
    assert tw.category_names == ["Chess", "other"]
    assert tw.category.tolist() == [0, 0, 1, 1]
    assert tw.audience.shape == (4, 3)
    assert tw.audience.toarray().tolist() == [[1, 1, 0], [1, 0, 0], [0, 1, 1], [0, 0, 1]]
    assert tw.followers == {"a": 5_000_000, "b": 745_100, "c": 812, "d": 1_000}
    with pytest.raises(ValueError, match="at least 2"):
        twitch_audience(_source(tmp_path / "x"), categories=1)


def test_follows_market_holds_out_a_share_of_each_viewer(tmp_path: Path) -> None:
    held = twitch_follows_market(_source(tmp_path), tmp_path / "market", min_follows=2)
    train = (tmp_path / "market" / "follows.csv").read_text().splitlines()[1:]
    test = (held / "follows.csv").read_text().splitlines()[1:]
    # distinct follows: v1 {a, b}, v2 {a, c, e}, v3 {c, d}; one of each viewer's held out
    assert len(train) + len(test) == 7 and len(test) == 3
    assert sorted({line.split(",")[0] for line in test}) == ["v1", "v2", "v3"]


@pytest.mark.parametrize("read", [twitch_audience, twitch_follows_market])
def test_a_missing_file_and_a_bad_count_are_named(read: object, tmp_path: Path) -> None:
    def call(src: Path) -> object:
        if read is twitch_follows_market:
            return twitch_follows_market(src, tmp_path / "out")
        return twitch_audience(src)

    src = _source(tmp_path)
    (src / "appdata.csv").unlink()
    with pytest.raises(InputError, match=r"appdata\.csv.*file not found"):
        call(src)
    bad = _source(tmp_path / "bad", APPDATA.replace("745.1K", "lots"))
    with pytest.raises(InputError) as err:
        call(bad)
    (p,) = err.value.problems
    assert (p.file, p.line, p.field) == ("appdata.csv", 3, "total_followers")
    assert "'lots'" in p.reason
