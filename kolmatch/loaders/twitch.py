"""Adapter: public Twitch follow data (shared/data/twitch-follows) to the import format.

Mapping: viewers are users, streamers are talents (``followers`` from the platform's
total), each streamer's two main games are products and categories (one category per
game), and a streamer's channel for a game is a live Content item that features the game.
A share of each viewer's follows is held out (written to a separate folder, never loaded)
so that an evaluation can ask how well graph signals recover them.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from kolmatch.errors import InputError, InputProblem

__all__ = ["parse_count", "twitch_follows_market"]

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
    for name in ("follows.csv", "appdata.csv"):
        if not (src / name).is_file():
            raise InputError([InputProblem(str(src / name), 0, "", "file not found")])
    out.mkdir(parents=True, exist_ok=True)
    held = out.with_name(out.name + "-holdout")
    held.mkdir(parents=True, exist_ok=True)

    talents: list[list[object]] = []
    games: dict[str, None] = {}
    channels: list[tuple[str, str]] = []
    problems: list[InputProblem] = []
    with (src / "appdata.csv").open(encoding="utf-8") as fh:
        for line, r in enumerate(csv.DictReader(fh), start=2):
            try:
                followers = parse_count(r["total_followers"])
            except ValueError:
                problems.append(
                    InputProblem(
                        "appdata.csv",
                        line,
                        "total_followers",
                        f"not a follower count: {r['total_followers']!r}",
                    )
                )
                continue
            talents.append([r["name"], r["name"], followers])
            for g in (r["game1"], r["game2"]):
                if g and (r["name"], g) not in channels:
                    games[g] = None
                    channels.append((r["name"], g))
    if problems:
        raise InputError(problems)

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
