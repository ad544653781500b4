"""A moderator in Chromium: log in, filter, page, open a review, keep the overview open;
nothing from a review runs, and axe finds nothing to fix."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import update

from tests.browser.embedding import axe_source
from tests.fake_klaviyo_fixtures import PNG_1PX, many_reviews
from tests.moderation.mirror import store, sync
from tests.reviews import review_body
from widget.delivery.outbox import submissions, utcnow

PASSWORD = "correct horse battery staple"
PIXEL = __import__("base64").b64decode(PNG_1PX.split(",", 1)[1])
SCREENSHOT = Path(__file__).parents[2] / "docs" / "overview.png"


@pytest.fixture
def server(make_app, live_server):
    """The service with moderation open, its mirror synced from the fake's fixtures."""
    app = make_app(MODERATION_PASSWORD=PASSWORD)
    sync(app)
    server = live_server(app)
    server.app = app
    return server


def axe_violations(page):
    page.evaluate(axe_source())
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [(v["id"], [node["target"] for node in v["nodes"]]) for v in result["violations"]]


def busy_day(app):
    """A mirror of 400 reviews over the last 16 weeks and a queue with some work in it."""
    store(app, many_reviews(400, seed=7))
    outbox = app.extensions["outbox"]
    waiting = [outbox.put(json.dumps(review_body(author=f"Shopper {n}")).encode())
               for n in range(3)]
    with outbox.engine.begin() as conn:  # the oldest has waited a few minutes
        conn.execute(update(submissions).where(submissions.c.id == waiting[0].id)
                     .values(created_at=utcnow() - timedelta(minutes=4)))
    dead = outbox.put(json.dumps(review_body(author="Refused")).encode())
    outbox.mark_dead(dead.id, status=400, error="product.external_id: not a known product")


@pytest.fixture
def moderator(browser):
    """A browser tab logged in as the moderator, whose every dialog and external request
    is recorded (review photos on https hosts are answered with a pixel, offline)."""
    context = browser.new_context(http_credentials={"username": "moderator",
                                                    "password": PASSWORD})
    external, dialogs = [], []
    context.route("https://**/*", lambda route: (external.append(route.request.url),
                                                 route.fulfill(body=PIXEL,
                                                               content_type="image/png")))
    page = context.new_page()
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.external, page.dialogs = external, dialogs
    yield page
    context.close()


def review_ids(page):
    return page.locator("tr.review").evaluate_all("rows => rows.map(r => r.dataset.reviewId)")


def test_a_moderator_filters_rejected_one_star_reviews_pages_and_opens_one(server, moderator):
    page = moderator
    assert page.goto(server.url + "/moderation/").status == 200
    assert page.get_by_role("heading", name="Reviews in Klaviyo").is_visible()
    page.get_by_label("Status").select_option("rejected")
    page.get_by_label("Rating").select_option("1")
    page.get_by_label("Per page").fill("2")
    page.get_by_role("button", name="Show reviews").click()
    page.wait_for_url(re.compile(r"status=rejected"))
    assert "rating=1" in page.url  # the view is bookmarkable
    first = review_ids(page)
    assert first == ["rej1-4", "rej1-3"]

    page.get_by_role("link", name="Next page →").click()
    page.wait_for_url(re.compile(r"cursor="))
    assert review_ids(page) == ["rej1-2", "rej1-1"]
    page.get_by_role("link", name="Next page →").click()
    page.wait_for_load_state()
    assert review_ids(page) == ["rej1-0", "rej-other"]
    assert page.get_by_role("link", name="Next page →").count() == 0
    page.get_by_role("link", name="← Previous page").click()
    page.wait_for_load_state()
    assert review_ids(page) == ["rej1-2", "rej1-1"]
    page.get_by_role("link", name="← Previous page").click()
    page.wait_for_load_state()
    assert review_ids(page) == first
    for row in page.locator("tr.review").all():
        assert "rejected" in row.inner_text() and "reason:" in row.inner_text()
        assert row.get_by_role("img", name="1 of 5 stars").is_visible()

    page.goto(server.url + "/moderation/?status=rejected&rating=1&size=10")
    page.get_by_role("link", name="Same as before").click()
    page.wait_for_url(re.compile(r"/moderation/reviews/rej-other$"))
    fields = page.locator("dl.fields").inner_text()
    for expected in ["rej-other", "review", "(1)", "rejected",
                     "Rejection reason\nother", "Duplicate of review pub-unicode",
                     "Author\nAnn B.", "rej-other@example.com", "Same as before",
                     "Copy of my other review.", "Smart quote\nCopy of my other review",
                     "Linen shirt", "external id: 7549950034135", "UTC"]:
        assert expected in fields, expected
    assert page.get_by_role("link", name="Linen shirt").get_attribute("href") == \
        "https://shop.example.com/products/7549950034135"
    assert "SubmittedReview" in page.locator("table.events").inner_text()


def test_photos_and_public_replies_show_on_the_detail_page(server, moderator):
    page = moderator
    page.goto(server.url + "/moderation/reviews/pub-unicode")
    photos = page.locator("ul.photos img")
    assert photos.count() == 2
    assert photos.first.evaluate("img => img.complete && img.naturalWidth") == 1
    assert "Danke, Zoë!" in page.locator("blockquote.reply").inner_text()
    assert all(url.startswith("https://") for url in page.external)
    assert not any(server.url in url for url in page.external)


@pytest.mark.parametrize("path", ["/moderation/?size=100", "/moderation/reviews/xss-payload"])
def test_script_and_onerror_payloads_render_as_text_and_run_nothing(server, moderator, path):
    page = moderator
    page.add_init_script("window.__pwned = undefined")
    page.goto(server.url + path)
    page.wait_for_load_state("load")
    payloads = page.get_by_text(re.compile(r"__pwned")).all()
    assert len(payloads) >= 2
    for payload in payloads:  # a hover would fire any onmouseover that got through
        payload.hover(timeout=2000)
    assert page.evaluate("window.__pwned") is None
    assert page.dialogs == []
    body = page.locator("main").inner_text()
    assert "<script>window.__pwned = 'title'; alert('title')</script>" in body
    assert "onerror=\"window.__pwned='content'" in body
    assert page.locator("main script, main svg, main iframe, main img[onerror]").count() == 0
    assert page.locator("a[href^='javascript:']").count() == 0


def test_a_browser_with_wrong_credentials_gets_401_and_no_reviews(server, browser):
    # (Headless Chromium without any credentials aborts the login prompt instead of
    # showing the page; the status without credentials is checked in
    # tests/moderation/test_views.py.)
    context = browser.new_context(http_credentials={"username": "moderator",
                                                    "password": "guess"})
    page = context.new_page()
    response = page.goto(server.url + "/moderation/?status=rejected")
    assert response.status == 401
    assert "Log in to moderate reviews" in page.content()
    assert "Awful" not in page.content()
    context.close()


def test_the_overview_shows_counts_charts_and_the_queue_and_axe_finds_nothing(
        server, moderator):
    page = moderator
    busy_day(server.app)
    assert page.goto(server.url + "/moderation/").status == 200
    page.get_by_role("link", name="Overview").click()
    page.wait_for_url(re.compile(r"/moderation/overview$"))
    assert page.get_by_role("heading", name="Overview", exact=True).is_visible()
    for name in ["Product reviews per rating", re.compile(r"^Reviews received per week"),
                 re.compile(r"^Average rating of product reviews per week")]:
        chart = page.get_by_role("img", name=name)
        assert chart.is_visible() and chart.bounding_box()["width"] > 300
    assert page.locator("table.figures tbody tr").count() == 5 + 12
    queue = page.locator("section.card-queue").inner_text()
    assert "3\nqueued" in queue and "4 min\noldest waiting" in queue and "1\ndead" in queue
    assert axe_violations(page) == []
    page.emulate_media(color_scheme="dark")  # a screen kept open all day may be dark
    assert axe_violations(page) == []
    page.emulate_media(color_scheme="light")
    page.get_by_role("link", name=re.compile(r"^\d+ pending$")).click()
    page.wait_for_url(re.compile(r"/moderation/\?status=pending$"))
    assert page.get_by_label("Status").input_value() == "pending"
    assert all("pending" in row.inner_text() for row in page.locator("tr.review").all())


def test_the_list_with_its_new_filters_and_count_passes_axe(server, moderator):
    page = moderator
    page.goto(server.url + "/moderation/?size=100")
    assert page.get_by_text(re.compile(r"^16 reviews")).is_visible()
    assert axe_violations(page) == []
    page.get_by_label("Photos").select_option("with")
    page.get_by_label("Public reply").select_option("with")
    page.get_by_role("button", name="Show reviews").click()
    page.wait_for_url(re.compile(r"media=with"))
    assert review_ids(page) == ["pub-unicode"]
    assert page.get_by_text("1 review", exact=True).is_visible()
    page.goto(server.url + "/moderation/?rating=9")
    assert axe_violations(page) == []  # the page with its error message too


def test_the_readme_screenshot_of_the_overview_is_taken(server, moderator):
    page = moderator
    busy_day(server.app)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(server.url + "/moderation/overview")
    page.get_by_role("img", name="Product reviews per rating").wait_for()
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOT, full_page=True)
    with Image.open(SCREENSHOT) as shot:
        assert shot.width == 1280 and shot.height > 900
