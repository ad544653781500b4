"""The form's accessibility (axe-core) and its weight on the wire."""

from __future__ import annotations

import json

import pytest

from tests.browser.embedding import QUESTIONS, axe_source

BUDGET_BYTES = 15 * 1024
QUERY = "product_id=42&product_name=Linen%20shirt&locale=en"


@pytest.fixture
def settings(settings):
    """Production's closed API: the form must send its own token (used at once here)."""
    return {**settings, "WIDGET_OPEN_API": False, "WIDGET_TOKEN_MIN_SECONDS": 0}


def axe_violations(page):
    page.evaluate(axe_source())
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [(v["id"], [node["target"] for node in v["nodes"]]) for v in result["violations"]]


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_axe_finds_no_violations_in_the_form_with_and_without_errors(
        page, make_app, live_server, theme):
    server = live_server(make_app(WIDGET_CUSTOM_QUESTIONS=json.dumps(QUESTIONS)))
    page.goto(f"{server.url}/embed?{QUERY}&theme={theme}")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == ("rgb(255, 255, 255)" if theme == "light" else "rgb(23, 23, 27)")
    assert axe_violations(page) == []
    page.click("#kr-submit")
    page.locator("#kr-summary li").first.wait_for()
    assert axe_violations(page) == []


def test_axe_finds_no_violations_in_question_mode_the_thank_you_and_the_demo_page(
        page, make_app, live_server):
    server = live_server(make_app())
    page.goto(f"{server.url}/embed?{QUERY}&type=question&theme=dark")
    assert axe_violations(page) == []
    page.fill("#kr-content", "Does it shrink?")
    page.fill("#kr-author", "Ann")
    page.fill("#kr-email", "ann@example.com")
    page.click("#kr-submit")
    page.locator("#kr-thanks").wait_for()
    assert axe_violations(page) == []
    page.goto(f"{server.url}/embed?integration=magento")
    assert axe_violations(page) == []
    page.goto(f"{server.url}/")
    page.wait_for_selector("iframe", state="visible")
    assert axe_violations(page) == []


def test_auto_theme_follows_the_dark_preference_and_axe_finds_nothing(
        browser, app, live_server):
    server = live_server(app)
    context = browser.new_context(color_scheme="dark")
    page = context.new_page()
    try:
        page.goto(f"{server.url}/embed?{QUERY}&theme=auto")
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == \
            "rgb(23, 23, 27)"
        assert axe_violations(page) == []
    finally:
        context.close()


def test_the_forms_html_css_and_js_weigh_at_most_15_kb_gzipped(page, make_app, live_server):
    app = make_app(WIDGET_CUSTOM_QUESTIONS=json.dumps(QUESTIONS),
                   COMPRESS_ALGORITHM=["gzip"])  # measure gzip, whatever else Chromium takes
    server = live_server(app)
    encodings = {}
    page.on("response", lambda r: encodings.update({r.url: r.headers.get("content-encoding")}))
    page.goto(f"{server.url}/embed?{QUERY}")
    page.wait_for_load_state("load")
    entries = page.evaluate("""() => [
        ...performance.getEntriesByType('navigation'),
        ...performance.getEntriesByType('resource'),
    ].map(e => ({name: e.name, transfer: e.transferSize, decoded: e.decodedBodySize}))""")
    paths = sorted(entry["name"].split("?")[0].split("/", 3)[3] for entry in entries)
    assert paths == ["embed", "embed/assets/form.css", "embed/assets/form.js"], entries
    assert set(encodings.values()) == {"gzip"}
    total = sum(entry["transfer"] for entry in entries)
    print(f"form weight: {total} bytes transferred, "
          f"{sum(entry['decoded'] for entry in entries)} bytes decoded")
    assert 0 < total <= BUDGET_BYTES
