"""Progress lines: a total, a percentage and the time left, on stderr, only for long steps."""

from __future__ import annotations

import io
import os
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kolmatch import progress
from kolmatch.progress import LINE_SECONDS, SHOW_AFTER, Reporter, reporter_from


class FakeClock:
    """Seconds that move only when the test says."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _reporter(clock: FakeClock, *, tty: bool = False) -> tuple[Reporter, io.StringIO]:
    stream = FakeTty() if tty else io.StringIO()
    return Reporter(stream, tty=tty, clock=clock, ticker=False), stream


def test_a_line_has_the_total_the_percentage_and_the_time_left(clock: FakeClock) -> None:
    r, out = _reporter(clock)
    with r.task("loading", 1_000_000, unit="rows") as t:
        clock.now += 4.0
        t.advance(250_000)
    first = out.getvalue().splitlines()[0]
    # a quarter in 4 s: three quarters left take 12 s
    assert first == "loading: 250,000/1,000,000 rows 25% 4s, about 12s left"


def test_a_finished_step_that_was_shown_says_how_long_it_took(clock: FakeClock) -> None:
    r, out = _reporter(clock)
    with r.task("loading", 100, unit="rows") as t:
        clock.now += 3.0
        t.advance(40)
        clock.now += 4.5
        t.advance(60)
    assert out.getvalue().splitlines()[-1] == "loading: done 100 rows in 8s"


def test_a_short_step_prints_nothing(clock: FakeClock) -> None:
    for tty in (False, True):
        r, out = _reporter(clock, tty=tty)
        with r.task("building features", 8) as t:
            for _ in range(8):
                clock.now += (SHOW_AFTER - 0.1) / 8
                t.advance()
                r.refresh()
        assert out.getvalue() == ""


def test_not_a_terminal_prints_a_line_at_most_every_few_seconds(clock: FakeClock) -> None:
    r, out = _reporter(clock)
    start = clock.now
    with r.task("generating users", 600, unit="users") as t:
        for i in range(1, 601):  # 60 s, an advance every 0.1 s
            clock.now = start + i / 10
            t.advance()
    lines = out.getvalue().splitlines()
    assert all("\r" not in line for line in lines)
    # from 2 s on, one line per 5 s, then the closing one
    assert len(lines) == int((60 - SHOW_AFTER) // LINE_SECONDS) + 1 + 1
    assert lines[0].startswith("generating users: 20/600 users 3% 2s")


def test_a_terminal_redraws_one_line_in_place_and_wipes_it(clock: FakeClock) -> None:
    r, out = _reporter(clock, tty=True)
    with r.task("loading", 10, unit="rows") as t:
        for _ in range(10):
            clock.now += 1.0
            t.advance()
    text = out.getvalue()
    assert "\n" not in text
    assert text.count("\r") >= 8  # one redraw a second from 2 s on, and the wipe
    assert "\rloading: 5/10 rows 50% 5s, about 5s left" in text
    assert text.endswith("\r")  # wiped: the command's own output starts on a clean line
    assert text.rsplit("\r", 2)[1].strip() == ""


def test_a_timed_step_shows_the_time_against_its_limit(clock: FakeClock) -> None:
    r, out = _reporter(clock)
    with r.task("solving the assignment", 50.0, timed=True):
        clock.now += 10.0
        r.refresh()  # the ticker's call, while the solver blocks
    assert out.getvalue().splitlines()[0] == "solving the assignment: 10s of at most 50s 20%"


def test_nested_steps_show_as_one_line(clock: FakeClock) -> None:
    r, out = _reporter(clock)
    with r.task("starting the engine"), r.task("building features", 100) as t:
        clock.now += 3.0
        t.advance(30)
    assert out.getvalue().splitlines()[0] == (
        "starting the engine: building features: 30/100 30% 3s, about 7s left"
    )


def test_the_ticker_shows_a_step_blocked_in_one_call() -> None:
    out = io.StringIO()
    r = Reporter(out, tty=False)
    done = threading.Event()
    with r.task("reading the market"):
        done.wait(SHOW_AFTER + 2.5)  # nothing advances: a store read
    assert out.getvalue().startswith("reading the market: 2s") or out.getvalue().startswith(
        "reading the market: 3s"
    )


@pytest.mark.parametrize(
    ("value", "tty", "on"),
    [
        ("0", True, False),
        ("1", False, True),
        ("", True, True),
        ("", False, False),
        ("maybe", False, False),  # not 1 or 0: as if unset
    ],
)
def test_the_environment_forces_progress_on_or_off(value: str, tty: bool, on: bool) -> None:
    stream = FakeTty() if tty else io.StringIO()
    env = {"KOLMATCH_PROGRESS": value} if value else {}
    assert (reporter_from(env, stream) is not None) is on


@pytest.fixture
def unset_reporter(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's reporter not yet made: the next report reads the environment."""
    monkeypatch.setattr(progress, "_current", progress._UNSET)
    yield


def test_kolmatch_progress_0_silences_a_terminal(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock, unset_reporter: None
) -> None:
    tty = FakeTty()
    monkeypatch.setattr(sys, "stderr", tty)
    monkeypatch.setenv("KOLMATCH_PROGRESS", "0")
    with progress.task("loading", 10, unit="rows") as t:
        t.advance(10)
    assert progress._current is None  # decided once, on the first report
    monkeypatch.setenv("KOLMATCH_PROGRESS", "1")  # read once: later changes do nothing
    with progress.task("loading", 10, unit="rows"):
        pass
    assert progress._current is None
    assert tty.getvalue() == ""


def test_a_silenced_thread_reports_nothing(clock: FakeClock) -> None:
    r, out = _reporter(clock)
    with progress.using(r):
        with progress.silenced(), progress.task("ranking merchants") as t:
            clock.now += 10
            t.advance()
            r.refresh()
        with progress.task("ranking merchants") as t:
            clock.now += 10
            t.advance()
    assert out.getvalue().splitlines() == [
        "ranking merchants: 1 10s",
        "ranking merchants: done in 10s",
    ]


def test_kolmatch_load_prints_progress_to_stderr_only(tiny_market: Path, tmp_path: Path) -> None:
    """A real `kolmatch load` of the tiny market, held past the threshold by another writer's
    lock on the store (SQLite waits up to 5 s): a progress line with the total on stderr, and
    stdout as without progress."""
    script = Path(sys.executable).with_name("kolmatch")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "kolmatch.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOLMATCH_")}

    def load(db: Path, shown: str, hold: bool) -> tuple[str, str]:
        blocker = sqlite3.connect(db, isolation_level=None)
        if hold:
            blocker.execute("BEGIN IMMEDIATE")  # the loader's schema step waits for it
        p = subprocess.Popen(
            [*cmd, "load", str(tiny_market), "--store", f"sqlite:///{db}"],
            env={**env, "KOLMATCH_PROGRESS": shown},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert p.stderr is not None
        first = p.stderr.readline() if hold else ""  # the line shown while the lock is held
        if hold:
            blocker.execute("ROLLBACK")
        blocker.close()
        out, rest = p.communicate(timeout=120)
        assert p.returncode == 0, first + rest
        return out, first + rest

    out_shown, err = load(tmp_path / "a.db", "1", hold=True)
    out_plain, err_plain = load(tmp_path / "b.db", "0", hold=False)
    lines = err.splitlines()
    assert re.fullmatch(r"loading: 0/[\d,]+ rows 0% [23]s, time left \?", lines[0]), err
    total = int(lines[0].split("/")[1].split(" ")[0].replace(",", ""))
    done = re.fullmatch(r"loading: done ([\d,]+) rows in \d+s", lines[-1])
    assert done, err
    assert int(done[1].replace(",", "")) == pytest.approx(total, rel=0.1)  # the estimate
    assert err_plain == ""

    def plain(text: str) -> str:
        return re.sub(r"in \d+\.\ds", "in Ts", text.replace("a.db", "b.db"))

    assert plain(out_shown) == plain(out_plain)
    assert "loading" not in out_shown and "\r" not in out_shown
