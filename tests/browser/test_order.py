"""A shopper reviews a whole order in Chromium: a form per product, then the shop's."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import pytest
from flask import Flask

from tests.browser.embedding import axe_source

ALLOWED = "'self' http://127.0.0.2:*"
NPS = {"id": "nps", "label": {"en": "Would you recommend it?", "ar": "هل تنصح به؟",
                              "ja": "おすすめしますか？"}, "range": [0, 10], "required": True}
PRODUCTS = [{"id": "A1", "name": "Linen shirt"}, {"id": "B2", "name": "Wool socks"}]
SCREENSHOT = Path(__file__).parents[2] / "docs" / "form-ar.png"


@pytest.fixture
def settings(settings):
    """Production's closed API: each form sends its own token (used at once here)."""
    return {**settings, "WIDGET_OPEN_API": False, "WIDGET_TOKEN_MIN_SECONDS": 0}


def order_shop(widget_url: str, locale: str = "en") -> Flask:
    """A shop's order page (a thank-you page, an email's landing page) with the loader."""
    html = ("<!doctype html><html lang=en><title>Your order</title><h1>Order 1001</h1>"
            f'<script src="{widget_url}/embed.js" data-order-id="1001" data-locale="{locale}"'
            f' data-products="{escape(json.dumps(PRODUCTS))}" async></script></html>')
    shop = Flask("shop")
    shop.add_url_rule("/", "order", lambda: html)
    return shop


def order_frame(page):
    page.wait_for_selector("iframe", state="visible", timeout=10_000)
    page.frame_locator("iframe").locator("#kr-store-form").wait_for()
    return page.frame_locator("iframe")


def fill(frame, p, stars, content, scale=None):
    frame.locator(f"label[for={p}-star-{stars}]").click()
    frame.locator(f"#{p}-content").fill(content)
    if scale is not None:
        frame.locator(f"label:has(#{p}-q0-{scale + 1})").click()


def test_a_shopper_sends_a_whole_order_and_each_review_arrives_with_the_order(
        page, make_app, live_server, fake_klaviyo):
    app = make_app(WIDGET_SENDER="thread", WIDGET_FRAME_ANCESTORS=ALLOWED,
                   WIDGET_CUSTOM_QUESTIONS=json.dumps([NPS]))
    widget = live_server(app)
    shop = live_server(order_shop(widget.url), host="127.0.0.2")
    page.goto(shop.url)
    frame = order_frame(page)
    assert frame.locator("h2[id$=-heading]").all_inner_texts() == [
        "Linen shirt", "Wool socks", "Your review of our shop"]
    assert frame.locator("#kr-store-form .kr-scale").count() == 0  # the shop's has no questions

    # Name and email typed once fill the other forms; a name typed in another form stays
    # there and fills only the forms no name was typed in.
    frame.locator("#kr-1-author").fill("Ann")
    frame.locator("#kr-1-email").fill("ann@example.com")
    assert frame.locator("#kr-2-author").input_value() == "Ann"
    assert frame.locator("#kr-store-email").input_value() == "ann@example.com"
    frame.locator("#kr-store-author").fill("Ann B.")
    assert frame.locator("#kr-1-author").input_value() == "Ann"
    assert frame.locator("#kr-2-author").input_value() == "Ann B."

    fill(frame, "kr-1", 5, "Soft, and it keeps its shape.", scale=9)
    frame.locator("#kr-1-submit").click()
    frame.locator("#kr-1-thanks").wait_for()
    assert frame.locator("#kr-1-form").is_hidden()
    assert frame.locator("#kr-2-form").is_visible() and frame.locator("#kr-order-done").is_hidden()
    assert page.evaluate("document.activeElement.tagName") == "IFRAME"

    fill(frame, "kr-2", 3, "Warm but they itch.", scale=0)
    frame.locator("#kr-2-submit").click()
    frame.locator("#kr-2-thanks").wait_for()
    fill(frame, "kr-store", 4, "Fast delivery, good packaging.")
    frame.locator("#kr-store-submit").click()
    frame.locator("#kr-order-done").wait_for()

    reviews = fake_klaviyo.wait_for_reviews(3, timeout=15)
    seen = sorted(((r["data"]["attributes"]["review_type"],
                    (r["data"]["attributes"].get("product") or {}).get("external_id"),
                    r["data"]["attributes"]["author"],
                    r["data"]["attributes"].get("custom_questions"),
                    r["data"]["relationships"]["order"]["data"]["id"]) for r in reviews),
                  key=str)
    assert seen == sorted([
        ("review", "A1", "Ann", [{"id": "nps", "answers": ["9"]}], "1001"),
        ("review", "B2", "Ann B.", [{"id": "nps", "answers": ["0"]}], "1001"),
        ("store", None, "Ann B.", None, "1001"),
    ], key=str)


def test_without_javascript_an_order_is_sent_form_by_form(
        browser, make_app, live_server, fake_klaviyo):
    server = live_server(make_app(WIDGET_SENDER="thread",
                                  WIDGET_CUSTOM_QUESTIONS=json.dumps([NPS])))
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    query = "&".join(f"product_id={p['id']}&product_name={p['name']}" for p in PRODUCTS)
    try:
        page.goto(f"{server.url}/embed?order_id=1001&locale=en&{query}")
        page.fill("#kr-2-author", "Ann")
        page.fill("#kr-2-email", "ann@example.com")
        page.locator("label[for=kr-2-star-4]").click()
        page.fill("#kr-2-content", "Warm enough.")
        page.locator("label:has(#kr-2-q0-8)").click()
        page.click("#kr-2-submit")
        page.locator("#kr-2-thanks").wait_for()
        assert page.locator("#kr-1-form").is_visible() and page.locator("#kr-2-form").is_hidden()
        page.fill("#kr-store-author", "Ann")
        page.fill("#kr-store-email", "ann@example.com")
        page.locator("label[for=kr-store-star-5]").click()
        page.fill("#kr-store-content", "Quick.")
        page.click("#kr-store-submit")
        page.locator("#kr-store-thanks").wait_for()
        assert page.locator("#kr-2-thanks").is_visible()  # sent before, still thanked
        reviews = fake_klaviyo.wait_for_reviews(2, timeout=15)
        assert sorted(r["data"]["attributes"]["review_type"] for r in reviews) == [
            "review", "store"]
        assert {r["data"]["relationships"]["order"]["data"]["id"] for r in reviews} == {"1001"}
        assert [r["data"]["attributes"].get("custom_questions") for r in reviews
                if r["data"]["attributes"]["review_type"] == "review"] == [
            [{"id": "nps", "answers": ["7"]}]]
    finally:
        context.close()


def axe_violations(page):
    page.evaluate(axe_source())
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [(v["id"], [node["target"] for node in v["nodes"]]) for v in result["violations"]]


@pytest.mark.parametrize("locale, theme", [("ar", "light"), ("ar", "dark"), ("ja", "light"),
                                           ("ja", "dark"), ("pl", "dark"), ("de", "light")])
def test_axe_finds_nothing_in_the_order_page_and_the_form_in_these_locales(
        page, make_app, live_server, locale, theme):
    server = live_server(make_app(WIDGET_CUSTOM_QUESTIONS=json.dumps([NPS])))
    query = "&".join(f"product_id={p['id']}&product_name={p['name']}" for p in PRODUCTS)
    page.goto(f"{server.url}/embed?order_id=1001&{query}&locale={locale}&theme={theme}")
    assert page.evaluate("[document.documentElement.lang, document.documentElement.dir]") == [
        locale, "rtl" if locale == "ar" else "ltr"]
    assert axe_violations(page) == []
    page.click("#kr-1-submit")
    page.locator("#kr-1-summary li").first.wait_for()
    assert axe_violations(page) == []
    page.goto(f"{server.url}/embed?product_id=A1&locale={locale}&theme={theme}")
    assert axe_violations(page) == []


def test_the_arabic_form_reads_right_to_left_and_its_screenshot_is_taken(
        page, make_app, live_server):
    server = live_server(make_app(WIDGET_CUSTOM_QUESTIONS=json.dumps([NPS])))
    page.set_viewport_size({"width": 560, "height": 400})
    page.goto(f"{server.url}/embed?product_id=A1&product_name=%D9%82%D9%85%D9%8A%D8%B5"
              "&locale=ar&theme=light")
    # Right to left: the first star and the scale's lowest number sit at the right.
    first, last = (page.locator(f"label[for=kr-star-{n}]").bounding_box() for n in (1, 5))
    assert first["x"] > last["x"]
    low, high = (page.locator(f"label:has(#kr-q0-{n})").bounding_box() for n in (1, 2))
    assert low["x"] > high["x"]
    content = page.locator("#kr-content").bounding_box()
    label = page.locator("label[for=kr-content]").bounding_box()
    assert abs((label["x"] + label["width"]) - (content["x"] + content["width"])) < 2
    page.locator("label[for=kr-star-4]").click()
    # Choosing 4 stars lights the first four, counted from the right.
    lit = page.evaluate("""() => [1, 2, 3, 4, 5].map(n => getComputedStyle(
        document.querySelector(`label[for=kr-star-${n}] span`)).color)""")
    assert lit[:4] == [lit[0]] * 4 and lit[4] != lit[0]
    page.fill("#kr-content", "قماش ناعم ومقاس مناسب.")
    page.locator("label:has(#kr-q0-10)").click()
    page.set_viewport_size({"width": 560, "height": page.evaluate("document.body.scrollHeight")})
    page.screenshot(path=str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000
