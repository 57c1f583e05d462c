"""The explorer page (/explore) in a real headless Chromium with the network cut off.

Each role signs in with its key and must see its view, filled with what the API answers for
that key: a merchant its match list (names in the API's order), a plan's reach curve and
overlap heat map; an agency its roster as a network, a pitch list and its category gaps;
internal tools the talent search and the export. No request may leave 127.0.0.1 and the
console must stay free of errors. A merchant key that asks for another merchant's view gets
the server's FORBIDDEN as the page's error line, and no rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from kolmatch.api.app import STATIC
from tests.api.browser import LOCAL_SCHEMES
from tests.api.conftest import Api

PAGE = STATIC / "explore" / "index.html"
WAIT_S = 90  # a plan or a roster of ~500 talents takes seconds on a busy machine


def wait_for(browser: Any, what: Callable[[Any], Any], message: str) -> Any:
    return WebDriverWait(browser.driver, WAIT_S, poll_frequency=0.1).until(what, message)


def texts(browser: Any, css: str) -> list[str]:
    return [e.text for e in browser.driver.find_elements(By.CSS_SELECTOR, css)]


def error_line(browser: Any) -> str:
    box = browser.driver.find_element(By.ID, "error")
    return box.text if box.is_displayed() else ""


def sign_in(browser: Any, api: Api, who: str, fragment: str = "") -> None:
    """Open the page signed out, type the key, sign in (the key stays in sessionStorage)."""
    browser.open(f"{api.url}/explore")
    browser.driver.execute_script("sessionStorage.clear()")
    browser.open(f"{api.url}/explore{fragment}")
    browser.driver.find_element(By.ID, "key").send_keys(api.keys[who])
    browser.driver.find_element(By.ID, "signin-button").click()
    wait_for(
        browser, lambda d: d.find_element(By.ID, "who").text.startswith("Signed in"), "sign-in"
    )


def graphql_sent(browser: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """The GraphQL bodies the page posted since the last read, and URLs not on 127.0.0.1."""
    bodies, outside = [], []
    for entry in browser.driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") != "Network.requestWillBeSent":
            continue
        request = msg["params"]["request"]
        parts = urlsplit(request["url"])
        if parts.scheme not in LOCAL_SCHEMES and parts.hostname != "127.0.0.1":
            outside.append(request["url"])
        if parts.path == "/graphql" and request.get("postData"):
            bodies.append(json.loads(request["postData"]))
    return bodies, outside


def assert_clean(browser: Any) -> None:
    assert browser.outside_requests() == []
    assert browser.console_errors() == []


def test_the_page_loads_only_its_own_files_and_has_no_inline_script(api: Api) -> None:
    html = PAGE.read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert re.findall(r"<[^>]*\son[a-z]+\s*=", html) == []  # no onclick= handlers either
    assert "script-src 'self'" in html
    assets = re.findall(r'(?:src|href)="(?!data:|#)([^"]+)"', html)
    assert sorted(assets) == ["/static/explore/explore.css", "/static/explore/explore.js"]
    for url in assets:
        assert api.client.get(f"{api.url}{url}").status_code == 200
    assert api.client.get(f"{api.url}/explore").status_code == 200


def test_merchant_sees_its_match_list_with_evidence_and_a_plan(browser: Any, api: Api) -> None:
    top = api.data(
        '{ merchant(id: "m0") { name matches(first: 20) { edges { node { evidence '
        "talent { id name } } } } } }",
        "m0",
    )["merchant"]
    sign_in(browser, api, "m0")
    d = browser.driver
    wait_for(
        browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#matches tr.match")) == 20, "rows"
    )
    names = [e["node"]["talent"]["name"] for e in top["matches"]["edges"]]
    assert texts(browser, "#matches tr.match .name") == names
    assert d.find_element(By.ID, "merchant-title").text == f"{top['name']} (m0)"
    first = d.find_element(By.CSS_SELECTOR, "#matches tr.match")
    assert re.search(r"¥[\d,]+", first.text), "amounts formatted"
    first.find_element(By.CSS_SELECTOR, "summary").click()
    evidence = [li.text for li in first.find_elements(By.CSS_SELECTOR, "details li")]
    assert evidence == top["matches"]["edges"][0]["node"]["evidence"]
    browser.screenshot("explore-merchant")

    plan = api.data(
        '{ merchant(id: "m0") { plan(budget: 200000) { talents { talent { id name } '
        "marginalReach } } } }",
        "m0",
    )["merchant"]["plan"]
    d.find_element(By.ID, "budget").clear()
    d.find_element(By.ID, "budget").send_keys("200000")
    d.find_element(By.ID, "plan-button").click()
    n = len(plan["talents"])
    assert n >= 2
    wait_for(
        browser,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#reach-chart rect.bar")) == n,
        "bars",
    )
    bars = d.find_elements(By.CSS_SELECTOR, "#reach-chart rect.bar")
    assert [b.get_attribute("data-talent") for b in bars] == [
        t["talent"]["id"] for t in plan["talents"]
    ]
    heights = [float(b.get_attribute("height")) for b in bars]
    reach = [t["marginalReach"] for t in plan["talents"]]
    assert heights == sorted(heights, reverse=True) and reach == sorted(reach, reverse=True)
    assert len(d.find_elements(By.CSS_SELECTOR, "#reach-chart polyline.curve")) == 1
    cells = d.find_elements(By.CSS_SELECTOR, "#overlap-map rect.cell")
    assert len(cells) == n * (n - 1)
    planned = texts(browser, "#plan-talents tr.planned .name")
    assert planned == [t["talent"]["name"] for t in plan["talents"]]
    d.execute_script("document.getElementById('plan').scrollIntoView()")
    browser.screenshot("explore-plan")

    bodies, outside = graphql_sent(browser)
    assert outside == []
    asked = {v for b in bodies for k, v in (b.get("variables") or {}).items() if k == "id"}
    assert asked == {"m0"}, "the page asks for the signed-in merchant only"
    assert browser.console_errors() == []
    assert error_line(browser) == ""


def test_a_merchant_asking_for_another_merchant_gets_forbidden_on_the_page(
    browser: Any, api: Api
) -> None:
    sign_in(browser, api, "m0", "#merchant=m1")
    line = wait_for(browser, lambda d: error_line(browser), "an error line")
    assert line.startswith("FORBIDDEN: ")
    assert "m1" in line and "\n" not in line
    assert browser.driver.find_elements(By.CSS_SELECTOR, "#matches tr.match") == []
    m1_top = api.data(
        '{ matchLists(merchantIds: ["m1"], first: 5) { matches { talent { name } } } }'
    )
    shown = browser.driver.find_element(By.TAG_NAME, "body").text
    for m in m1_top["matchLists"][0]["matches"]:
        assert m["talent"]["name"] not in shown
    # the plan too: the server refuses it, the page shows the refusal
    browser.driver.find_element(By.ID, "plan-button").click()
    wait_for(browser, lambda d: "plans of m1" in error_line(browser), "the plan refused")
    assert not browser.driver.find_element(By.ID, "plan").is_displayed()
    assert_clean(browser)


def test_agency_sees_its_roster_network_pitch_lists_and_gaps(browser: Any, api: Api) -> None:
    agency = api.agency  # type: ignore[attr-defined]
    data = api.data(
        f'{{ agency(id: "{agency}") {{ roster(first: 1) {{ totalCount }} communities '
        "rosterEdges(perTalent: 2) { a b } categoryGaps(first: 5) { category } } }",
        "agency",
    )["agency"]
    sign_in(browser, api, "agency")
    size = data["roster"]["totalCount"]
    wait_for(
        browser,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#network circle.node")) == size,
        "nodes",
    )
    d = browser.driver
    lines = d.find_elements(By.CSS_SELECTOR, "#network line.edge")
    assert len(lines) == len(data["rosterEdges"]) > 0
    # coloured by community: talents of one community share a colour, the two largest differ
    colour = {
        n.get_attribute("data-talent"): n.get_attribute("fill")
        for n in d.find_elements(By.CSS_SELECTOR, "#network circle.node")
    }
    largest, second = data["communities"][:2]
    assert len({colour[t] for t in largest}) == 1
    assert colour[largest[0]] != colour[second[0]]
    assert texts(browser, "#gaps tr.gap td:first-child") == [
        g["category"] for g in data["categoryGaps"]
    ]

    # the pitch list of the talent with the strongest overlap, then of one clicked
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#pitch tr.lead"), "leads")
    shown = d.find_element(By.ID, "pitch-talent").get_attribute("value")
    leads = api.data(
        f'{{ talent(id: "{shown}") {{ recommendedMerchants(first: 10) {{ merchantName }} }} }}',
        "agency",
    )["talent"]["recommendedMerchants"]
    assert texts(browser, "#pitch tr.lead .name") == [x["merchantName"] for x in leads]
    other = largest[0] if largest[0] != shown else largest[1]
    node = d.find_element(By.CSS_SELECTOR, f'#network circle.node[data-talent="{other}"]')
    d.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", node)
    wait_for(
        browser,
        lambda d: d.find_element(By.ID, "pitch-talent").get_attribute("value") == other,
        "select",
    )
    leads = api.data(
        f'{{ talent(id: "{other}") {{ name recommendedMerchants(first: 10) '
        "{ merchantName } } }",
        "agency",
    )["talent"]
    wait_for(browser, lambda d: leads["name"] in d.find_element(By.ID, "pitch-title").text, "title")
    assert texts(browser, "#pitch tr.lead .name") == [
        x["merchantName"] for x in leads["recommendedMerchants"]
    ]
    assert "selected" in node.get_attribute("class")
    assert error_line(browser) == ""
    d.execute_script("document.getElementById('agency-view').scrollIntoView()")
    browser.screenshot("explore-agency")
    assert_clean(browser)


def test_internal_searches_talents_and_exports_match_lists(browser: Any, api: Api) -> None:
    top = api.data("{ talents(first: 20) { edges { node { name } } } }")["talents"]["edges"]
    sign_in(browser, api, "internal")
    d = browser.driver
    wait_for(
        browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#talents tr.talent")) == 20, "rows"
    )
    assert texts(browser, "#talents tr.talent .name") == [e["node"]["name"] for e in top]

    found = api.data(
        '{ talents(first: 20, filter: {tier: "mid", nameContains: "12"}) '
        "{ totalCount edges { node { name } } } }"
    )["talents"]
    d.find_element(By.ID, "s-name").send_keys("12")
    Select(d.find_element(By.ID, "s-tier")).select_by_visible_text("mid")
    d.find_element(By.ID, "search-button").click()
    names = [e["node"]["name"] for e in found["edges"]]
    wait_for(browser, lambda d: texts(browser, "#talents tr.talent .name") == names, "search")
    assert f"of {found['totalCount']:,} talents" in d.find_element(By.ID, "talents-count").text

    merchants = d.find_element(By.ID, "e-merchants")
    merchants.clear()
    merchants.send_keys("m0, m1")
    d.find_element(By.ID, "e-first").clear()
    d.find_element(By.ID, "e-first").send_keys("5")
    for fmt, button in (("jsonl", "export-jsonl"), ("csv", "export-csv")):
        d.find_element(By.ID, button).click()
        link = wait_for(
            browser,
            lambda d, fmt=fmt: [
                a
                for a in d.find_elements(By.ID, "export-download")
                if a.get_attribute("download") == f"matches.{fmt}"
            ],
            f"the {fmt} download",
        )[0]
        assert link.get_attribute("href").startswith("blob:")
        assert d.find_element(By.ID, "export-status").text == "10 rows for 2 merchants"
        preview = d.find_element(By.ID, "export-preview").text.splitlines()
        if fmt == "csv":
            assert preview[0].startswith("merchant,rank,talent,talent_name")
        else:
            assert preview[0].startswith('{"merchant": "m0", "rank": 1,')  # cut at 240
    d.execute_script("document.getElementById('export-form').scrollIntoView()")
    browser.screenshot("explore-internal")

    # internal tools open any merchant's view
    m1 = api.data(
        '{ merchant(id: "m1") { matches(first: 20) { edges { node { talent { name } } } } } }'
    )
    d.find_element(By.ID, "o-merchant").send_keys("m1")
    d.find_element(By.ID, "open-button").click()
    names = [e["node"]["talent"]["name"] for e in m1["merchant"]["matches"]["edges"]]
    wait_for(browser, lambda d: texts(browser, "#matches tr.match .name") == names, "m1's list")
    assert error_line(browser) == ""
    assert_clean(browser)


def test_an_unknown_key_is_one_error_line_and_no_view(browser: Any, api: Api) -> None:
    browser.open(f"{api.url}/explore")
    browser.driver.execute_script("sessionStorage.clear()")
    browser.open(f"{api.url}/explore")
    browser.driver.find_element(By.ID, "key").send_keys("not-a-key")
    browser.driver.find_element(By.ID, "signin-button").click()
    line = wait_for(browser, lambda d: error_line(browser), "an error line")
    assert line.startswith("UNAUTHENTICATED: ")
    for view in ("merchant-view", "agency-view", "internal-view"):
        assert not browser.driver.find_element(By.ID, view).is_displayed()
    assert browser.driver.execute_script("return sessionStorage.length") == 0
    assert browser.outside_requests() == []
    # the 401 itself is the browser's one console line; nothing else
    errors = browser.console_errors()
    assert all("401" in e for e in errors), errors
