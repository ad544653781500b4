"""The reviews display in a storefront: schema.org data in the host page, escaping, the
frame's height and its messages, plain-link paging, accessibility, Lighthouse, the README
screenshot and the demo page.

Each test fills the mirror directly, serves the app on 127.0.0.1 and frames it from a shop
on 127.0.0.2 (another origin, allowed by WIDGET_FRAME_ANCESTORS), as a merchant would.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from flask import Flask
from PIL import Image

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.embedding import axe_source, host_jsonld, reviews_frame, shop
from tests.fake_klaviyo_fixtures import (
    DETAILS,
    FIRST_NAMES,
    LAST_NAMES,
    OPENINGS,
    TITLES,
    product,
    review,
)
from tests.services import unavailable

ROOT = Path(__file__).parents[2]
SCREENSHOT = ROOT / "docs" / "display.png"
LIGHTHOUSE_REPORT = ROOT / "docs" / "lighthouse.json"
LIGHTHOUSE = Path(__file__).parent / "node_modules" / "lighthouse" / "cli" / "index.js"
LIGHTHOUSE_MIN = 0.95
SHIRT = product()["external_id"]  # Klaviyo names it "Linen shirt"
ALLOWED = "'self' http://127.0.0.2:*"
# Ratings of the shirt's reviews, newest first: 47 / 12 = 3.92, shown as 3.9.
RATINGS = [5, 4, 5, 3, 5, 4, 2, 5, 4, 1, 5, 4]
REPLY = {"content": "Thank you! Wash it cold and it stays that soft.", "author": "Linen & Co",
         "updated": "2025-08-01T09:00:00+00:00"}
# What the host page hears from any frame (recorded in the host page only, before embed.js).
RECORDER = """
if (window.top === window) {
  window.__krSeen = [];
  addEventListener("message", (event) => {
    if (event.data && typeof event.data === "object") window.__krSeen.push(event.data.kr);
  });
}
"""
FRAME = 'iframe[src*="/reviews?"]'


@pytest.fixture
def widget(make_app):
    """The widget's app, which the shops on 127.0.0.2 may frame."""
    return make_app(WIDGET_FRAME_ANCESTORS=ALLOWED)


@pytest.fixture
def page(page):
    page.add_init_script(RECORDER)
    return page


def fill(app, resources):
    app.extensions["mirror"].upsert(resources)


def shirt_reviews(ratings=RATINGS, product_id=SHIRT, photos=False):
    """Published reviews of one product, newest first: every one with a title and text, most
    verified, one featured, every fourth with the shop's reply, the newest with a smart
    quote (and with `photos`, every third with an https photo)."""
    made = []
    for n, rating in enumerate(ratings):
        content = f"{OPENINGS[rating][n % 4]} {DETAILS[n % len(DETAILS)]}"
        made.append(review(
            f"{product_id}-r{n}", day=200 - n, rating=rating,
            product=product(product_id, "Linen shirt"),
            status="featured" if n == 1 else "published", verified=n % 3 != 2,
            author=f"{FIRST_NAMES[n % 20]} {LAST_NAMES[n % 16][0]}.",
            title=TITLES[rating][n % len(TITLES[rating])], content=content,
            email=f"secret{n}@example.com",
            smart_quote=content.split(".")[0] if n == 0 else None,
            public_reply=REPLY if n % 4 == 0 else None,
            images=[f"https://images.example.com/reviews/{n}.jpg"] if photos and n % 3 == 0
            else []))
    return made


def never_counted():
    """What must neither show among the shirt's reviews nor count for it: its questions, store
    reviews (one even naming the shirt), what Klaviyo has not published, another product's."""
    return [
        review("q1", day=300, review_type="question", rating=None, title=None,
               content="Does it shrink?", author="Curious", public_reply=REPLY),
        review("q2", day=301, review_type="question", rating=None, title=None,
               content="Is it lined?", author="Asker"),
        review("s1", day=302, review_type="store", rating=1, product=None,
               title="Slow shipping", content="Slow shipping", author="Store critic"),
        review("s2", day=303, review_type="store", rating=1, title="Store review of the shirt",
               content="Store review of the shirt", author="Store critic"),
        *[review(f"h-{status}", day=304, status=status, rating=1, title=f"Hidden {status}",
                 content=f"Hidden {status}", author=f"Hidden {status}",
                 email=f"hidden-{status}@example.com")
          for status in ("pending", "rejected", "unpublished")],
        review("other", day=305, rating=1, product=product("999", "Wool scarf"),
               title="Other product", content="Other product", author="Scarf buyer"),
    ]


def open_shop(page, widget_app, live_server, pages, path="/"):
    """Serve the widget and a shop with these pages; open one; the reviews' frame."""
    server = live_server(widget_app)
    storefront = live_server(shop(server.url, pages), host="127.0.0.2")
    page.goto(storefront.url + path)
    return server, storefront, reviews_frame(page)


def heard(page, kr):
    """Wait until the host page has received a message {kr: ...} (from any frame)."""
    page.wait_for_function(f"window.__krSeen.includes({json.dumps(kr)})")


def frame_items(frame):
    """What each listed review shows: author, stars, date, title, text."""
    return frame.evaluate("""() => [...document.querySelectorAll('.kr-list .kr-item')].map(
        item => ({
            author: item.querySelector('.kr-author').textContent,
            stars: item.querySelector('.kr-rated .kr-glyphs').getAttribute('aria-label'),
            date: item.querySelector('time').getAttribute('datetime'),
            title: item.querySelector('h3') ? item.querySelector('h3').textContent : null,
            text: item.querySelector(':scope > .kr-text')
                ? item.querySelector(':scope > .kr-text').textContent : null,
        }))""")


def shown_summary(frame):
    """(count, average) as the frame's visible text says them."""
    count = frame.locator(".kr-average .kr-count").inner_text()
    average = frame.locator(".kr-average strong").inner_text()
    return (int(re.fullmatch(r"(\d+) reviews?", count).group(1)),
            float(re.fullmatch(r"([\d.]+) out of 5", average).group(1)))


def frame_box(page):
    return page.evaluate(f"""() => {{
        const frame = document.querySelector({json.dumps(FRAME)});
        return {{height: frame.getBoundingClientRect().height, title: frame.title,
                 visibility: getComputedStyle(frame).visibility}};
    }}""")


def content_height(frame):
    return frame.evaluate("Math.ceil(document.body.getBoundingClientRect().height)")


def sized(page, frame, selector=FRAME, seconds=5.0):
    """Wait until the frame is as tall as its page (the host cannot read a frame of another
    origin, so both are asked in turn); its height."""
    deadline = time.monotonic() + seconds
    while True:
        height = page.evaluate(
            f"document.querySelector({json.dumps(selector)}).getBoundingClientRect().height")
        content = content_height(frame)
        if abs(height - content) <= 1:
            return height
        assert time.monotonic() < deadline, f"the frame is {height}px, its page {content}px"
        page.wait_for_timeout(50)


def has_scrollbar(frame):
    return frame.evaluate(
        "document.documentElement.scrollHeight > document.documentElement.clientHeight")


def photo_png():
    out = io.BytesIO()
    Image.new("RGB", (160, 160), (200, 170, 120)).save(out, "PNG")
    return out.getvalue()


def serve_photos(page):
    """Review photos (https, on a host this machine cannot reach) answered with one PNG."""
    body = photo_png()
    page.route("https://images.example.com/**",
               lambda route: route.fulfill(body=body, content_type="image/png"))


# -- 1. schema.org data in the host page ----------------------------------------------------
def test_the_host_page_gets_json_ld_that_counts_and_averages_what_the_frame_shows(
        page, widget, live_server):
    fill(widget, shirt_reviews() + never_counted())
    _, _, frame = open_shop(page, widget, live_server, {"/": {
        "widget": "reviews", "product_id": SHIRT, "product_name": "Sand linen shirt",
        "locale": "en"}})
    page.wait_for_function("document.head.querySelector('script[type=\"application/ld+json\"]')")
    [text] = host_jsonld(page)
    ld = json.loads(text)

    assert ld["@context"] == "https://schema.org" and ld["@type"] == "Product"
    assert ld["name"] == "Sand linen shirt"  # data-product-name wins over Klaviyo's name
    rating = ld["aggregateRating"]
    assert rating["@type"] == "AggregateRating"
    assert (rating["bestRating"], rating["worstRating"]) == (5, 1)
    # What the frame shows, and what the shown reviews make (nothing else counts).
    assert (rating["reviewCount"], rating["ratingValue"]) == shown_summary(frame) == (12, 3.9)

    # Google's review snippet: each review with its author, stars, date and text, the same as
    # the frame's first page lists.
    assert [{"author": item["author"]["name"],
             "stars": f"Rated {item['reviewRating']['ratingValue']} out of 5",
             "date": item["datePublished"], "title": item.get("name"),
             "text": item["reviewBody"]} for item in ld["review"]] == frame_items(frame)
    assert len(ld["review"]) == 10
    assert all(item["@type"] == "Review" and item["reviewRating"]["bestRating"] == 5
               for item in ld["review"])

    html, visible = frame.content(), frame.locator("body").inner_text()
    for never in ("@example.com", "Hidden", "Store critic", "Slow shipping",
                  "Other product", "Does it shrink?", "Is it lined?"):
        assert never not in html and never not in visible and never not in text, never
    assert frame.get_by_role("link", name="Questions (2)").is_visible()


def test_without_a_product_name_the_json_ld_names_the_product_as_klaviyo_does(
        page, widget, live_server):
    fill(widget, shirt_reviews(RATINGS[:3]))
    _, _, frame = open_shop(page, widget, live_server, {"/": {
        "widget": "reviews", "product_id": SHIRT, "locale": "en"}})
    page.wait_for_function("document.head.querySelector('script[type=\"application/ld+json\"]')")
    [text] = host_jsonld(page)
    ld = json.loads(text)
    assert ld["name"] == "Linen shirt"
    assert frame.evaluate("document.title") == "Customer reviews: Linen shirt"
    assert ld["aggregateRating"]["reviewCount"] == 3
    assert ld["aggregateRating"]["ratingValue"] == shown_summary(frame)[1] == 4.7


# -- 2. no schema.org data when there is nothing to rate, or it is not wanted ---------------------
def test_no_json_ld_reaches_the_host_for_questions_only_nothing_store_reviews_or_opting_out(
        page, widget, live_server):
    fill(widget, [
        *shirt_reviews(RATINGS[:2]),
        review("q1", day=1, review_type="question", rating=None, title=None,
               product=product("asked"), content="Does it shrink?", author="Curious"),
        review("s1", day=2, review_type="store", rating=5, product=None,
               title="Fast shipping", content="Arrived in two days.", author="Happy"),
    ])
    pages = {
        "/questions": {"widget": "reviews", "product_id": "asked", "locale": "en"},
        "/empty": {"widget": "reviews", "product_id": "nothing-yet", "locale": "en"},
        # On a product page, as a snippet copied from the product's reviews would be.
        "/store": {"widget": "store-reviews", "product_id": SHIRT, "product_name": "Linen shirt",
                   "locale": "en"},
        "/opted-out": {"widget": "reviews", "product_id": SHIRT, "structured_data": "false",
                       "locale": "en"},
    }
    server = live_server(widget)
    storefront = live_server(shop(server.url, pages), host="127.0.0.2")
    shows = {"/questions": "Questions (1)", "/empty": "No reviews yet.",
             "/store": "Arrived in two days.", "/opted-out": "2 reviews"}
    for path, shown in shows.items():
        page.goto(storefront.url + path)
        frame = reviews_frame(page)
        heard(page, "jsonld")  # the frame has said all it will say
        assert shown in frame.locator("body").inner_text(), path
        assert host_jsonld(page) == [], path
        if path == "/store":  # the shop's reviews, and the form for a store review
            assert frame.evaluate("document.title") == "Reviews of our shop"
            assert "product" not in frame.get_by_role(
                "link", name="Write a review").get_attribute("href")
    # The opted-out page had data to give: the frame carries it, the host page does not.
    assert frame.locator("#kr-jsonld").count() == 1


# -- 3. payloads run nothing, and are shown as text ---------------------------------------------
PAYLOADS = {
    "title": "<img src=x onerror=window.__pwned=1>",
    "content": "</script><script>window.__pwned=1</script> & still the text",
    "author": '"><svg onload=window.__pwned=1>',
    "quote": "'><script>window.__pwned=1</script>",
    "reply": "<iframe srcdoc=\"<script>parent.__pwned=1</script>\"></iframe>",
    "reply_author": "<b onmouseover=window.__pwned=1>Shop</b>",
    "product": "</script><script>window.__pwned=1</script><!--",
    "host_product": '"><img src=x onerror=window.__pwned=1><script>window.__pwned=1</script>',
}


def test_payloads_in_every_text_run_nothing_in_the_frame_or_the_host_and_show_literally(
        page, widget, live_server):
    fill(widget, [review(
        "x", day=1, rating=4, title=PAYLOADS["title"], content=PAYLOADS["content"],
        author=PAYLOADS["author"], smart_quote=PAYLOADS["quote"],
        public_reply={"content": PAYLOADS["reply"], "author": PAYLOADS["reply_author"],
                      "updated": "2025-02-01T00:00:00+00:00"},
        product={**product(), "name": PAYLOADS["product"]},
        images=["javascript:window.__pwned=1", "http://insecure.example.com/x.jpg",
                'https://images.example.com/x.jpg" onerror="window.__pwned=1'])])
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.route(re.compile(r"^https?://(?!127\.0\.0\.)"), lambda route: route.abort())
    server = live_server(widget)
    storefront = live_server(shop(server.url, {
        "/klaviyo-name": {"widget": "reviews", "product_id": SHIRT, "locale": "en"},
        "/host-name": {"widget": "reviews", "product_id": SHIRT, "locale": "en",
                       "product_name": PAYLOADS["host_product"]},
    }), host="127.0.0.2")

    for path, name in (("/klaviyo-name", PAYLOADS["product"]),
                       ("/host-name", PAYLOADS["host_product"])):
        page.goto(storefront.url + path)
        frame = reviews_frame(page)
        page.wait_for_function(
            "document.head.querySelector('script[type=\"application/ld+json\"]')")
        page.wait_for_load_state("load")
        frame.wait_for_load_state("load")

        assert page.evaluate("typeof window.__pwned") == "undefined", path
        assert frame.evaluate("typeof window.__pwned") == "undefined", path
        item = frame.locator(".kr-item")
        assert item.locator("h3").inner_text() == PAYLOADS["title"]
        assert item.locator(":scope > .kr-text").inner_text() == PAYLOADS["content"]
        assert item.locator(".kr-author").inner_text() == PAYLOADS["author"]
        assert item.locator(".kr-quote").inner_text() == PAYLOADS["quote"]
        assert item.locator(".kr-reply .kr-text").inner_text() == PAYLOADS["reply"]
        assert PAYLOADS["reply_author"] in item.locator(".kr-reply-from").inner_text()
        assert frame.evaluate("document.title") == f"Customer reviews: {name}"
        assert frame_box(page)["title"] == f"Customer reviews: {name}"
        # No element came out of the text; of the photos only the https one, as an address.
        assert frame.locator("svg, iframe, b, script:not([src]):not(#kr-jsonld)").count() == 0
        assert frame.locator("img").evaluate_all("imgs => imgs.map(i => i.src)") == [
            "https://images.example.com/x.jpg%22%20onerror=%22window.__pwned=1"]
        assert page.locator("svg, img, b").count() == 0
        assert page.locator("iframe").count() == 1

        [text] = host_jsonld(page)
        ld = json.loads(text)
        assert ld["name"] == name
        [data] = ld["review"]
        assert (data["name"], data["reviewBody"], data["author"]["name"]) == (
            PAYLOADS["title"], PAYLOADS["content"], PAYLOADS["author"])
        # Saved as HTML (by a prerenderer, a cache) and read again, the page still holds its
        # two scripts and the data whole: the text can neither end its element nor hide one.
        saved, live = page.evaluate("""() => {
            const scripts = (doc) => [...doc.querySelectorAll('script')].map(
                s => [s.type, s.src, s.textContent]);
            const again = new DOMParser().parseFromString(
                document.documentElement.outerHTML, 'text/html');
            return [scripts(again), scripts(document)];
        }""")
        assert saved == live and [kind for kind, _, _ in live] == ["application/ld+json", ""]
    assert dialogs == []


# -- 4. the frame's height, and messages from anyone else --------------------------------------
def forger():
    """Another site's page, framed by the shop too (an ad, say), that posts the loader's
    messages to its parent."""
    html = """<!doctype html><title>Ad</title><script>
      parent.postMessage({kr: "height", height: 3, title: "Forged"}, "*");
      parent.postMessage({kr: "jsonld", jsonld: {"@context": "https://schema.org",
        "@type": "Product", name: "Forged", aggregateRating: {"@type": "AggregateRating",
        ratingValue: 5, reviewCount: 999}}}, "*");
      parent.postMessage({kr: "forger-done"}, "*");
    </script>"""
    app = Flask("forger")
    app.add_url_rule("/", "ad", lambda: html)
    return app


def test_the_frame_is_shown_as_tall_as_its_page_and_ignores_messages_of_other_origins(
        page, widget, live_server):
    fill(widget, shirt_reviews() + never_counted())
    page.set_viewport_size({"width": 800, "height": 600})
    _, _, frame = open_shop(page, widget, live_server, {"/": {
        "widget": "reviews", "product_id": SHIRT, "locale": "en"}})
    page.wait_for_function(f"document.querySelector('{FRAME}').offsetHeight > 1000")
    start = frame_box(page)
    assert start["visibility"] == "visible"
    assert start["title"] == "Customer reviews: Linen shirt"
    assert abs(start["height"] - content_height(frame)) <= 1 and not has_scrollbar(frame)
    [jsonld] = host_jsonld(page)

    # The shop's own page, and a frame of a third origin, post the loader's messages.
    page.evaluate("""() => {
        window.postMessage({kr: "height", height: 3, title: "Forged"}, "*");
        window.postMessage({kr: "jsonld", jsonld: {"@type": "Product", name: "Forged"}}, "*");
        window.postMessage({kr: "host-done"}, "*");
    }""")
    heard(page, "host-done")
    ad = live_server(forger(), host="127.0.0.3")
    page.evaluate("""url => {
        const ad = document.createElement("iframe");
        ad.src = url;
        document.body.appendChild(ad);
    }""", ad.url)
    heard(page, "forger-done")
    seen = page.evaluate("window.__krSeen")  # the frame's, the host's and the ad's
    assert seen.count("height") >= 3 and seen.count("jsonld") >= 3
    assert frame_box(page) == start
    assert host_jsonld(page) == [jsonld]

    # Narrower, the text wraps onto more lines: the frame grows with it, and shrinks back.
    page.set_viewport_size({"width": 360, "height": 600})
    page.wait_for_function(
        f"document.querySelector('{FRAME}').offsetHeight > {start['height'] + 200}")
    sized(page, frame)
    assert not has_scrollbar(frame)
    page.set_viewport_size({"width": 800, "height": 600})
    page.wait_for_function(
        f"document.querySelector('{FRAME}').offsetHeight == {start['height']}")

    # The questions tab is shorter: the frame shrinks to it, then grows back with the reviews.
    frame.get_by_role("link", name="Questions (2)").click()
    page.wait_for_function(
        f"document.querySelector('{FRAME}').offsetHeight < {start['height'] - 400}")
    frame = next(f for f in page.frames if "type=question" in f.url)
    frame.locator(".kr-question").first.wait_for()
    sized(page, frame)
    assert not has_scrollbar(frame)
    frame.get_by_role("link", name="Reviews (12)").click()
    page.wait_for_function(
        f"document.querySelector('{FRAME}').offsetHeight == {start['height']}")
    assert host_jsonld(page) == [jsonld]


# -- 5. plain links without JavaScript; the form in the same frame -------------------------------
def test_without_javascript_pages_rating_filters_and_sorting_are_plain_links_and_forms(
        browser, widget, live_server):
    reviews = shirt_reviews(RATINGS * 2 + [3])  # 25 reviews: three pages
    fill(widget, reviews + never_counted())
    server = live_server(widget)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    titles = [r["attributes"]["title"] for r in reviews]
    ratings = [r["attributes"]["rating"] for r in reviews]
    try:
        page.goto(f"{server.url}/reviews?product_id={SHIRT}&locale=en")
        assert page.locator(".kr-item h3").all_inner_texts() == titles[:10]
        assert "Page 1 of 3" in page.locator(".kr-pages").inner_text()

        page.get_by_role("link", name="Next page").click()
        page.wait_for_url(re.compile(r"page=2"))
        assert page.locator(".kr-item h3").all_inner_texts() == titles[10:20]
        assert "Page 2 of 3" in page.locator(".kr-pages").inner_text()
        assert page.get_by_role("link", name="Previous page").is_visible()

        page.locator(".kr-histogram a", has_text="4 stars").click()
        page.wait_for_url(re.compile(r"rating=4"))
        fours = [t for t, r in zip(titles, ratings, strict=True) if r == 4]
        assert page.locator(".kr-item h3").all_inner_texts() == fours
        assert set(page.locator(".kr-rated .kr-glyphs").evaluate_all(
            "stars => stars.map(s => s.getAttribute('aria-label'))")) == {"Rated 4 out of 5"}
        assert page.get_by_text("Showing 4 stars reviews only.").is_visible()

        page.get_by_role("link", name="Show all ratings").click()
        page.get_by_label("Sort by").select_option("highest")
        page.get_by_role("button", name="Sort").click()
        page.wait_for_url(re.compile(r"sort=highest"))
        highest = sorted(zip(ratings, titles, strict=True), key=lambda rt: -rt[0])
        assert page.locator(".kr-item h3").all_inner_texts() == [t for _, t in highest[:10]]
        assert page.get_by_label("Sort by").input_value() == "highest"
        page.get_by_role("link", name="Next page").click()
        page.wait_for_url(re.compile(r"sort=highest.*page=2|page=2.*sort=highest"))
        assert page.locator(".kr-item h3").all_inner_texts() == [t for _, t in highest[10:20]]
    finally:
        context.close()


def test_write_a_review_opens_the_form_for_the_product_in_the_same_frame(
        page, widget, live_server):
    fill(widget, shirt_reviews(RATINGS[:3]))
    _, storefront, frame = open_shop(page, widget, live_server, {"/": {
        "widget": "reviews", "product_id": SHIRT, "product_name": "Sand linen shirt",
        "locale": "en", "theme": "dark"}})
    link = frame.get_by_role("link", name="Write a review")
    assert link.get_attribute("target") is None
    link.click()
    frame.wait_for_url(re.compile(r"/embed\?"))
    frame.locator("#kr-form").wait_for()
    assert page.url == storefront.url + "/"
    assert frame.parent_frame == page.main_frame and len(page.frames) == 2
    form = {name: frame.locator(f"#kr-form input[name={name}]").input_value()
            for name in ("product_id", "product_name", "locale", "theme")}
    assert form == {"product_id": SHIRT, "product_name": "Sand linen shirt", "locale": "en",
                    "theme": "dark"}
    # The loader keeps sizing the frame for the form, which says hello back with its title.
    page.wait_for_function(f"document.querySelector('{FRAME}').title == 'Sand linen shirt'")
    sized(page, frame)


# -- 6. accessibility ---------------------------------------------------------------------------
def axe_violations(frame):
    frame.evaluate(axe_source())
    result = frame.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [(v["id"], [node["target"] for node in v["nodes"]]) for v in result["violations"]]


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_axe_finds_no_violations_in_reviews_with_photos_questions_and_the_empty_state(
        page, widget, live_server, theme):
    fill(widget, shirt_reviews(photos=True) + never_counted())
    serve_photos(page)
    _, storefront, frame = open_shop(page, widget, live_server, {
        "/": {"widget": "reviews", "product_id": SHIRT, "locale": "en", "theme": theme},
        "/empty": {"widget": "reviews", "product_id": "nothing-yet", "locale": "en",
                   "theme": theme},
    })
    assert frame.evaluate("getComputedStyle(document.body).backgroundColor") == (
        "rgb(255, 255, 255)" if theme == "light" else "rgb(23, 23, 27)")
    assert frame.locator(".kr-gallery img").count() == 4
    frame.locator(".kr-gallery img").first.scroll_into_view_if_needed()
    frame.wait_for_function("document.querySelector('.kr-gallery img').naturalWidth == 160")
    assert axe_violations(frame) == []

    frame.get_by_role("link", name="Questions (2)").click()
    frame.wait_for_url(re.compile(r"type=question"))
    frame.locator(".kr-question").first.wait_for()
    assert axe_violations(frame) == []

    page.goto(storefront.url + "/empty")
    frame = reviews_frame(page)
    assert frame.get_by_text("No reviews yet. Be the first to write one.").is_visible()
    assert axe_violations(frame) == []


# -- 7. Lighthouse ------------------------------------------------------------------------------
def lighthouse(url, output):
    """Lighthouse's CLI (npm, tests/browser/package.json) on Debian's Chromium, with the
    default settings: a mobile phone on a simulated slow 4G with a 4x slower CPU."""
    if not LIGHTHOUSE.exists():
        unavailable("Lighthouse", "npm ci --prefix tests/browser")
    node = shutil.which("node")
    if node is None:
        unavailable("Node.js", "apt-get install -y nodejs")
    done = subprocess.run(
        [node, str(LIGHTHOUSE), url, "--output=json", f"--output-path={output}", "--quiet",
         "--disable-full-page-screenshot",  # the report's picture, not an audit
         f"--chrome-flags={' '.join(CHROMIUM_ARGS)}"],
        env={**os.environ, "CHROME_PATH": CHROMIUM}, capture_output=True, text=True,
        timeout=100)  # under pytest-timeout's 120 s, to say what Lighthouse said
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(Path(output).read_text(encoding="utf-8"))


def failing_audits(report, category):
    audits = report["audits"]
    return [(ref["id"], audits[ref["id"]]["score"], audits[ref["id"]].get("displayValue"))
            for ref in report["categories"][category]["auditRefs"]
            if ref["weight"] and (audits[ref["id"]]["score"] or 0) < 1
            and audits[ref["id"]]["scoreDisplayMode"] in ("binary", "numeric")]


def test_lighthouse_scores_the_reviews_page_at_least_95_in_every_category(
        widget, live_server, tmp_path):
    fill(widget, shirt_reviews(RATINGS * 2 + RATINGS[:6]) + never_counted())  # 30 reviews
    server = live_server(widget)
    path = f"/reviews?product_id={SHIRT}&locale=en"
    urllib.request.urlopen(server.url + path, timeout=10).read()  # built once, as when busy
    report = lighthouse(server.url + path, tmp_path / "report.json")

    scores = {name: category["score"] for name, category in report["categories"].items()}
    settings = report["configSettings"]
    print(f"lighthouse {report['lighthouseVersion']} ({settings['formFactor']}, "
          f"{settings['throttlingMethod']} throttling) {path}: "
          + ", ".join(f"{name} {score:.2f}" for name, score in scores.items()))
    LIGHTHOUSE_REPORT.parent.mkdir(exist_ok=True)
    LIGHTHOUSE_REPORT.write_text(json.dumps({
        "lighthouse": report["lighthouseVersion"],
        "preset": f"{settings['formFactor']} (Lighthouse's default: no --preset)",
        "chromium": re.search(r"Chrome/(\S+)", report["environment"]["hostUserAgent"])[1],
        "throttling": {"method": settings["throttlingMethod"], **settings["throttling"]},
        "path": path, "reviews": 30, "photos": 0,
        "categories": scores,
    }, indent=2) + "\n", encoding="utf-8")
    assert report["lighthouseVersion"] == "12.8.2"
    assert set(scores) == {"performance", "accessibility", "best-practices", "seo"}
    low = {name: failing_audits(report, name) for name, score in scores.items()
           if score < LIGHTHOUSE_MIN}
    assert low == {}, scores


# -- 8. the README's picture --------------------------------------------------------------------
def test_the_readme_screenshot_of_the_reviews_in_a_storefront_is_taken(
        page, widget, live_server):
    fill(widget, shirt_reviews() + never_counted())
    page.set_viewport_size({"width": 900, "height": 1100})
    _, _, frame = open_shop(page, widget, live_server, {"/": {
        "widget": "reviews", "product_id": SHIRT, "product_name": "Linen shirt",
        "locale": "en", "theme": "light"}})
    sized(page, frame)
    assert frame.locator(".kr-verified").count() >= 6
    assert frame.locator(".kr-reply").count() == 3 and frame.locator(".kr-quote").count() == 1
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOT)
    with Image.open(SCREENSHOT) as shot:
        assert shot.size == (900, 1100)


# -- 9. the demo page ---------------------------------------------------------------------------
def test_the_demo_page_shows_the_form_the_summary_and_the_reviews_of_the_demo_tshirt(
        page, make_app, live_server):
    app = make_app()
    fill(app, [review(f"demo-{n}", day=n, rating=rating, title=f"Demo title {n}",
                      author=f"Demo author {n}", product=product("demo-tshirt", "T-shirt"))
               for n, rating in enumerate([5, 4, 4])])
    server = live_server(app)
    page.goto(server.url + "/?locale=en")
    page.wait_for_function("[...document.querySelectorAll('iframe')].length == 2 && "
                           "[...document.querySelectorAll('iframe')].every("
                           "f => getComputedStyle(f).visibility == 'visible')")
    form = next(f for f in page.frames if "/embed?" in f.url)
    form.locator("#kr-form").wait_for()
    reviews = next(f for f in page.frames if "/reviews?" in f.url)
    assert shown_summary(reviews) == (3, 4.3)
    assert reviews.locator(".kr-item h3").all_inner_texts() == [
        "Demo title 2", "Demo title 1", "Demo title 0"]
    # Each frame sized by its own messages, not the other's.
    for frame, selector in ((form, 'iframe[src*="/embed?"]'), (reviews, FRAME)):
        sized(page, frame, selector)
    page.wait_for_function("document.head.querySelector('script[type=\"application/ld+json\"]')")
    [text] = host_jsonld(page)
    assert json.loads(text)["name"] == "Organic cotton T-shirt"
