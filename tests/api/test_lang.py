"""The reader's language over HTTP: Accept-Language picks the evidence's and errors' words,
never the data or the error codes."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api

MATCHES = (
    '{ merchant(id: "m0") { matches(first: 3) '
    "{ edges { node { rank score price evidence talent { id } } } } } }"
)
WHY = '{ merchant(id: "m0") { whyNot(talent: "%s", first: 3) { reason detail rank } } }'
OTHERS = '{ merchant(id: "m1") { matches(first: 1) { totalCount } } }'


def _post(api: Api, query: str, lang: str | None) -> dict[str, Any]:
    headers = {"Authorization": "Bearer " + api.keys["m0"]}
    if lang is not None:
        headers["Accept-Language"] = lang
    r = api.client.post(f"{api.url}/graphql", json={"query": query}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _nodes(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["node"] for e in doc["data"]["merchant"]["matches"]["edges"]]


def test_evidence_in_chinese(api: Api) -> None:
    zh = _nodes(_post(api, MATCHES, "zh-CN,zh;q=0.9,en;q=0.8"))
    en = _nodes(_post(api, MATCHES, "en-US"))
    default = _nodes(_post(api, MATCHES, None))
    assert en == default  # no header: English
    # the same ranking and numbers; only the words differ
    strip = [{k: v for k, v in n.items() if k != "evidence"} for n in zh]
    assert strip == [{k: v for k, v in n.items() if k != "evidence"} for n in en]
    lines = [line for n in zh for line in n["evidence"]]
    assert any("受众的兴趣有" in line for line in lines)
    assert any("单次合作预期 GMV ¥" in line and "万" in line for line in lines)
    assert not any("expected GMV" in line for line in lines)
    assert all(len(a["evidence"]) == len(b["evidence"]) for a, b in zip(zh, en, strict=True))


def test_why_not_in_chinese(api: Api) -> None:
    talent = _nodes(_post(api, MATCHES, None))[0]["talent"]["id"]
    zh = _post(api, WHY % talent, "zh-CN")["data"]["merchant"]["whyNot"]
    en = _post(api, WHY % talent, "en")["data"]["merchant"]["whyNot"]
    assert zh["reason"] == en["reason"] == "listed" and zh["rank"] == en["rank"] == 1
    assert zh["detail"].startswith(f"{talent} 在列表中：排名第 1")
    assert en["detail"].startswith(f"{talent} is in the list: ranked 1")


def test_errors_in_chinese_keep_their_code_and_detail(api: Api) -> None:
    zh = _post(api, OTHERS, "zh-CN")["errors"][0]
    en = _post(api, OTHERS, "en")["errors"][0]
    assert zh["extensions"]["code"] == en["extensions"]["code"] == "FORBIDDEN"
    assert en["message"].startswith("not allowed: ")
    assert zh["message"] == "无权访问：" + en["message"].removeprefix("not allowed: ")
    assert "m1" in zh["message"] and zh["path"] == en["path"]

    missing = '{ merchant(id: "m0") { whyNot(talent: "nobody", first: 3) { reason } } }'
    zh = _post(api, missing, "zh-CN")["errors"][0]
    assert zh["extensions"]["code"] == "NOT_FOUND" and zh["message"] == "未找到达人 'nobody'"

    bad = '{ merchant(id: "m0") { matches(first: 0) { totalCount } } }'
    zh = _post(api, bad, "zh-CN")["errors"][0]
    assert zh["extensions"]["code"] == "BAD_ARGUMENT"
    assert zh["message"].startswith("参数 first 有误：")


def test_the_endpoints_own_answers_in_chinese(api: Api) -> None:
    r = api.client.post(
        f"{api.url}/graphql",
        json={"query": "{ me { id } }"},
        headers={"Authorization": "Bearer wrong", "Accept-Language": "zh-CN"},
    )
    assert r.status_code == 401
    err = r.json()["errors"][0]
    assert err["extensions"]["code"] == "UNAUTHENTICATED"
    assert err["message"].startswith("未认证：")
