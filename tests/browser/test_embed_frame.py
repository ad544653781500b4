"""The loader on a storefront: who may frame the form, and the frame's height."""

from __future__ import annotations

import pytest

from tests.browser.embedding import small_photo, storefront, widget_frame

ALLOWED = "'self' http://127.0.0.2:*"


@pytest.fixture
def settings(settings):
    """Production's closed API: the form must send its own token (used at once here)."""
    return {**settings, "WIDGET_OPEN_API": False, "WIDGET_TOKEN_MIN_SECONDS": 0}


def frame_height(page):
    return page.evaluate("document.querySelector('iframe').getBoundingClientRect().height")


def has_scrollbar(frame):
    return frame.evaluate(
        "document.documentElement.scrollHeight > document.documentElement.clientHeight"
    )


def test_the_frame_height_follows_errors_and_photo_previews_without_a_scrollbar(
        page, make_app, live_server, tmp_path):
    widget = live_server(make_app(WIDGET_FRAME_ANCESTORS=ALLOWED))
    shop = live_server(storefront(widget.url, product_id="42", locale="en"), host="127.0.0.2")
    page.set_viewport_size({"width": 700, "height": 500})
    page.goto(shop.url)
    frame = widget_frame(page)
    page.wait_for_function("document.querySelector('iframe').offsetHeight > 400")
    start = frame_height(page)
    assert not has_scrollbar(frame)
    assert page.evaluate("document.querySelector('iframe').title") == "Write a review"

    frame.click("#kr-submit")  # four inline errors and a summary appear
    page.wait_for_function(f"document.querySelector('iframe').offsetHeight > {start + 100}")
    with_errors = frame_height(page)
    assert not has_scrollbar(frame)

    frame.set_input_files("#kr-photos", [small_photo(tmp_path, f"{n}.png") for n in range(5)])
    frame.locator("#kr-previews img").nth(4).wait_for()
    page.wait_for_function(
        f"document.querySelector('iframe').offsetHeight > {with_errors + 40}")
    assert not has_scrollbar(frame)
    content = frame.evaluate("Math.ceil(document.body.getBoundingClientRect().height)")
    assert abs(frame_height(page) - content) <= 1

    frame.check("#kr-mode-question")  # fewer fields: the frame shrinks
    page.wait_for_function(
        f"document.querySelector('iframe').offsetHeight < {with_errors - 100}")
    assert not has_scrollbar(frame)


def test_a_page_on_an_origin_not_in_frame_ancestors_cannot_frame_the_form(
        page, make_app, live_server):
    widget = live_server(make_app(WIDGET_FRAME_ANCESTORS=ALLOWED))
    allowed = live_server(storefront(widget.url, product_id="42"), host="127.0.0.2")
    port = widget.url.rsplit(":", 1)[1]
    other = live_server(storefront(f"http://localhost:{port}", product_id="42"),
                        host="127.0.0.3")

    page.goto(allowed.url)
    assert widget_frame(page).locator("#kr-form").count() == 1

    responses = []
    page.on("response", lambda r: responses.append(r) if "/embed?" in r.url else None)
    page.goto(other.url)
    page.wait_for_function("document.querySelector('iframe') !== null")
    page.wait_for_timeout(500)
    [blocked] = responses
    assert "frame-ancestors 'self' http://127.0.0.2:*" in blocked.headers[
        "content-security-policy"]
    frames = [f for f in page.frames if f != page.main_frame]
    assert frames and all(f.locator("#kr-form").count() == 0 for f in frames)
    iframe = page.locator("iframe")
    assert iframe.evaluate("f => getComputedStyle(f).visibility") == "hidden"
    assert iframe.evaluate("f => f.offsetHeight") == 0
