"""Numbers outside their field's declared range, and rows breaking a row rule, are refused.

Every case names the file, the line, the field and the value, and writes nothing: on the
columnar fast path's files (CSV, the bad row in a later block than rows already checked), in
JSONL, on each store, and in the offline importer's input. Values at a bound are accepted.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from kolmatch.errors import BadArgument, InputError
from kolmatch.graph.model import (
    MAX_AMOUNT,
    NODE_BY_FILE,
    NODES,
    REL_BY_FILE,
    RELATIONSHIPS,
    Field,
    FieldType,
)
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.graph.store import GraphStore
from kolmatch.loaders import columnar
from kolmatch.loaders.columnar import NotFast, read_tables
from kolmatch.loaders.load import Validation, load_folder
from kolmatch.loaders.neo4j_import import write_import_files
from kolmatch.loaders.reader import ProblemLog, fields_of, read_rows
from tests.conftest import snapshot

#: (file, the row's changes, the field named, the reason): one case per kind of rule.
REFUSED = [
    pytest.param(
        "purchased",
        {"amount": "-5.00"},
        "amount",
        "-5.0 is out of range: must be 0 to 1e12",
        id="negative-amount",
    ),
    pytest.param(
        "promoted",
        {"gmv": "1e300"},
        "gmv",
        "1e+300 is out of range: must be 0 to 1e12",
        id="implausible-gmv",  # recordCollaboration refused it; the load took it
    ),
    pytest.param(
        "talent",
        {"commission_rate": "1.5"},
        "commission_rate",
        "1.5 is out of range: must be 0 to 1",
        id="rate-above-1",
    ),
    pytest.param(
        "user",
        {"city_tier": "9"},
        "city_tier",
        "9 is out of range: must be 1 to 5",
        id="tier-out-of-range",
    ),
    pytest.param(
        "merchant",
        {"min_talents": "9", "max_talents": "2"},
        "max_talents",
        "max_talents 2 is less than min_talents 9",
        id="min-above-max",
    ),
]


@pytest.fixture(params=["sqlite", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def loaded(request: pytest.FixtureRequest, tiny_market: Path, sqlite_store: SQLiteStore) -> Any:
    """A store of each kind holding the tiny market."""
    store: GraphStore = (
        sqlite_store if request.param == "sqlite" else request.getfixturevalue("neo4j_store")
    )
    load_folder(tiny_market, store)
    return store


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several fast-path blocks a file: a bad last row comes after blocks already yielded."""
    monkeypatch.setattr(columnar, "BLOCK_BYTES", 256)


def _last_row(path: Path) -> dict[str, str]:
    with path.open(encoding="utf-8", newline="") as fh:
        *_, last = csv.DictReader(fh)
    return dict(last)


def _new_row(
    template: dict[str, str], file: str, changes: dict[str, str], new: str = "-new"
) -> dict[str, str]:
    """``template`` with a fresh id (or key: the same pair again) and ``changes``."""
    key = "id" if file in NODE_BY_FILE else REL_BY_FILE[file].key
    assert key is not None, f"{file} has no key: a new row would repeat its pair"
    return {**template, key: template[key] + new, **changes}


def _csv_line(row: dict[str, str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(row.values())
    return buf.getvalue()


def _spec(file: str) -> Any:
    return NODE_BY_FILE.get(file) or REL_BY_FILE[file]


def _refused(folder: Path, store: GraphStore) -> InputError:
    """Load ``folder`` into ``store``, which must refuse it and stay as it was."""
    before, version = snapshot(store), store.version()
    with pytest.raises(InputError) as info:
        load_folder(folder, store)
    assert snapshot(store) == before, "a refused load changed the store"
    assert store.version() == version, "a refused load made a version"
    return info.value


@pytest.mark.parametrize(("file", "changes", "field", "reason"), REFUSED)
def test_a_bad_csv_row_is_named_and_nothing_is_written(
    tiny_market: Path,
    loaded: GraphStore,
    tmp_path: Path,
    small_blocks: None,
    file: str,
    changes: dict[str, str],
    field: str,
    reason: str,
) -> None:
    d = tmp_path / "in"
    d.mkdir()
    path = d / f"{file}.csv"
    shutil.copy(tiny_market / path.name, path)
    assert path.stat().st_size > 2 * 256  # the fast path yields blocks before the bad row
    text = path.read_text(encoding="utf-8")
    path.write_text(text + _csv_line(_new_row(_last_row(path), file, changes)), encoding="utf-8")
    line = text.count("\n") + 1
    err = _refused(d, loaded)
    assert [str(p) for p in err.problems] == [f"{file}.csv:{line}: field '{field}': {reason}"]


@pytest.mark.parametrize(("file", "changes", "field", "reason"), REFUSED)
def test_a_bad_jsonl_row_is_named_and_nothing_is_written(
    tiny_market: Path,
    loaded: GraphStore,
    tmp_path: Path,
    file: str,
    changes: dict[str, str],
    field: str,
    reason: str,
) -> None:
    d = tmp_path / "in"
    d.mkdir()
    template = _last_row(tiny_market / f"{file}.csv")
    numbers = {n for n, f in fields_of(_spec(file)).items() if f.bounds is not None}

    def line(row: dict[str, str]) -> str:  # numbers as JSON numbers, as an exporter writes
        return json.dumps({k: json.loads(v) if k in numbers else v for k, v in row.items() if v})

    good = _new_row(template, file, {}, "-1")
    bad = _new_row(template, file, changes, "-2")
    (d / f"{file}.jsonl").write_text(line(good) + "\n" + line(bad) + "\n")
    err = _refused(d, loaded)
    assert [str(p) for p in err.problems] == [f"{file}.jsonl:2: field '{field}': {reason}"]


def test_every_file_s_problems_are_listed(loaded: GraphStore, tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    (d / "follows.csv").write_text("src,dst,since\nu0,t_nobody,2026-01-01\nu1,t1,yesterday\n")
    (d / "purchased.csv").write_text(
        "src,dst,order_id,amount,time,talent,content\n"
        "u0,p4,oX1,109.80,2026-07-01,,\n"
        "u1,p7,oX2,-5.00,2026-07-01,,\n"
    )
    err = _refused(d, loaded)
    assert sorted((p.file, p.line, p.field) for p in err.problems) == [
        ("follows.csv", 2, "dst"),
        ("follows.csv", 3, "since"),
        ("purchased.csv", 3, "amount"),
    ]


def test_a_row_rule_is_named_beside_another_problem_of_the_row(
    loaded: GraphStore, tmp_path: Path
) -> None:
    d = tmp_path / "in"
    d.mkdir()
    (d / "merchant.csv").write_text(
        "id,name,target_gender,target_age_band,budget,min_talents,max_talents,room_followers\n"
        "mX,Mixed up,,,-145000,9,2,\n"
    )
    err = _refused(d, loaded)
    assert [str(p) for p in err.problems] == [
        "merchant.csv:2: field 'budget': -145000.0 is out of range: must be 0 to 1e12",
        "merchant.csv:2: field 'max_talents': max_talents 2 is less than min_talents 9",
    ]


def test_an_amount_the_api_refuses_is_refused_by_a_load(loaded: GraphStore, tmp_path: Path) -> None:
    """The review's row: ``gmv`` 1e300 loaded while recordCollaboration refused it. Both now
    read the one range of ``promoted.gmv`` (0 to MAX_AMOUNT), and of its day; a load takes
    the API's cap itself."""
    d = tmp_path / "in"
    d.mkdir()
    (d / "promoted.csv").write_text(
        "src,dst,collab_id,gmv,time\n"
        "t1,p1,c9,1e300,2026-01-01\n"
        f"t1,p1,c10,{MAX_AMOUNT!r},2026-01-01\n"
    )
    err = _refused(d, loaded)
    assert [str(p) for p in err.problems] == [
        "promoted.csv:2: field 'gmv': 1e+300 is out of range: must be 0 to 1e12"
    ]
    (d / "promoted.csv").write_text(
        f"src,dst,collab_id,gmv,time\nt1,p1,c10,{MAX_AMOUNT!r},2026-01-01\n"
    )
    before = loaded.counts()["PROMOTED"]
    load_folder(d, loaded)
    assert loaded.counts()["PROMOTED"] == before + 1


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_a_past_event_dated_ahead_or_before_2000_is_refused_by_a_load_as_by_the_api(
    loaded: GraphStore, tmp_path: Path, suffix: str
) -> None:
    """The review's row: a ``promoted.csv`` row dated 2031 loaded while recordCollaboration
    refused it. A past event's day is now one rule (the model's ``past`` fields) for both:
    from 2000-01-01 to today, a date-time by its day; refused with its file, line and field,
    nothing written. Today and windows ahead (a campaign's) load."""
    from kolmatch.engine.write_rules import checked_past_day
    from kolmatch.graph.model import latest_today

    today = latest_today()
    ahead = (today + timedelta(days=1)).isoformat()
    d = tmp_path / "in"
    d.mkdir()
    rows = [
        {"src": "u1", "dst": "t1", "since": ahead},
        {"src": "u1", "dst": "t2", "since": "1970-01-01"},
        {"src": "u2", "dst": "t1", "since": f"{ahead}T08:00:00"},
        {"src": "u2", "dst": "t2", "since": today.isoformat()},
    ]
    _write_rows(d / f"follows.{suffix}", rows)
    before = loaded.counts()
    err = _refused(d, loaded)
    first = 2 if suffix == "csv" else 1  # (a CSV's header is its line 1)
    late = f"is after today, {today.isoformat()}"
    assert [str(p) for p in err.problems] == [
        f"follows.{suffix}:{first}: field 'since': {ahead} {late}",
        f"follows.{suffix}:{first + 1}: field 'since': 1970-01-01 is before 2000-01-01",
        f"follows.{suffix}:{first + 2}: field 'since': {ahead} {late}",
    ]
    assert loaded.counts() == before
    with pytest.raises(BadArgument, match=f"argument time: {ahead} is after today"):
        checked_past_day(ahead, "time")  # (the API's words, the same rule)
    _write_rows(d / f"follows.{suffix}", rows[3:])
    (d / "campaign.csv").write_text(
        f"id,name,start,end\ncp-ahead,Ahead,{ahead},{(today + timedelta(days=30)).isoformat()}\n"
    )
    load_folder(d, loaded)
    assert loaded.counts()["FOLLOWS"] == before["FOLLOWS"] + 1
    assert loaded.counts()["Campaign"] == before["Campaign"] + 1


def _write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    """``rows`` as an import file: CSV with a header, or JSON lines, by the path's suffix."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return
    head = list(rows[0])
    path.write_text(
        ",".join(head) + "\n" + "".join(",".join(r[k] for k in head) + "\n" for r in rows)
    )


def test_values_at_the_bounds_are_accepted(sqlite_store: SQLiteStore, tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    (d / "user.csv").write_text("id,gender,age_band,city_tier\nu1,f,,1\nu5,m,,5\n")
    (d / "talent.csv").write_text(
        "id,name,followers,fee,list_price,commission_rate,capacity,region\n"
        "t0,Zero,0,0,0,0,0,\nt1,One,1,1,1,1.0,1,\n"
    )
    (d / "merchant.jsonl").write_text(
        json.dumps({"id": "m1", "name": "Even", "budget": 0, "min_talents": 3, "max_talents": 3})
        + "\n"
    )
    (d / "product.csv").write_text("id,name,price,commission_rate\np1,Gift,0,1\n")
    (d / "purchased.csv").write_text(
        "src,dst,order_id,amount,time,talent,content\nu1,p1,o1,0.00,2026-07-01,,\n"
    )
    v = Validation(d, sqlite_store)
    assert sum(len(b) for b in v.batches()) == 7 and not v.log
    assert sorted(v.fast_files) == ["product.csv", "purchased.csv", "talent.csv", "user.csv"]
    load_folder(d, sqlite_store)
    users = sqlite_store.node_rows("User", ("city_tier",))
    assert sorted(zip(users.ids, users.columns["city_tier"], strict=True)) == [
        ("u1", 1.0),
        ("u5", 5.0),
    ]
    talents = sqlite_store.node_rows("Talent", ("commission_rate", "followers"))
    assert sorted(talents.columns["commission_rate"]) == [0.0, 1.0]
    merchants = sqlite_store.node_rows("Merchant", ("min_talents", "max_talents"))
    assert (merchants.columns["min_talents"][0], merchants.columns["max_talents"][0]) == (3, 3)
    assert sqlite_store.counts()["PURCHASED"] == 1


def test_the_offline_import_refuses_the_same_rows(tiny_market: Path, tmp_path: Path) -> None:
    d = tmp_path / "in"
    shutil.copytree(tiny_market, d)
    path = d / "purchased.csv"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text + _csv_line(_new_row(_last_row(path), "purchased", {"amount": "-5.00"})),
        encoding="utf-8",
    )
    out = tmp_path / "out"
    with pytest.raises(InputError) as info:
        write_import_files(d, out, uid="u")
    assert [str(p) for p in info.value.problems] == [
        f"purchased.csv:{text.count(chr(10)) + 1}: field 'amount': -5.0 is out of range: "
        "must be 0 to 1e12"
    ]
    assert not out.exists()


# ---- every numeric field of the model, its bounds read from the model ----------------------


def _plain(fld: Field) -> str:
    """A value of ``fld`` that breaks no rule (its lower bound, for a number)."""
    if fld.choices:
        return fld.choices[0]
    bounds = fld.bounds
    if bounds is not None:
        return _text(fld, bounds[0])
    return {
        FieldType.STR: "x1",
        FieldType.DATE: "2026-01-01",
        FieldType.BOOL: "true",
        FieldType.INT: "0",
        FieldType.FLOAT: "0",
    }[fld.type]


def _text(fld: Field, x: float) -> str:
    return str(int(x)) if fld.type is FieldType.INT else repr(float(x))


def _outside(fld: Field) -> list[float]:
    """Values just outside ``fld``'s declared range."""
    bounds = fld.bounds
    assert bounds is not None
    lo, hi = bounds
    if fld.type is FieldType.INT:
        return [lo - 1, hi + 1]
    return [math.nextafter(lo, -math.inf)] + ([math.nextafter(hi, math.inf)] * math.isfinite(hi))


def _numeric() -> list[Any]:
    return [
        pytest.param(spec, fld, id=f"{spec.file}.{fld.name}")
        for spec in (*NODES, *RELATIONSHIPS)
        for fld in spec.fields
        if fld.type in (FieldType.INT, FieldType.FLOAT)
    ]


def _past() -> list[Any]:
    return [
        pytest.param(spec, fld, id=f"{spec.file}.{fld.name}")
        for spec in (*NODES, *RELATIONSHIPS)
        for fld in spec.fields
        if fld.past
    ]


def test_the_events_that_happened_are_the_past_fields() -> None:
    """Which dates are of the past: a date field added later is placed here on purpose."""
    past = {f"{p.values[0].file}.{p.values[1].name}" for p in _past()}
    assert past == {
        "live_session.day",
        "content.published",
        "violation.time",
        "follows.since",
        "engaged_with.last",
        "purchased.time",
        "promoted.time",
    }
    dates = {
        f"{s.file}.{f.name}"
        for s in (*NODES, *RELATIONSHIPS)
        for f in s.fields
        if f.type is FieldType.DATE
    }
    assert dates - past == {  # windows, which may lie ahead
        "campaign.start",
        "campaign.end",
        "booked.start",
        "booked.end",
        "signed_with.since",
        "engaged.start",
        "engaged.end",
    }


@pytest.mark.parametrize(("spec", "fld"), _past())
def test_every_past_day_is_checked_by_both_readers(tmp_path: Path, spec: Any, fld: Field) -> None:
    """2000-01-01 and today accepted by both readers; the day before and tomorrow refused by
    the row reader (naming the day) and left to it by the fast path."""
    from kolmatch.graph.model import latest_today

    today = latest_today()
    cols = fields_of(spec)
    base = {name: _plain(f) for name, f in cols.items()}
    days = ["2000-01-01", today.isoformat(), "1999-12-31", (today + timedelta(1)).isoformat()]
    for k, day in enumerate(days):
        row = dict(base, **{fld.name: day})
        path = tmp_path / f"{k}" / f"{spec.file}.csv"
        path.parent.mkdir()
        path.write_text(",".join(row) + "\n" + ",".join(row.values()) + "\n")
        log = ProblemLog()
        rows = list(read_rows(path, spec, log))
        if k < 2:
            assert not log and len(rows) == 1, log.problems
            assert len(list(read_tables(path, spec))) == 1
        else:
            (p,) = log.problems
            assert (p.file, p.line, p.field) == (path.name, 2, fld.name)
            assert p.reason.startswith(f"{day} is "), p.reason
            with pytest.raises(NotFast):
                list(read_tables(path, spec))


@pytest.mark.parametrize(("spec", "fld"), _numeric())
def test_every_numeric_field_is_checked_by_both_readers(
    tmp_path: Path, spec: Any, fld: Field
) -> None:
    """Each bound accepted, a value past it refused by the row reader (naming the value) and
    left to it by the fast path: read from the model, so a field added later is covered."""
    bounds = fld.bounds
    assert bounds is not None, f"{spec.file}.{fld.name} declares no range"
    cols = fields_of(spec)
    base = {name: _plain(f) for name, f in cols.items()}
    at = [x for x in bounds if math.isfinite(x)]
    for k, x in enumerate(at + _outside(fld)):
        row = dict(base, **{fld.name: _text(fld, x)})
        for r in spec.rules:  # a bound of a rule's first field: its second where it holds
            if fld.name == r.first and k < len(at):
                row[r.second] = row[fld.name]
        path = tmp_path / f"{k}" / f"{spec.file}.csv"
        path.parent.mkdir()
        path.write_text(",".join(row) + "\n" + ",".join(row.values()) + "\n")
        log = ProblemLog()
        rows = list(read_rows(path, spec, log))
        if k < len(at):
            assert not log and len(rows) == 1, log.problems
            assert len(list(read_tables(path, spec))) == 1
        else:
            (p,) = log.problems
            assert (p.file, p.line, p.field) == (path.name, 2, fld.name)
            assert p.reason.startswith(f"{row[fld.name]} is out of range: ")
            assert fld.range_text in p.reason or "largest whole number" in p.reason
            with pytest.raises(NotFast):
                list(read_tables(path, spec))
