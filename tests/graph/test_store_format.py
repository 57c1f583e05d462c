"""Store formats: recorded in every store, an older one refused with what to run, then migrated."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kolmatch.cli import main
from kolmatch.errors import StoreError
from kolmatch.graph.market import read_market
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.graph.store import STORE_FORMAT
from kolmatch.loaders.load import load_folder


def _as_format_1(path: Path) -> None:
    """Make the file look as a kolmatch before formats wrote it: no record, a column fewer."""
    db = sqlite3.connect(path)
    db.execute("DROP TABLE kolmatch_format")
    db.execute("ALTER TABLE n_talent DROP COLUMN region")
    db.commit()
    db.close()


def test_a_store_records_its_format(tiny_market: Path, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "g.db")
    assert store.format() is None  # no kolmatch graph yet
    load_folder(tiny_market, store)
    assert store.format() == STORE_FORMAT
    store.close()


def test_an_older_store_is_refused_with_what_to_run_then_migrated(
    tiny_market: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "g.db"
    store = SQLiteStore(path)
    load_folder(tiny_market, store)
    version = store.version()
    store.close()
    _as_format_1(path)

    old = SQLiteStore(path)
    assert old.format() == 1
    with pytest.raises(
        StoreError, match=rf"older kolmatch .*run: kolmatch migrate --store sqlite:///{path}"
    ):
        read_market(old)
    old.close()

    assert main(["migrate", "--store", f"sqlite:///{path}"]) == 0
    assert f"store format 1 -> store format {STORE_FORMAT}" in capsys.readouterr().out
    new = SQLiteStore(path)
    g = read_market(new)  # readable; the column the model gained reads as unset
    assert len(g.node("Talent")) == 100
    assert all(r is None for r in g.node("Talent").columns["region"])
    assert new.version() == version  # migrating changes no data
    new.close()


def test_a_newer_store_is_refused(tiny_market: Path, tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    store = SQLiteStore(path)
    load_folder(tiny_market, store)
    store.close()
    db = sqlite3.connect(path)
    db.execute("UPDATE kolmatch_format SET format = ?", (STORE_FORMAT + 1,))
    db.commit()
    db.close()
    newer = SQLiteStore(path)
    with pytest.raises(StoreError, match=r"newer kolmatch .* upgrade kolmatch"):
        read_market(newer)
    with pytest.raises(StoreError, match="newer kolmatch"):
        newer.ensure_schema()  # nothing is downgraded either
    newer.close()
