"""Adapter: public Twitch follow data (shared/data/twitch-follows) to the import format.

Mapping: viewers are users, streamers are talents (``followers`` from the platform's
total), each streamer's two main games are products and categories (one category per
game), and a streamer's channel for a game is a live Content item that features the game.
A share of each viewer's follows is held out (written to a separate folder, never loaded)
so that an evaluation can ask how well graph signals recover them.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from kolmatch.errors import InputError, InputProblem

__all__ = ["TwitchAudience", "parse_count", "twitch_audience", "twitch_follows_market"]

#: The data set carries no dates; content gets the date of the source snapshot.
SNAPSHOT_DATE = "2021-01-01"


def parse_count(text: str) -> int:
    """Parse a Twitch follower count such as ``5.0M``, ``745.1K`` or ``812``.

    Examples
    --------
    >>> parse_count("5.0M"), parse_count("745.1K"), parse_count("812")
    (5000000, 745100, 812)
    """
    t = text.strip().replace(",", "")
    mult = {"K": 1_000, "M": 1_000_000, "B": 1_000_000_000}.get(t[-1:].upper(), 1)
    num = t[:-1] if mult > 1 else t
    return round(float(num) * mult)


def _write(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def _require_sources(src: Path) -> None:
    """Both source files are there, or an InputError names the missing one."""
    for name in ("follows.csv", "appdata.csv"):
        if not (src / name).is_file():
            raise InputError([InputProblem(str(src / name), 0, "", "file not found")])


def _appdata(src: Path) -> list[tuple[dict[str, str], int]]:
    """``appdata.csv``'s rows with their parsed follower counts; every bad count is named."""
    rows: list[tuple[dict[str, str], int]] = []
    problems: list[InputProblem] = []
    with (src / "appdata.csv").open(encoding="utf-8") as fh:
        for line, r in enumerate(csv.DictReader(fh), start=2):
            try:
                rows.append((r, parse_count(r["total_followers"])))
            except ValueError:
                problems.append(
                    InputProblem(
                        "appdata.csv",
                        line,
                        "total_followers",
                        f"not a follower count: {r['total_followers']!r}",
                    )
                )
    if problems:
        raise InputError(problems)
    return rows


def twitch_follows_market(
    src: str | Path, out: str | Path, *, holdout: float = 0.2, min_follows: int = 3, seed: int = 0
) -> Path:
    """Write the twitch-follows data as an import folder; hold out follows for evaluation.

    Parameters
    ----------
    src
        The ``twitch-follows`` folder (``follows.csv``, ``appdata.csv``).
    out
        Import folder to write (created).
    holdout
        Share of each eligible viewer's follows held out (at least one).
    min_follows
        Viewers with fewer follows keep them all.
    seed
        Which follows are held out.

    Returns
    -------
    Path
        ``<out>-holdout``, holding ``follows.csv`` of the held-out pairs.

    Raises
    ------
    InputError
        If a source file is missing or a follower count cannot be read.
    """
    src, out = Path(src), Path(out)
    _require_sources(src)
    out.mkdir(parents=True, exist_ok=True)
    held = out.with_name(out.name + "-holdout")
    held.mkdir(parents=True, exist_ok=True)

    talents: list[list[object]] = []
    games: dict[str, None] = {}
    channels: list[tuple[str, str]] = []
    for r, followers in _appdata(src):
        talents.append([r["name"], r["name"], followers])
        for g in (r["game1"], r["game2"]):
            if g and (r["name"], g) not in channels:
                games[g] = None
                channels.append((r["name"], g))

    by_user: dict[str, list[str]] = defaultdict(list)
    with (src / "follows.csv").open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            by_user[r["user_id"]].append(r["streamer"])
    rng = np.random.default_rng(seed)
    train: list[list[object]] = []
    test: list[list[object]] = []
    for user in sorted(by_user):
        follows = sorted(set(by_user[user]))
        k = max(1, int(len(follows) * holdout)) if len(follows) >= min_follows else 0
        out_idx = set(rng.choice(len(follows), size=k, replace=False).tolist()) if k else set()
        for i, s in enumerate(follows):
            (test if i in out_idx else train).append([user, s])

    _write(out / "user.csv", ["id"], [[u] for u in sorted(by_user)])
    _write(out / "talent.csv", ["id", "name", "followers"], talents)
    _write(out / "category.csv", ["id", "name"], [[g, g] for g in games])
    _write(out / "product.csv", ["id", "name", "price"], [[g, g, 0.0] for g in games])
    _write(out / "in_category.csv", ["src", "dst"], [[g, g] for g in games])
    _write(
        out / "content.csv",
        ["id", "kind", "published"],
        [[f"{s}/{g}", "live", SNAPSHOT_DATE] for s, g in channels],
    )
    _write(out / "published.csv", ["src", "dst"], [[s, f"{s}/{g}"] for s, g in channels])
    _write(out / "features.csv", ["src", "dst"], [[f"{s}/{g}", g] for s, g in channels])
    _write(out / "follows.csv", ["src", "dst"], train)
    _write(held / "follows.csv", ["src", "dst"], test)
    return held


@dataclass(frozen=True)
class TwitchAudience:
    """Real follows as a (streamers x viewers) audience, with each streamer's main game."""

    streamers: list[str]
    audience: sp.csr_matrix  # (streamers, viewers), 1 where the viewer follows the streamer
    category: np.ndarray  # (streamers,) index into category_names
    category_names: list[str]
    followers: dict[str, int]  # platform-reported follower count per streamer


def twitch_audience(src: str | Path, *, categories: int = 20) -> TwitchAudience:
    """Read the twitch-follows data as an audience matrix with a main category per streamer.

    A streamer's category is its main game (``game1``); the ``categories - 1`` games most
    streamers have as main game keep their own category and every other game falls in one
    "other" category, so that the real graph is measured at the synthetic market's
    granularity (20 categories). Streamers without an ``appdata.csv`` row are left out.

    Parameters
    ----------
    src
        The ``twitch-follows`` folder (``follows.csv``, ``appdata.csv``).
    categories
        How many categories, the "other" one included (at least 2).

    Raises
    ------
    InputError
        If a source file is missing or a follower count cannot be read.
    ValueError
        If ``categories`` is below 2.
    """
    if categories < 2:
        raise ValueError(f"categories must be at least 2, got {categories}")
    src = Path(src)
    _require_sources(src)
    rows = _appdata(src)
    game = {r["name"]: r["game1"] for r, _ in rows}
    followers = {r["name"]: n for r, n in rows}
    with (src / "follows.csv").open(encoding="utf-8") as fh:
        pairs = [(r["user_id"], r["streamer"]) for r in csv.DictReader(fh) if r["streamer"] in game]
    streamers = sorted({s for _, s in pairs})
    viewers = sorted({u for u, _ in pairs})
    s_row = {s: i for i, s in enumerate(streamers)}
    v_col = {v: i for i, v in enumerate(viewers)}
    common = [g for g, _ in Counter(game[s] for s in streamers).most_common(categories - 1)]
    names = [*common, "other"]
    cat_of = {g: i for i, g in enumerate(common)}
    aud = sp.csr_matrix(
        (
            np.ones(len(pairs)),
            ([s_row[s] for _, s in pairs], [v_col[u] for u, _ in pairs]),
        ),
        shape=(len(streamers), len(viewers)),
    )
    aud.sum_duplicates()
    aud.data[:] = 1.0
    category = np.array([cat_of.get(game[s], len(common)) for s in streamers], dtype=np.int64)
    return TwitchAudience(streamers, aud, category, names, followers)
