"""Partial answers: a refused or failing field nulls itself alone; batch fields answer per item."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api

SECTION = "Access boundaries"


def _errors_at(body: dict[str, Any]) -> dict[tuple[Any, ...], str]:
    return {tuple(e["path"]): e["extensions"]["code"] for e in body.get("errors", [])}


def test_a_forbidden_field_leaves_its_siblings_answered(api: Api, ledger: Any) -> None:
    """The issue's case: a merchant asking for a talent's collaborators got `talent: null`."""
    ledger.case(SECTION, "a refused field nulls itself alone, siblings answered").tried()
    r = api.post('{ talent(id: "t56") { id name collaborators } me { kind } }', "m0")
    assert r.status_code == 200
    body = r.json()
    talent = body["data"]["talent"]
    assert talent["id"] == "t56" and talent["name"]
    assert talent["collaborators"] is None
    assert _errors_at(body) == {("talent", "collaborators"): "FORBIDDEN"}
    assert body["data"]["me"] == {"kind": "merchant"}


@pytest.mark.parametrize(
    "field",
    [
        "fee",
        "commissionRate",
        "capacity",
        "bookings { merchant }",
        "collaborators(first: 3)",
        "recommendedMerchants(first: 2) { merchant }",
    ],
)
def test_every_private_talent_field_is_refused_alone(api: Api, field: str) -> None:
    name = field.split("(")[0].split(" ")[0]
    body = api.post(f'{{ talent(id: "t1") {{ id tier {field} }} }}', "m1").json()
    assert body["data"]["talent"]["id"] == "t1" and body["data"]["talent"]["tier"]
    assert body["data"]["talent"][name] is None
    assert _errors_at(body) == {("talent", name): "FORBIDDEN"}


def test_an_internal_only_field_refused_leaves_the_rest_of_the_query(api: Api) -> None:
    body = api.post('{ me { kind } matchLists(merchantIds: ["m0"]) { merchant } }', "m0").json()
    assert body["data"] == {"me": {"kind": "merchant"}, "matchLists": None}
    assert _errors_at(body) == {("matchLists",): "FORBIDDEN"}


def test_match_lists_answer_each_merchant_and_refuse_an_unknown_id_alone(
    api: Api, ledger: Any
) -> None:
    ledger.case("Bad input: GraphQL requests", "a batch field with one unknown id").tried()
    body = api.post(
        '{ matchLists(merchantIds: ["m0", "nobody", "m2"], first: 2) { merchant '
        "matches { rank talent { id } } } }"
    ).json()
    lists = body["data"]["matchLists"]
    assert lists[1] is None
    assert [x["merchant"] for x in (lists[0], lists[2])] == ["m0", "m2"]
    assert all(len(x["matches"]) == 2 for x in (lists[0], lists[2]))
    (err,) = body["errors"]
    assert err["path"] == ["matchLists", 1] and err["extensions"]["code"] == "NOT_FOUND"
    assert "'nobody'" in err["message"]
    # the same lists as when asked alone
    alone = api.data(
        '{ matchLists(merchantIds: ["m2"], first: 2) { merchant matches { rank talent { id } } } }'
    )
    assert alone["matchLists"][0] == lists[2]


def test_overlap_with_answers_each_id_and_refuses_an_unknown_one_alone(api: Api) -> None:
    body = api.post(
        '{ talent(id: "t1") { id overlapWith(ids: ["t2", "ghost", "t3"]) { other shared } } }',
        "m0",
    ).json()
    talent = body["data"]["talent"]
    assert talent["id"] == "t1"
    items = talent["overlapWith"]
    assert items[1] is None and [items[0]["other"], items[2]["other"]] == ["t2", "t3"]
    assert _errors_at(body) == {("talent", "overlapWith", 1): "NOT_FOUND"}


def test_too_many_ids_null_the_batch_field_not_its_parent(api: Api) -> None:
    ids = ", ".join(f'"t{i}"' for i in range(101))
    body = api.post(f'{{ talent(id: "t1") {{ id overlapWith(ids: [{ids}]) {{ other }} }} }}').json()
    assert body["data"]["talent"] == {"id": "t1", "overlapWith": None}
    assert _errors_at(body) == {("talent", "overlapWith"): "BAD_ARGUMENT"}


def test_a_merchant_s_customer_counts_are_not_shown_to_agencies(api: Api) -> None:
    """Leads say how many of a merchant's customers a talent reaches: internal tools only,
    refused with FORBIDDEN like every other field (it was a silent null)."""
    talent = api.service.snapshot.agency_roster[api.agency][0]  # type: ignore[attr-defined]
    leads = "recommendedMerchants(first: 3) { merchant customersReached }"
    q = f'{{ talent(id: "{talent}") {{ {leads} }} }}'
    r = api.post(q, "agency").json()
    as_agency = r["data"]["talent"]["recommendedMerchants"]
    as_internal = api.data(q, "internal")["talent"]["recommendedMerchants"]
    # refused field by field (FORBIDDEN at each lead's path), the rest of each lead answered
    assert as_agency and all(x["customersReached"] is None for x in as_agency)
    assert len(r["errors"]) == len(as_agency)
    assert all(e["extensions"]["code"] == "FORBIDDEN" for e in r["errors"])
    assert {tuple(e["path"][-2:]) for e in r["errors"]} == {
        (i, "customersReached") for i in range(len(as_agency))
    }
    assert [x["merchant"] for x in as_agency] == [x["merchant"] for x in as_internal]
    assert all(isinstance(x["customersReached"], int) for x in as_internal)
