"""GraphiQL in a real headless Chromium with the network cut off, and its files over HTTP.

The page (kolmatch/api/static/graphiql/) must render from this server's own files, take the
API key from its headers editor and show the answer; production must not serve it.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from graphql import get_introspection_query, parse, specified_rules, validate

from kolmatch.api.app import STATIC, create_app
from kolmatch.api.auth import KeyRing, Principal
from kolmatch.api.limits import Limits, limit_rules
from kolmatch.api.schema import schema
from tests.api.conftest import Api, serve

PAGE = STATIC / "graphiql" / "index.html"

# GraphiQL 3's editors are CodeMirror 5: each editor's element carries its instance.
QUERY_EDITOR = ".graphiql-query-editor .CodeMirror"
HEADERS_EDITOR = "section.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"
RESULT = ".result-window .CodeMirror"
EXECUTE = "button.graphiql-execute-button"


def page_assets() -> list[str]:
    """The URLs of the scripts and style sheets index.html loads, in page order.

    ``data:`` URLs (the empty favicon, which saves a request that would 404) load nothing.
    """
    return re.findall(r'(?:src|href)="(?!data:)([^"]+)"', PAGE.read_text())


def test_every_asset_the_page_loads_is_served_from_here_as_js_or_css(api: Api) -> None:
    assets = page_assets()
    # React, ReactDOM, GraphiQL and the start script, plus the two style sheets
    assert len(assets) == 6
    for url in assets:
        assert url.startswith("/static/graphiql/"), url  # this server only, no CDN
        r = api.client.get(f"{api.url}{url}")
        assert r.status_code == 200, url
        kind = r.headers["content-type"]
        expected = "text/css" if url.endswith(".css") else "javascript"
        assert expected in kind, (url, kind)


def test_each_vendored_package_keeps_its_licence_beside_it() -> None:
    vendor = STATIC / "graphiql" / "vendor"
    for url in page_assets():
        name = url.rsplit("/", 1)[1]
        if "/vendor/" in url:
            package = re.match(r"(.+?-\d+\.\d+\.\d+)\.", name)
            assert package is not None, name
            assert (vendor / f"{package.group(1)}.LICENSE").read_text().startswith("MIT License")


def test_the_page_has_no_inline_script_so_a_strict_csp_holds() -> None:
    html = PAGE.read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert "script-src 'self'" in html and "unsafe-eval" not in html


def test_production_still_refuses_get_graphql(api: Api) -> None:
    url, server, thread = serve(
        create_app(api.service, KeyRing({"k": Principal("internal")}), production=True)
    )
    try:
        r = api.client.get(f"{url}/graphql")
        assert r.status_code == 405
        assert r.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def open_graphiql(browser: Any, url: str) -> Any:
    """Open GraphiQL from its defaults (no stored tabs) and wait until it has rendered.

    Returns a WebDriverWait for the page. Asserts that the headers editor is open, holds the
    placeholder, and that the default query asks who the key belongs to.
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser.driver
    browser.open(f"{url}/graphql")
    driver.execute_script("window.localStorage.clear()")  # each case starts from the defaults
    browser.open(f"{url}/graphql")
    wait = WebDriverWait(driver, 30)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, QUERY_EDITOR)))
    wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, HEADERS_EDITOR)))
    assert json.loads(editor_text(driver, HEADERS_EDITOR)) == {
        "Authorization": "Bearer <your API key>"
    }
    assert "me {" in editor_text(driver, QUERY_EDITOR)
    return wait


def editor_text(driver: Any, selector: str) -> str:
    return str(
        driver.execute_script(
            "return document.querySelector(arguments[0]).CodeMirror.getValue()", selector
        )
    )


def paste_key(driver: Any, key: str) -> None:
    driver.execute_script(
        "document.querySelector(arguments[0]).CodeMirror.setValue(arguments[1])",
        HEADERS_EDITOR,
        json.dumps({"Authorization": f"Bearer {key}"}),
    )


def schema_loaded(driver: Any) -> bool:
    """Whether GraphiQL has a schema (it hands it to the query editor's completion)."""
    return bool(
        driver.execute_script(
            "return !!document.querySelector(arguments[0]).CodeMirror"
            ".getOption('hintOptions').schema",
            QUERY_EDITOR,
        )
    )


def run_query(driver: Any, wait: Any) -> dict[str, Any]:
    """Click the execute button; the result pane's JSON once an answer is shown."""
    from selenium.webdriver.common.by import By

    # the pane may hold the answer to GraphiQL's schema fetch (a 401 before a key is pasted),
    # which looks like a wrong key's answer: empty it, so what shows next is this run's
    driver.execute_script("document.querySelector(arguments[0]).CodeMirror.setValue('')", RESULT)
    driver.find_element(By.CSS_SELECTOR, EXECUTE).click()

    def answer(d: Any) -> dict[str, Any] | None:
        try:
            out = json.loads(editor_text(d, RESULT))
        except ValueError:
            return None
        if isinstance(out, dict) and ("data" in out or "errors" in out):
            return out
        return None

    return wait.until(answer)  # type: ignore[no-any-return]


def unexpected_console_errors(browser: Any) -> list[str]:
    """SEVERE console messages but the 401s the page is expected to cause.

    Chromium logs every 401 as "Failed to load resource": GraphiQL fetches the schema as soon
    as it opens, before a key is pasted (with the placeholder key), and a wrong key is a 401.
    """
    return [m for m in browser.console_errors() if "status of 401" not in m]


@pytest.mark.parametrize(
    ("who", "kind"), [("m0", "merchant"), ("agency", "agency"), ("internal", "internal")]
)
def test_graphiql_renders_offline_and_answers_with_a_pasted_key(
    api: Api, browser: Any, who: str, kind: str
) -> None:
    """The default query works for every role."""
    wait = open_graphiql(browser, api.url)
    paste_key(browser.driver, api.keys[who])
    out = run_query(browser.driver, wait)
    ids = {"m0": "m0", "agency": api.agency, "internal": None}  # type: ignore[attr-defined]
    assert out == {"data": {"me": {"kind": kind, "id": ids[who]}}}
    # the key is not kept on the machine: not in the stored tabs nor in the history
    time.sleep(1)  # GraphiQL stores its tabs 500 ms after a change
    stored = browser.driver.execute_script("return Object.assign({}, window.localStorage)")
    assert "Who am I" in stored["graphiql:tabState"] and "Who am I" in stored["graphiql:queries"]
    assert not any(api.keys[who] in v for v in stored.values())
    assert browser.outside_requests() == []
    assert unexpected_console_errors(browser) == []
    shot = browser.screenshot(f"graphiql-{who}")
    assert shot.stat().st_size > 10_000  # something rendered, not a white page


def test_graphiql_shows_unauthenticated_for_a_wrong_key(api: Api, browser: Any) -> None:
    wait = open_graphiql(browser, api.url)
    paste_key(browser.driver, "not-a-key")
    out = run_query(browser.driver, wait)
    assert "data" not in out
    assert out["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    time.sleep(1)  # GraphiQL stores its tabs 500 ms after a change
    history = browser.driver.execute_script("return localStorage.getItem('graphiql:queries')")
    assert "Who am I" in history  # the query did run, and was refused
    assert not schema_loaded(browser.driver)
    assert browser.outside_requests() == []
    assert unexpected_console_errors(browser) == []
    browser.screenshot("graphiql-wrong-key")


def test_graphiql_keeps_headers_only_when_the_user_opts_in(api: Api, browser: Any) -> None:
    """The hint's "Persist headers" switch exists, and turned on, the key is kept."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec

    assert 'turn on "Persist headers"' in PAGE.read_text()
    driver = browser.driver
    wait = open_graphiql(browser, api.url)
    driver.find_element(By.CSS_SELECTOR, 'button[aria-label="Open settings dialog"]').click()
    dialog = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, '[role="dialog"]')))
    assert "Persist headers" in dialog.text
    dialog.find_element(By.ID, "enable-persist-headers").click()
    dialog.send_keys(Keys.ESCAPE)
    wait.until(ec.invisibility_of_element_located((By.CSS_SELECTOR, '[role="dialog"]')))
    paste_key(driver, api.keys["m1"])
    assert run_query(driver, wait) == {"data": {"me": {"kind": "merchant", "id": "m1"}}}
    time.sleep(1)  # GraphiQL stores its tabs 500 ms after a change
    stored = driver.execute_script("return Object.assign({}, window.localStorage)")
    assert stored["graphiql:shouldPersistHeaders"] == "true"
    assert api.keys["m1"] in stored["graphiql:queries"]
    assert api.keys["m1"] in stored["graphiql:tabState"]
    assert browser.outside_requests() == []
    assert unexpected_console_errors(browser) == []


def test_graphiql_loads_the_schema_once_a_key_is_pasted(api: Api, browser: Any) -> None:
    """Completion and the docs work without clicking "Re-fetch GraphQL schema"."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    wait = open_graphiql(browser, api.url)
    assert not schema_loaded(browser.driver)  # the placeholder key cannot fetch it
    paste_key(browser.driver, api.keys["m0"])
    wait.until(schema_loaded)
    out = run_query(browser.driver, wait)
    assert out == {"data": {"me": {"kind": "merchant", "id": "m0"}}}
    # the docs show the schema's root types
    browser.driver.find_element(
        By.CSS_SELECTOR, 'button[aria-label="Show Documentation Explorer"]'
    ).click()
    wait.until(
        ec.presence_of_element_located((By.CSS_SELECTOR, ".graphiql-doc-explorer-root-type"))
    )
    roots = browser.driver.execute_script(
        "return Array.from(document.querySelectorAll('.graphiql-doc-explorer-root-type'))"
        ".map(e => e.parentElement.textContent)"
    )
    assert roots == ["query: Query", "mutation: Mutation"]
    assert browser.outside_requests() == []
    assert unexpected_console_errors(browser) == []
    browser.screenshot("graphiql")


def test_graphiql_schema_query_fits_the_default_limits() -> None:
    # graphql-core's query is graphql-js's, the one GraphiQL 3 sends (9 levels of ofType)
    doc = parse(get_introspection_query(descriptions=True, input_value_deprecation=True))
    rules = [*specified_rules, *limit_rules(Limits())]
    assert [e.message for e in validate(schema.graphql_schema, doc, rules)] == []


def test_introspection_deeper_than_its_own_limit_is_refused() -> None:
    """Introspection gets its own depth (GraphiQL's 15 levels fit), not an unbounded one."""
    # ofType chains (graphql-core's MaxIntrospectionDepthRule bounds fields-of-types cycles)
    deep = "{ __schema { types { " + "ofType { " * 16 + "name" + " }" * 16 + " } } }"
    rules = [*specified_rules, *limit_rules(Limits())]
    messages = [e.message for e in validate(schema.graphql_schema, parse(deep), rules)]
    assert messages == ["introspection query is 19 levels deep; the limit is 16"]
