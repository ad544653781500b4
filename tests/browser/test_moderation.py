"""A moderator in Chromium: log in, filter, page, open a review; nothing from a review runs."""

from __future__ import annotations

import re

import pytest

from tests.fake_klaviyo_fixtures import PNG_1PX

PASSWORD = "correct horse battery staple"
PIXEL = __import__("base64").b64decode(PNG_1PX.split(",", 1)[1])


@pytest.fixture
def server(make_app, live_server):
    return live_server(make_app(MODERATION_PASSWORD=PASSWORD))


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
