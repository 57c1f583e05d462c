"""Campaign briefs through the engine: created, joined, planned for, equal to a rebuild."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from kolmatch.engine.cache import features_of
from kolmatch.engine.service import EngineService
from kolmatch.errors import BadArgument, NotEligible, UnknownId
from kolmatch.graph.sqlite_store import SQLiteStore
from kolmatch.loaders.load import load_folder
from kolmatch.matching.availability import planning_window


@pytest.fixture
def service(tiny_market: Path, tmp_path: Path) -> Iterator[EngineService]:
    store = SQLiteStore(tmp_path / "c.db")
    load_folder(tiny_market, store)
    svc = EngineService(store, tmp_path / "cache")
    yield svc
    svc.close()


def _eligible(svc: EngineService, n: int) -> list[str]:
    f = svc.snapshot.features
    return [str(m) for m in f.merchant_ids[f.merchant_risk < 1.0][:n]]


def test_a_brief_is_created_joined_and_planned_for(service: EngineService) -> None:
    f = service.snapshot.features
    start = (f.today + timedelta(days=10)).isoformat()
    end = (f.today + timedelta(days=20)).isoformat()
    cats = sorted(service.store.node_rows("Category", ()).ids)[:2]
    v = service.snapshot.version
    snap = service.create_campaign(
        campaign_id="cpX",
        name="Double 11 trial",
        start=start,
        end=end,
        goal="gmv",
        kpi_target=5e6,
        budget=2e5,
        categories=cats,
        actor="internal",
    )
    assert snap.version == v + 1
    brief = snap.campaigns["cpX"]
    assert (brief.goal, brief.kpi_target, brief.budget, brief.categories) == ("gmv", 5e6, 2e5, cats)
    assert brief.status(f.today) == "upcoming" and brief.merchants == []
    three = _eligible(service, 3)
    for m in three:
        mine = [p for p, owner in service.snapshot.product_merchant.items() if owner == m][:1]
        snap = service.join_campaign(m, "cpX", products=mine, actor=f"merchant:{m}")
    brief = snap.campaigns["cpX"]
    assert brief.merchants == sorted(three)
    assert len(brief.products) == 3
    # the planners see the window and who joined, equal to a rebuild
    rebuilt = features_of(service.store)
    assert list(snap.features.campaign_ids) == list(rebuilt.campaign_ids)
    assert (snap.features.merchant_campaigns != rebuilt.merchant_campaigns).nnz == 0
    assert np.array_equal(snap.features.campaign_start, rebuilt.campaign_start)
    w = planning_window(snap.features, "cpX", snap.features.merchant_row(three[0]))
    assert w.start == (f.today + timedelta(days=10)).toordinal()
    # joining again with nothing new writes nothing
    assert service.join_campaign(three[0], "cpX").version == snap.version


def test_bad_briefs_and_joins_name_what_is_wrong(service: EngineService) -> None:
    f = service.snapshot.features
    day = (f.today + timedelta(days=5)).isoformat()
    with pytest.raises(BadArgument, match="argument goal"):
        service.create_campaign(campaign_id="c1", name="x", start=day, end=day, goal="fame")
    with pytest.raises(BadArgument, match="argument end"):
        service.create_campaign(campaign_id="c1", name="x", start=day, end=f.today.isoformat())
    with pytest.raises(UnknownId, match="Category"):
        service.create_campaign(
            campaign_id="c1", name="x", start=day, end=day, categories=["no-such"]
        )
    first = next(iter(service.snapshot.campaigns))
    with pytest.raises(BadArgument, match="exists"):
        service.create_campaign(campaign_id=first, name="x", start=day, end=day)
    over = [c for c, b in service.snapshot.campaigns.items() if b.status(f.today) == "over"]
    m = _eligible(service, 1)[0]
    if over:
        with pytest.raises(BadArgument, match="ended on"):
            service.join_campaign(m, over[0])
    with pytest.raises(UnknownId, match="Campaign"):
        service.join_campaign(m, "cp-none")
    service.create_campaign(campaign_id="c2", name="y", start=day, end=day)
    theirs = next(
        p for p, owner in service.snapshot.product_merchant.items() if owner not in (m, None)
    )
    with pytest.raises(BadArgument, match="is not"):
        service.join_campaign(m, "c2", products=[theirs])
    banned = f.merchant_ids[f.merchant_risk >= 1.0]
    if len(banned):
        with pytest.raises(NotEligible):
            service.join_campaign(str(banned[0]), "c2")
    assert service.snapshot.campaigns["c2"].merchants == []
