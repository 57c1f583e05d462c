"""The command line: exit codes and what it prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kolmatch.cli import main


def test_generate_load_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = f"sqlite:///{tmp_path / 'k.db'}"
    assert main(["generate", "--scale", "tiny", "--seed", "2", "--out", str(tmp_path / "m")]) == 0
    assert main(["load", str(tmp_path / "m"), "--store", store]) == 0
    capsys.readouterr()
    assert main(["stats", "--store", store, "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["User"] == 2000 and counts["FOLLOWS"] > 5000


def test_bad_input_exits_2_and_names_the_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "bad"
    d.mkdir()
    (d / "talent.csv").write_text("id,name,followers\nt1,A,many\n")
    code = main(["load", str(d), "--store", f"sqlite:///{tmp_path / 'k.db'}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "talent.csv:2: field 'followers': expected a whole number, got 'many'" in err
    assert "nothing was written" in err


def test_unreachable_store_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["stats", "--store", "sqlite:////nonexistent-dir/x/k.db"])
    assert code == 1
    assert "store unavailable" in capsys.readouterr().err


def test_unsupported_store_uri(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "--store", "postgres://x"]) == 1
    assert "unsupported store URI" in capsys.readouterr().err


def test_demo_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--dir", str(tmp_path), "--no-serve"]) == 0
    out = capsys.readouterr().out
    assert "kolmatch demo: the tiny market" in out
    assert "FOLLOWS" in out and "2,000" in out


@pytest.fixture
def loaded_store(tmp_path: Path) -> str:
    """A tiny market (seed 4) generated into tmp_path/m and loaded; its store URI."""
    store = f"sqlite:///{tmp_path / 'k.db'}"
    assert main(["generate", "--scale", "tiny", "--seed", "4", "--out", str(tmp_path / "m")]) == 0
    assert main(["load", str(tmp_path / "m"), "--store", store]) == 0
    return store


def test_match_and_evaluate(
    tmp_path: Path, loaded_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = loaded_store
    capsys.readouterr()
    assert main(["match", "m2", "--top", "5", "--json", "--store", store]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["merchant"] == "m2" and [m["rank"] for m in out["matches"]] == [1, 2, 3, 4, 5]
    assert {"talent", "score", "breakdown", "evidence"} <= set(out["matches"][0])
    assert main(["match", "m999", "--store", store]) == 2
    assert "unknown Merchant id 'm999'" in capsys.readouterr().err
    assert (
        main(
            [
                "evaluate",
                "--truth",
                str(tmp_path / "m-truth"),
                "--merchants",
                "5",
                "--json",
                "--store",
                store,
            ]
        )
        == 0
    )
    ev = json.loads(capsys.readouterr().out)
    assert ev["merchants"] == 5 and set(ev["capture"]) >= {"engine", "followers"}
    assert main(["evaluate", "--truth", str(tmp_path), "--store", store]) == 2


def test_similar_overlap_leads(loaded_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = loaded_store
    capsys.readouterr()
    assert main(["similar", "t1", "--top", "3", "--json", "--store", store]) == 0
    sim = json.loads(capsys.readouterr().out)["similar"]
    assert len(sim) == 3 and sim[0]["similarity"] >= sim[-1]["similarity"] > 0
    assert main(["overlap", "t1", sim[0]["talent"], "--json", "--store", store]) == 0
    o = json.loads(capsys.readouterr().out)
    assert o["shared"] > 0 and 0 < o["jaccard"] <= o["share_of_smaller"] <= 1
    assert main(["leads", "t1", "t2", "--top", "4", "--json", "--store", store]) == 0
    leads = json.loads(capsys.readouterr().out)["leads"]
    assert [x["rank"] for x in leads] == [1, 2, 3, 4]
    assert main(["overlap", "t1", "nobody", "--store", store]) == 2
    assert "unknown Talent id 'nobody'" in capsys.readouterr().err


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["match", "m1", "--top", "0"])
    assert info.value.code == 2
    assert "--top: must be at least 1, got 0" in capsys.readouterr().err


def test_plan(loaded_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = loaded_store
    capsys.readouterr()
    assert main(["plan", "m1", "--budget", "2e6", "--json", "--store", store]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["merchant"] == "m1" and plan["talents"] and plan["cost"] <= 2e6
    assert plan["gap"] <= 0.01 and {"overlaps", "left_out", "bound"} <= set(plan)
    assert main(["plan", "m1", "--budget", "2e6", "--store", store]) == 0
    assert "certified bound" in capsys.readouterr().out
    assert main(["plan", "m1", "--budget", "10", "--store", store]) == 2
    assert "no talent can be planned for m1" in capsys.readouterr().err
    assert main(["plan", "m1", "--budget", "1e6", "--tiers", "top=x", "--store", store]) == 2
    assert "argument --tiers: cannot read 'top=x'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["plan", "m1", "--budget", "-1"])
    assert "--budget: must be a positive number, got -1" in capsys.readouterr().err


def test_assign(tmp_path: Path, loaded_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = loaded_store
    out = tmp_path / "out" / "assignment.json"
    capsys.readouterr()
    assert main(["assign", "--store", store, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "gap" in text and f"written to {out}" in text
    doc = json.loads(out.read_text())
    assert doc["pairs"] and {"merchant", "talent", "expected_value", "fee"} == set(doc["pairs"][0])
    assert doc["gap"] <= 0.01 and doc["method"] == "milp"
    assert main(["assign", "--method", "stable", "--json", "--store", store]) == 0
    assert json.loads(capsys.readouterr().out)["blocking_pairs"] == 0
    assert main(["assign", "--campaign", "nope", "--store", store]) == 2
    assert "unknown Campaign id 'nope'" in capsys.readouterr().err
