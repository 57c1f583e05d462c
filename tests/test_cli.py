"""The command line: exit codes and what it prints."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from kolmatch.cli import _fee_rule_text, _reason_text, _window_text, main
from kolmatch.matching.assign import UNASSIGNED_REASONS
from kolmatch.matching.availability import WINDOW_NAMES
from kolmatch.matching.fees import FEE_RULE_DEFAULT, FEE_RULE_MEDIAN
from kolmatch.matching.plan import (
    LEFT_OUT_MAX_TALENTS,
    LEFT_OUT_REASONS,
    LEFT_OUT_RETURN_BELOW,
    LEFT_OUT_TEMPLATES,
    LEFT_OUT_TIER_FULL,
    LEFT_OUT_TIER_SHARE,
)


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


def _display_width(line: str) -> int:
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


def _match_table(out: str) -> list[str]:
    """The table of `kolmatch match`: the header line and one row per talent."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("#"))
    end = next(i for i in range(start + 1, len(lines)) if not re.match(r"\s+\d+\.\s", lines[i]))
    return lines[start:end]


def test_match_in_chinese(loaded_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = loaded_store
    capsys.readouterr()
    assert main(["--lang", "zh-CN", "match", "m2", "--top", "5", "--store", store]) == 0
    out = capsys.readouterr().out
    table = _match_table(out)
    assert table[0].split() == ["#", "达人", "名称", "报价", "预期GMV", "ROI", "得分"]
    assert len(table) == 6 and table[1].split()[:2] == ["1.", out.split("1. ")[1].split()[0]]
    # CJK-aware alignment: every line of the table ends at the same terminal column
    assert len({_display_width(line) for line in table}) == 1, table
    assert "万" in out and "¥" in out
    assert "受众的兴趣有" in out and "名顾客中有" in out  # evidence in Chinese
    assert "得分：各标准化信号的加权和，见 docs/scoring.md；越高越好" in out
    assert "Talent" in out  # the names the store records
    assert re.search(r"\n  1\. t\d+  Talent \d+，(头部|腰部|尾部)达人\n", out)  # and the tier
    # the flag after the command, and JSON: the same keys and numbers, evidence in Chinese
    assert main(["match", "m2", "--top", "5", "--json", "--store", store, "--lang", "zh-CN"]) == 0
    zh = json.loads(capsys.readouterr().out)
    assert main(["match", "m2", "--top", "5", "--json", "--store", store]) == 0
    en = json.loads(capsys.readouterr().out)
    for a, b in zip(zh["matches"], en["matches"], strict=True):
        assert a.keys() == b.keys()
        assert {k: v for k, v in a.items() if k != "evidence"} == {
            k: v for k, v in b.items() if k != "evidence"
        }
        assert len(a["evidence"]) == len(b["evidence"]) and a["evidence"] != b["evidence"]


def test_match_in_english_is_a_table(loaded_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = loaded_store
    capsys.readouterr()
    assert main(["match", "m2", "--top", "1", "--budget", "2e6", "--store", store]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1 talent for merchant m2, priced within ¥2.0M\n")
    table = _match_table(out)
    assert table[0].split() == ["#", "talent", "name", "quote", "exp.", "GMV", "ROI", "score"]
    assert re.match(r"\s+1\.\s+t\d+\s+Talent \d+\s+¥[\d,.]+M?\*?\s+(¥[\d,.]+M?|-)\s", table[1])
    assert re.search(r"\n  1\. t\d+  Talent \d+, (top|mid|micro) tier\n", out)
    assert (
        "score: weighted sum of standardised signals, see docs/scoring.md; higher is better" in out
    )
    assert re.search(r"\n       - \S", out)  # its evidence, a line each


def test_language_from_the_environment(
    loaded_store: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    capsys.readouterr()
    monkeypatch.setenv("KOLMATCH_LANG", "zh-CN")
    assert main(["why", "m2", "t5", "--top", "3", "--store", loaded_store]) == 0
    assert "排名第" in capsys.readouterr().out
    assert main(["--lang", "en", "why", "m2", "t5", "--top", "3", "--store", loaded_store]) == 0
    assert "ranked" in capsys.readouterr().out  # the flag wins
    monkeypatch.setenv("KOLMATCH_LANG", "klingon")
    assert main(["stats", "--store", loaded_store]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kolmatch: argument KOLMATCH_LANG: unknown language 'klingon'")
    assert main(["--lang", "fr", "stats", "--store", loaded_store]) == 2
    assert "argument --lang: unknown language 'fr'" in capsys.readouterr().err


#: A count of one with a plural noun: what the text used to print ("1 talents").
_ONE_PLURAL = re.compile(
    r"(?<![\d,.])1 (talents|merchants|pairs|blocking pairs|candidates|candidate pairs|rows|"
    r"files|nodes|estimated fees|target users|sampled users|customers|shared audience members)\b"
)


def test_counts_agree_with_their_nouns(
    loaded_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = loaded_store
    capsys.readouterr()
    outs = []
    for argv in (
        ["match", "m2", "--top", "1"],
        ["plan", "m1", "--budget", "2e6", "--tiers", "top=1"],
        ["plan", "m1", "--budget", "2e6"],
        ["assign"],
        ["assign", "--method", "stable"],
        ["overlap", "t1", "t2"],
        ["leads", "t1", "--top", "3"],
    ):
        assert main([*argv, "--store", store]) == 0, argv
        outs.append(capsys.readouterr().out)
    # the plan's own notes (unspent_note, written in kolmatch/matching/plan.py) are not the CLI's
    text = "\n".join(line for out in outs for line in out.splitlines() if "unspent" not in line)
    assert not _ONE_PLURAL.search(text), _ONE_PLURAL.search(text)
    assert "1 talent for merchant m2" in text and "1 talent, ¥" in text
    assert re.search(r"\d+ blocking pairs?\b", text)


def test_plan_explains_its_objective(loaded_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["plan", "m1", "--budget", "2e6", "--store", loaded_store]) == 0
    out = capsys.readouterr().out
    assert re.search(r"objective ¥[\d.,]+[MBT]?, certified bound ¥", out)
    assert "objective: expected GMV x (1 - risk) of the chosen talents plus" in out
    assert main(["--lang", "zh-CN", "plan", "m1", "--budget", "2e6", "--store", loaded_store]) == 0
    out = capsys.readouterr().out
    assert "目标值：所选达人的预期 GMV" in out and "预算 ¥200.0万" in out


def test_schema_print(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema-print"]) == 0
    sdl = capsys.readouterr().out
    assert "type Query {" in sdl and "evidence: [String!]!" in sdl
    out = tmp_path / "api" / "schema.graphql"
    assert main(["schema-print", "--out", str(out)]) == 0
    assert f"wrote the GraphQL schema (SDL) to {out}" in capsys.readouterr().out
    assert out.read_text(encoding="utf-8") == sdl
    assert main(["schema-print", "--out", str(tmp_path)]) == 2  # a folder
    assert "argument --out" in capsys.readouterr().err
    assert main(["schema-print", "--out", str(out / "x.graphql")]) == 2  # a file as folder
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "schema.graphql"
    ]  # nothing half-written


def test_campaigns_bookings_targets_and_growth(
    loaded_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """#20 at the command line: a brief, a join, the cheapest plan to a target, booked (a
    retry writes nothing, a full talent refuses cleanly), released, and the growth report."""
    run = ["--store", loaded_store]
    assert (
        main(
            [
                "campaign",
                "create",
                "cpC",
                "--name",
                "Double 11 CLI",
                "--start",
                "2026-10-20",
                "--end",
                "2026-11-11",
                "--goal",
                "gmv",
                "--kpi-target",
                "5e6",
                *run,
            ]
        )
        == 0
    )
    assert "created campaign cpC" in capsys.readouterr().out
    assert main(["campaign", "join", "cpC", "--merchant", "m1", *run]) == 0
    assert main(["campaign", "list", "--json", *run]) == 0
    listed = {c["id"]: c for c in json.loads(capsys.readouterr().out.split("\n", 1)[1])}
    assert listed["cpC"]["merchants"] == ["m1"] and listed["cpC"]["status"] == "upcoming"
    assert main(["plan", "m1", "--target-gmv", "300000", "--campaign", "cpC", "--json", *run]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["reachable"] and plan["achieved"] >= 300000 and plan["gap"] <= 0.01
    talents = [t["talent"] for t in plan["talents"]]
    book = ["book", "m1", "--talents", ",".join(talents), "--campaign", "cpC", "--key", "k1"]
    assert main([*book, "--json", *run]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["written"] == [f"m1/k1/{t}" for t in talents]
    assert main([*book, "--json", *run]) == 0  # a retry
    assert json.loads(capsys.readouterr().out)["written"] == []
    assert main(["release", f"m1/k1/{talents[0]}", "--merchant", "m2", *run]) == 0
    assert "nothing released" in capsys.readouterr().out  # not m2's
    assert main(["release", f"m1/k1/{talents[0]}", *run]) == 0
    assert f"released m1/k1/{talents[0]}" in capsys.readouterr().out
    assert main(["growth", "--top", "3", *run]) == 0
    out = capsys.readouterr().out
    assert "growth programme, 2025-01..2026-06" in out and "last year" in out
    assert main(["--lang", "zh-CN", "growth", "--top", "2", *run]) == 0
    assert "增长计划" in capsys.readouterr().out


def test_errors_follow_the_language(loaded_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--lang", "zh-CN", "match", "m999", "--store", loaded_store]) == 2
    assert capsys.readouterr().err.strip() == "kolmatch: 未找到商家 'm999'"
    assert main(["match", "m999", "--store", loaded_store]) == 2
    assert capsys.readouterr().err.strip() == "kolmatch: unknown Merchant id 'm999'"


def test_a_day_of_follows_is_loaded_as_a_delta_and_said_so(
    tiny_market: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """After a build (``match``), ``load`` of one user's new follow says the cached features
    followed it by a delta, in English and in Chinese; ``match`` then reads them."""
    monkeypatch.setenv("KOLMATCH_CACHE", str(tmp_path / "cache"))
    store = f"sqlite:///{tmp_path / 'k.db'}"
    assert main(["load", str(tiny_market), "--store", store]) == 0
    users = (tiny_market / "user.csv").read_text().splitlines()[1:3]
    talents = (tiny_market / "talent.csv").read_text().splitlines()[1:3]
    merchant = (tiny_market / "merchant.csv").read_text().splitlines()[1].split(",")[0]
    assert main(["match", merchant, "--store", store]) == 0  # (a build: its base kept)
    for i, lang in enumerate(("en", "zh-CN")):
        day = tmp_path / f"day{i}"
        day.mkdir()
        user, talent = users[i].split(",")[0], talents[i].split(",")[0]
        (day / "follows.csv").write_text(f"src,dst,since\n{user},{talent},2026-06-10\n")
        capsys.readouterr()
        assert main(["load", str(day), "--store", store, "--lang", lang]) == 0
        out = capsys.readouterr().out
        said = {
            "en": r"follow it to version \d+ by a delta of the rows of 1 user\(s\) in",
            "zh-CN": r"已按 1 个用户的增量行在 [0-9.]+ 秒内更新到版本 \d+：无需重建",
        }[lang]
        assert re.search(said, out), out
    # a sign-up (its own row and a follow) and a corrected user: a delta of both
    day = tmp_path / "signup"
    day.mkdir()
    corrected = users[0].split(",")[0]
    (day / "user.csv").write_text(f"id,gender,age_band\nu-signup,f,24-30\n{corrected},m,50+\n")
    (day / "follows.csv").write_text(f"src,dst\nu-signup,{talents[0].split(',')[0]}\n")
    capsys.readouterr()
    assert main(["load", str(day), "--store", store]) == 0
    out = capsys.readouterr().out
    assert re.search(r"by a delta of the rows of 2 user\(s\) in", out), out
    assert main(["match", merchant, "--store", store]) == 0
    # an empty day: said, and the version (so what is cached for it) kept
    day = tmp_path / "empty"
    day.mkdir()
    (day / "follows.csv").write_text("src,dst,since\n")
    assert main(["load", str(day), "--store", store]) == 0
    out = capsys.readouterr().out
    said = (
        "holds no rows: nothing was written (the store's version, and what is cached for it, hold)"
    )
    assert said in out, out


# -- the user trial's defects (amounts, Chinese, FACT reasons, quotes, ROI basis, windows, n/a)

#: Three ASCII words in a row: English left in a Chinese line. Ids (t12, cp3, p840) and
#: numbers hold digits, so they are not words; units (GMV, ROI, x) stand alone.
_ENGLISH = re.compile(r"\b[A-Za-z]{2,}(?:[ ,;:'-]+[A-Za-z]{2,}\b){2}")


def _english_lines(out: str, data: Sequence[str] = ()) -> list[str]:
    """Lines of ``out`` with three English words in a row, the market's own names (``data``:
    campaign and talent names, which are not translated) taken out first."""
    found = []
    for line in out.splitlines():
        for name in sorted(data, key=len, reverse=True):
            line = line.replace(name, "")
        if _ENGLISH.search(line):
            found.append(line)
    return found


def test_the_english_check_finds_english() -> None:
    lines = "未纳入：55 compliance, 7 no free slot\n  t1294  头部  ¥103.5万  GMV ROI 1.36x\n"
    assert _english_lines(lines) == ["未纳入：55 compliance, 7 no free slot"]


def test_every_command_writes_chinese(
    loaded_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = ["--store", loaded_store]
    zh = ["--lang", "zh-CN"]
    brief = ["--end", "2026-09-10", "--goal", "gmv", "--kpi-target", "5e6"]
    book = ["book", "m1", "--talents", "t1", "--start", "2026-08-01", "--end", "2026-08-02"]
    book += ["--key", "zh"]
    commands = [
        ["campaign", "create", "cpZ", "--name", "中秋", "--start", "2026-09-01", *brief],
        ["campaign", "join", "cpZ", "--merchant", "m1"],
        ["campaign", "list"],
        ["match", "m1", "--top", "3"],
        ["plan", "m1", "--budget", "2e6"],
        ["plan", "m1", "--budget", "1e30"],
        ["plan", "m1", "--budget", "2e6", "--campaign", "cpZ", "--tiers", "top=0"],
        ["plan", "m1", "--target-gmv", "300000"],
        ["fact", "m1", "--budget", "1e6"],
        ["fact", "m1", "--budget", "3e5", "--start", "2026-09-01", "--end", "2026-09-10"],
        ["assign"],
        ["growth", "--top", "3"],
        ["leads", "t1", "--top", "3"],
        book,
        book,  # a repeat writes nothing
        ["release", "m1/zh/t1"],
    ]
    capsys.readouterr()
    assert main(["campaign", "list", "--json", *run]) == 0
    briefs = json.loads(capsys.readouterr().out)
    names = [b["name"] for b in briefs] + list(_talent_names(loaded_store).values())
    for command in commands:
        assert main([*zh, *command, *run]) == 0, command
        captured = capsys.readouterr()
        assert not captured.err, (command, captured.err)
        assert captured.out.strip(), command
        assert not _english_lines(captured.out, names), (command, captured.out)
        assert "nan" not in captured.out.split(), command


def _talent_names(store: str) -> dict[str, str]:
    from kolmatch.cli import _talent_names as names_of

    return names_of(store, [f"t{i}" for i in range(1000)])


#: An amount written out in full beyond a thousand trillion: ¥1,000,000,000,000,000,019,...
_LONG_AMOUNT = re.compile(r"¥\d{1,3}(?:,\d{3}){5,}")


@pytest.mark.parametrize(
    ("lang", "unspent"), [("en", "¥1.0e+30 unspent"), ("zh-CN", "剩余 ¥1.0e+30")]
)
def test_huge_amounts_are_scientific(
    loaded_store: str, capsys: pytest.CaptureFixture[str], lang: str, unspent: str
) -> None:
    capsys.readouterr()
    for command in (["plan", "m1", "--budget", "1e30"], ["fact", "m1", "--budget", "1e30"]):
        assert main(["--lang", lang, *command, "--store", loaded_store]) == 0
        out = capsys.readouterr().out
        assert "1.0e+30" in out and not _LONG_AMOUNT.search(out), out
    assert main(["--lang", lang, "plan", "m1", "--budget", "1e30", "--store", loaded_store]) == 0
    assert unspent in capsys.readouterr().out


def test_a_slot_price_leaves_no_step_that_fits() -> None:
    """The s market's ``fact m0 --budget 1e6`` left ¥8,500 and a talent slot while a ¥6,790
    talent returned over ¥1 per yuan, and said no step returned ¥1 per yuan: a slot price
    passed the cheap talents over. Here the best price buys talent 3 alone, leaving 20 yuan
    and two slots; talent 1 (20 yuan, 3.9 per yuan) fits and is bought too."""
    from kolmatch.matching.fact import Curve, _slot_priced

    cost = np.array([90.0, 20.0, 50.0, 90.0, 20.0])
    gain = np.array([197.0, 78.0, 344.0, 484.0, 51.0])
    t = _slot_priced(
        [Curve(cost, gain, np.arange(5), True)],
        110.0,
        floor=1.0,
        most_items=3,
        shared=[True],
        group=[0],
        caps=[110.0],
    )
    assert sorted(t.steps[0]) == [1, 3] and t.gain.sum() == pytest.approx(562.0)


_TOO_DEAR = re.compile(r"costs more than is left \(the cheapest ¥([\d,]+)\)")


@pytest.mark.parametrize("budget", ["3e5", "1e6", "3e6"])
def test_fact_says_why_budget_is_left(
    loaded_store: str, capsys: pytest.CaptureFixture[str], budget: str
) -> None:
    """The reason for what a split leaves matches its figures."""
    for merchant in ("m0", "m1", "m2", "m3", "m5"):
        capsys.readouterr()
        assert main(["fact", merchant, "--budget", budget, "--json", "--store", loaded_store]) == 0
        r = json.loads(capsys.readouterr().out)
        if r["unspent"] < 0.5:
            assert not r["reasons"]
            continue
        (reason,) = r["reasons"]
        if "no further step returns" in reason:
            assert all(c["next_return"] < r["floor"] for c in r["channels"]), r
        elif m := _TOO_DEAR.search(reason):
            assert float(m[1].replace(",", "")) > r["unspent"], reason
        else:
            assert "max_talents" in reason, reason


def test_plan_labels_list_prices_as_quotes(
    loaded_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plan's prices are list prices (public), not the private negotiated fee."""
    capsys.readouterr()
    for command in (["plan", "m1", "--budget", "2e6"], ["fact", "m1", "--budget", "2e6"]):
        assert main([*command, "--store", loaded_store]) == 0
        heads = [
            line.split()
            for line in capsys.readouterr().out.splitlines()
            if "tier" in line.split()[1:2]
        ]
        assert heads and all(h[:3] == ["talent", "tier", "quote"] and "fee" not in h for h in heads)
        assert main([*command, "--json", "--store", loaded_store]) == 0
        doc = json.loads(capsys.readouterr().out)
        talents = doc.get("talents") or [t for c in doc["channels"] for t in c["talents"]]
        assert talents and all(t["quote"] == t["fee"] for t in talents)
    assert main(["--lang", "zh-CN", "plan", "m1", "--budget", "2e6", "--store", loaded_store]) == 0
    assert "报价" in capsys.readouterr().out


def test_leads_say_what_their_roi_divides_by(
    loaded_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Leads' ROI is on the talent's negotiated fee with no commission (the API's roiBasis),
    match's on the quote plus commission: the line says which."""
    capsys.readouterr()
    assert main(["leads", "t1", "--top", "3", "--store", loaded_store]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if "ROI" in x]
    assert lines and all(
        "ROI" in x and "on the talent's negotiated fee (no commission)" in x for x in lines
    )
    assert main(["--lang", "zh-CN", "leads", "t1", "--top", "3", "--store", loaded_store]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if "ROI" in x]
    assert lines and all("按达人协商费用计，不含佣金" in x for x in lines)


@pytest.mark.parametrize(
    "dates",
    [
        ["--start", "2026-08-01", "--end", "2026-08-02"],
        ["--end", "2026-08-02"],
        ["--start", ""],  # an empty day given is a day given
    ],
)
def test_book_refuses_a_campaign_and_dates(
    loaded_store: str, capsys: pytest.CaptureFixture[str], dates: list[str]
) -> None:
    capsys.readouterr()
    book = ["book", "m1", "--talents", "t1", "--campaign", "cp8", *dates, "--key", "both"]
    assert main([*book, "--store", loaded_store]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line.startswith("kolmatch: argument --campaign: ") and dates[0] in line, line
    assert "--start D --end D" in line and not captured.out


def test_growth_prints_na_not_nan(
    loaded_store: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad future-dated record made the backtest's figures NaN: they read n/a."""
    from dataclasses import replace

    from kolmatch.engine.service import EngineService

    growth = EngineService.growth

    def undefined(self: EngineService, **kw: object) -> object:
        r = growth(self, **kw)  # type: ignore[arg-type]
        nan = float("nan")
        b = replace(
            r.backtest_merchants,
            forecast_wape=nan,
            last_year_wape=nan,
            forecast_total_error=nan,
            last_year_total_error=nan,
        )
        return replace(r, backtest_merchants=b, forecast_12_months=nan)

    monkeypatch.setattr(EngineService, "growth", undefined)
    capsys.readouterr()
    for lang, na in (("en", "n/a"), ("zh-CN", "不适用")):
        assert main(["--lang", lang, "growth", "--top", "2", "--store", loaded_store]) == 0
        out = capsys.readouterr().out
        assert "nan" not in out.lower().replace("financ", ""), out
        assert f"WAPE {na}" in out and na in out.split("\n")[1], out


#: An English word left in Chinese (units, GMV and ROI, are capitals in both languages).
_WORD = re.compile(r"[a-z]{2,}")


def _zh_and_en(call: Callable[[argparse.Namespace, str], str], text: str) -> tuple[str, str]:
    return call(argparse.Namespace(lang="zh-CN"), text), call(argparse.Namespace(lang="en"), text)


#: Every reason a planner can give for a talent or a merchant left out (plan.py, assign.py),
#: the templates filled in as the planners fill them.
_REASONS = [
    *LEFT_OUT_REASONS,
    *UNASSIGNED_REASONS,
    LEFT_OUT_RETURN_BELOW.format(floor="1.25x"),
    LEFT_OUT_TIER_FULL.format(tier="top", talents="3 talents"),
    LEFT_OUT_TIER_FULL.format(tier="micro", talents="1 talent"),
    LEFT_OUT_TIER_SHARE.format(tier="mid", share=0.4),
    LEFT_OUT_MAX_TALENTS.format(n=12),
]


def test_every_planner_reason_is_listed() -> None:
    assert len(LEFT_OUT_TEMPLATES) == 4  # each filled in above
    assert len(set(_REASONS)) == len(_REASONS) - 1  # compliance: both planners'


@pytest.mark.parametrize("reason", _REASONS)
def test_every_reason_is_written_in_chinese(reason: str) -> None:
    """The zh-CN check over whole commands finds three English words in a row; a reason
    alone ("55 compliance") is one or two: each is checked here, none left in English."""
    zh, en = _zh_and_en(_reason_text, reason)
    assert zh != en and zh != reason, zh
    assert not _WORD.search(zh.replace("max_talents", "")), zh


@pytest.mark.parametrize(
    "rule",
    [
        FEE_RULE_MEDIAN.format(rate=0.0812, quote="list price", n=1234, floor=500.0),
        FEE_RULE_MEDIAN.format(rate=0.0812, quote="fee", n=12, floor=1500.0),
        FEE_RULE_DEFAULT.format(rate=0.1, quote="list price", floor=500.0),
    ],
)
def test_every_fee_rule_is_written_in_chinese(rule: str) -> None:
    zh, en = _zh_and_en(_fee_rule_text, rule)
    assert zh != en and not _WORD.search(zh), zh


@pytest.mark.parametrize("campaign", ["cp8", "cp 8", "双十一 cp (2)"])
@pytest.mark.parametrize("name", WINDOW_NAMES)
def test_every_window_is_written_in_chinese(name: str, campaign: str) -> None:
    """Windows the planners name, a campaign's id spaces and brackets and all."""
    window = f"{name.format(id=campaign)} (2026-07-01..2026-07-30)"
    zh, en = _zh_and_en(_window_text, window)
    assert zh != en and en == window, zh
    assert "2026-07-01..2026-07-30" in zh
    if "{id}" in name:
        assert zh.startswith(f"活动 {campaign}（"), zh
    assert not _WORD.search(zh.replace(campaign, "")), zh


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--kpi-target", "1e20"], "argument --kpi-target: must be a finite amount"),
        (["--budget", "1e20"], "argument --budget: must be a finite amount"),
        (["--start", "2026-9-1"], "argument --start: must be a day written YYYY-MM-DD"),
        (["--name", " "], "argument --name: must not be empty"),
    ],
)
def test_campaign_create_names_its_own_flags(
    loaded_store: str, capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    """The engine names a brief's fields as the API does (kpiTarget); the command its flags."""
    create = ["campaign", "create", "cpF", "--name", "F", "--start", "2026-09-01"]
    create += ["--end", "2026-09-10", "--store", loaded_store]
    capsys.readouterr()
    assert main([*create, *argv]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"kolmatch: {said}"), line


def test_campaign_ids_are_named_as_the_usage_names_them(
    loaded_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = ["--name", "F", "--start", "2026-09-01", "--end", "2026-09-10", "--store", loaded_store]
    capsys.readouterr()
    assert main(["campaign", "create", " cpF", *run]) == 2
    assert capsys.readouterr().err.startswith("kolmatch: argument ID: must not start or end")
    assert main(["campaign", "create", "cp F", *run]) == 0  # an inner space is an id's own
    assert main(["campaign", "create", "cp F", *run]) == 2
    assert capsys.readouterr().err.startswith("kolmatch: argument ID: campaign 'cp F' exists")
    assert main(["campaign", "join", "cp F", "--merchant", "m1", "--store", loaded_store]) == 0
    assert (
        main(
            [
                "--lang",
                "zh-CN",
                "plan",
                "m1",
                "--budget",
                "2e6",
                "--campaign",
                "cp F",
                "--store",
                loaded_store,
            ]
        )
        == 0
    )
    assert "在 活动 cp F（2026-09-01..2026-09-10）" in capsys.readouterr().out
