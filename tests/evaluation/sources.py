"""Hand-written raw sources in each public data set's own layout, for the converter tests."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "APPDATA",
    "EDGES",
    "FOLLOWS",
    "GAMES",
    "STREAMERS",
    "STREAMER_GAMES",
    "TARGET",
    "musae",
    "twitch_follows",
    "twitch_it",
]

APPDATA = """name,image_url,total_followers,game1,game2
a,,5.0M,Chess,Music
b,,745.1K,Chess,
c,,812,Dota 2,Chess
d,,1K,Poker,Unknown
"""
# e has no appdata row (dropped); v4 follows a twice
FOLLOWS = """user_id,streamer
v1,a
v1,b
v1,c
v2,a
v2,c
v2,d
v2,e
v3,b
v3,c
v4,a
v4,a
v4,b
v4,c
v4,d
"""
STREAMERS = """idStreamer,streamer,minutesLive,viewerMean,viewerPeak,spectMean,spectTot,socialLinks
0,Alpha,10,500,900,1,1,"https://x.y/a; https://x.y/b"
1,Beta,10,300,900,1,1,
2,Gamma,10,200,900,1,1,
3,Delta,10,100,900,1,1,
4,Eps,10,50,900,1,1,
5,Zeta,10,10,900,1,1,
"""
GAMES = """idGame,gameName,steamName,developer,publisher,releaseDate,categories
0,Game A,Game A,DevA,Pub X,2020-01-01,Action; RPG
1,Game B,,DevB,,,Puzzle
2,Game C,,,,,
3,"Game, D",,DevD,Pub X,,Action
"""
# streamer 0 also streamed Game C, which has no merchant; streamer 1 two Pub X games
STREAMER_GAMES = """ID_streamer,ID_game,minutes
0,0,10
1,0,20
2,0,30
3,3,40
4,3,50
5,1,60
0,2,5
1,3,5
"""
TARGET = """id,days,mature,views,partner,new_id
10,1,True,600,False,0
11,1,False,500,False,1
12,1,True,400,True,2
13,1,True,300,False,3
14,1,True,200,False,4
15,1,True,100,False,5
"""
EDGES = "from,to\n0,1\n0,2\n0,3\n0,4\n1,2\n2,3\n3,4\n4,5\n1,5\n2,5\n3,3\n"


def _files(tmp_path: Path, **files: str) -> Path:
    src = tmp_path / "src"
    src.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (src / name.replace("__", "-").replace("_csv", ".csv")).write_text(text)
    return src


def twitch_follows(tmp_path: Path) -> Path:
    return _files(tmp_path, appdata_csv=APPDATA, follows_csv=FOLLOWS)


def twitch_it(tmp_path: Path) -> Path:
    return _files(
        tmp_path,
        Streamer_dataset_csv=STREAMERS,
        Games_dataset_csv=GAMES,
        Streamer__Games_dataset_csv=STREAMER_GAMES,
    )


def musae(tmp_path: Path) -> Path:
    return _files(tmp_path, target_csv=TARGET, edges_csv=EDGES)
