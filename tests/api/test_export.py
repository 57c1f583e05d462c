"""GET /export/matches over HTTP: internal tools' match lists as CSV or JSON lines, streamed.

Each merchant's rows are the ``matchLists`` field's for that merchant (the endpoint executes
the field), so they must equal what the field answers; other roles are refused, bad
parameters are a 400 naming the parameter, and the rate limit is /graphql's.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import httpx
import pytest

from kolmatch.api.app import EVIDENCE_SEPARATOR, EXPORT_COLUMNS, EXPORT_QUERY, create_app
from kolmatch.api.auth import KeyRing, Principal
from kolmatch.api.limits import Limits
from kolmatch.matching.score import DEFAULT_WEIGHTS
from tests.api.conftest import Api, serve

MERCHANTS = ["m0", "m1", "m2"]


def export(api: Api, who: str | None = "internal", **params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {api.keys[who]}"} if who else {}
    return api.client.get(f"{api.url}/export/matches", params=params, headers=headers)


def match_lists(api: Api, merchants: list[str], first: int) -> list[Any]:
    """What the matchLists field answers, with the same selection as the export."""
    body = api.post(EXPORT_QUERY, "internal", variables={"ids": merchants, "first": first}).json()
    lists: list[Any] = body["data"]["matchLists"]
    return lists


def test_jsonl_rows_are_strict_json_equal_to_the_match_lists_field(api: Api) -> None:
    r = export(api, format="jsonl", merchant=MERCHANTS, first=7)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-ndjson")
    assert 'filename="matches.jsonl"' in r.headers["content-disposition"]

    def strict(name: str) -> None:
        raise ValueError(f"not strict JSON: {name}")

    rows = [json.loads(line, parse_constant=strict) for line in r.text.splitlines()]
    assert r.text.endswith("\n")
    expected = [
        {"merchant": item["merchant"], **m}
        for item in match_lists(api, MERCHANTS, 7)
        for m in item["matches"]
    ]
    assert len(expected) == 7 * len(MERCHANTS)
    assert rows == expected
    # one merchant's rows at a time, in the order asked
    assert [row["merchant"] for row in rows] == [m for m in MERCHANTS for _ in range(7)]


def test_csv_parses_and_equals_the_match_lists_field(api: Api) -> None:
    r = export(api, format="csv", merchant=MERCHANTS, first=5)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    expected = [
        (item["merchant"], m) for item in match_lists(api, MERCHANTS, 5) for m in item["matches"]
    ]
    assert len(rows) == len(expected) == 15
    for row, (merchant, m) in zip(rows, expected, strict=True):
        t = m["talent"]
        assert row["merchant"] == merchant
        assert (row["talent"], row["talent_name"], row["tier"]) == (t["id"], t["name"], t["tier"])
        assert int(row["rank"]) == m["rank"]
        assert float(row["score"]) == m["score"]
        assert float(row["price"]) == m["price"]
        assert row["price_estimated"] == str(m["priceEstimated"]).lower()
        list_price = float(row["list_price"]) if row["list_price"] else None
        assert list_price == t["listPrice"]
        assert row["evidence"].split(EVIDENCE_SEPARATOR) == m["evidence"]
        breakdown = {b["signal"]: b["value"] for b in m["breakdown"]}
        for signal in DEFAULT_WEIGHTS:
            assert float(row[signal]) == pytest.approx(breakdown[signal])
        assert row["error"] == ""


def test_a_merchant_without_a_list_gets_the_fields_error_and_the_others_their_rows(
    api: Api,
) -> None:
    f = api.service.snapshot.features
    excluded = [
        str(m) for m, risk in zip(f.merchant_ids, f.merchant_risk, strict=True) if risk >= 1.0
    ]
    if not excluded:
        pytest.skip("the s market has no excluded merchant")
    bad = excluded[0]
    field = api.post(EXPORT_QUERY, "internal", variables={"ids": [bad], "first": 3}).json()
    code = field["errors"][0]["extensions"]["code"]
    lines = export(api, format="jsonl", merchant=["m0", bad], first=3).text.splitlines()
    rows = [json.loads(x) for x in lines]
    assert [r["merchant"] for r in rows] == ["m0"] * 3 + [bad]
    assert rows[-1]["error"] == {"code": code, "message": field["errors"][0]["message"]}
    table = list(csv.DictReader(io.StringIO(export(api, merchant=["m0", bad], first=3).text)))
    assert table[-1]["merchant"] == bad and table[-1]["error"].startswith(code + ": ")
    assert table[-1]["talent"] == ""


@pytest.mark.parametrize(
    ("who", "status", "code"),
    [(None, 401, "UNAUTHENTICATED"), ("m0", 403, "FORBIDDEN"), ("agency", 403, "FORBIDDEN")],
)
def test_other_roles_are_refused_with_the_apps_error_shape(
    api: Api, who: str | None, status: int, code: str
) -> None:
    r = export(api, who, format="csv", merchant="m0")
    assert r.status_code == status
    errors = r.json()["errors"]
    assert [e["extensions"]["code"] for e in errors] == [code]
    assert "Talent" not in r.text


def test_an_unknown_key_is_401(api: Api) -> None:
    r = api.client.get(
        f"{api.url}/export/matches",
        params={"merchant": "m0"},
        headers={"Authorization": "Bearer not-a-key"},
    )
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"format": "xml", "merchant": "m0"}, "format"),
        ({"merchant": "m0", "first": "ten"}, "first"),
        ({"merchant": "m0", "first": "0"}, "first"),
        ({"merchant": "m0", "first": "101"}, "first"),
        ({"merchant": "m0", "first": ["2", "3"]}, "first"),
        ({"format": "csv"}, "merchant"),
        ({"merchant": "nobody"}, "merchant"),
        ({"merchant": [f"m{i}" for i in range(101)]}, "merchant"),
        ({"merchant": "m0", "sort": "score"}, "sort"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(
    api: Api, params: dict[str, Any], named: str
) -> None:
    r = export(api, **params)
    assert r.status_code == 400, r.text
    (error,) = r.json()["errors"]
    assert error["extensions"]["code"] == "BAD_ARGUMENT"
    assert error["message"].startswith(f"{named}: "), error["message"]


def test_the_export_takes_from_the_graphql_rate_limit(api: Api) -> None:
    """One bucket per key for both endpoints: an operation per merchant exported."""
    limits = Limits(
        timeout_s=60, rate_per_s=0.001, burst=10, internal_rate_per_s=0.001, internal_burst=10
    )
    app = create_app(api.service, KeyRing({"k": Principal("internal")}), limits=limits)
    url, server, thread = serve(app)
    try:
        with httpx.Client(timeout=60, headers={"Authorization": "Bearer k"}) as client:
            ok = client.get(
                f"{url}/export/matches", params={"merchant": [f"m{i}" for i in range(9)]}
            )
            assert ok.status_code == 200  # 9 of the burst of 10
            body = {"query": "{ me { kind } }"}
            assert client.post(f"{url}/graphql", json=body).status_code == 200  # the 10th
            refused = client.get(f"{url}/export/matches", params={"merchant": "m0"})
            assert refused.status_code == 429
            assert refused.headers["retry-after"]
            assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
            assert client.post(f"{url}/graphql", json=body).status_code == 429
    finally:
        server.should_exit = True
        thread.join(timeout=10)
