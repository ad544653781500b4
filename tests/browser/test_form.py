"""A shopper uses the form in Chromium: keyboard only, photos, errors, retries, no JavaScript."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser.embedding import (
    QUESTIONS,
    THANKS,
    focused_id,
    jpeg_from,
    open_jpeg,
    photo_12mp,
    small_photo,
    storefront,
    widget_frame,
)

ALLOWED = "'self' http://127.0.0.2:*"
SCREENSHOT = Path(__file__).parents[2] / "docs" / "form.png"


@pytest.fixture
def settings(settings):
    """Production's closed API: the form must send its own token (used at once here)."""
    return {**settings, "WIDGET_OPEN_API": False, "WIDGET_TOKEN_MIN_SECONDS": 0}


def tab_to(page, frame, element_id, presses=3):
    """Press Tab until `element_id` has focus, failing if it takes more than `presses`."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if focused_id(frame) == element_id:
            return
    raise AssertionError(f"Tab did not reach #{element_id}; focus is on #{focused_id(frame)}")


def choose_file_by_keyboard(page, path):
    """Open the focused file input's chooser with Space (Enter if a busy machine missed it)."""
    for key, wait in (("Space", 5_000), ("Enter", 15_000)):
        try:
            with page.expect_file_chooser(timeout=wait) as chooser:
                page.keyboard.press(key)
        except PlaywrightTimeout:
            continue
        chooser.value.set_files(path)
        return
    raise AssertionError("the file input did not open its chooser from the keyboard")


def test_shopper_on_another_origin_submits_by_keyboard_with_a_12_mp_photo(
        page, make_app, live_server, fake_klaviyo, tmp_path):
    app = make_app(WIDGET_SENDER="thread", WIDGET_FRAME_ANCESTORS=ALLOWED,
                   WIDGET_CUSTOM_QUESTIONS=json.dumps(QUESTIONS),
                   KLAVIYO_MAX_BODY_BYTES=1_000_000)
    widget = live_server(app)
    shop = live_server(storefront(widget.url, product_id="7549950034135",
                                  integration="shopify", order_id="1001",
                                  product_name="Linen shirt", locale="en"), host="127.0.0.2")
    photo = photo_12mp(tmp_path)
    sent = []
    page.on("request", lambda r: sent.append(r) if r.url.endswith("/client/reviews") else None)
    page.goto(shop.url)
    frame = widget_frame(page)
    page.locator("body").focus()

    tab_to(page, frame, "kr-type")
    tab_to(page, frame, "kr-star-1")
    page.keyboard.press("Space")
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    tab_to(page, frame, "kr-title")
    page.keyboard.type("Soft and sturdy")
    tab_to(page, frame, "kr-content")
    page.keyboard.type("Washed it ten times; still like new.")
    tab_to(page, frame, "kr-author")
    page.keyboard.type("Zoë")
    tab_to(page, frame, "kr-email")
    page.keyboard.type("zoe@example.com")
    tab_to(page, frame, "kr-q0-1")
    page.keyboard.press("ArrowRight")  # moves to, and picks, "True to size"
    tab_to(page, frame, "kr-q1")
    page.keyboard.type("Weekends")
    tab_to(page, frame, "kr-photos")
    choose_file_by_keyboard(page, photo)
    frame.locator("#kr-previews img").wait_for()
    page.keyboard.press("Tab")
    assert frame.evaluate("document.activeElement.getAttribute('aria-label')") == \
        "Remove photo 1"
    tab_to(page, frame, "kr-incentive")
    page.keyboard.press("ArrowDown")  # "A coupon or discount"
    tab_to(page, frame, "kr-submit")
    page.keyboard.press("Enter")

    frame.get_by_text(THANKS).wait_for(timeout=15_000)
    assert focused_id(frame) == "kr-thanks"
    reviews = fake_klaviyo.wait_for_reviews(1, timeout=10)
    assert len(reviews) == 1 and len(sent) == 1
    attributes = reviews[0]["data"]["attributes"]
    assert attributes["rating"] == 4
    assert attributes["title"] == "Soft and sturdy"
    assert attributes["author"] == "Zoë"
    assert attributes["incentive_type"] == "coupon_or_discount"
    assert attributes["custom_questions"] == [{"id": "fit", "answers": ["True to size"]},
                                              {"id": "use", "answers": ["Weekends"]}]
    assert attributes["product"] == {"external_id": "7549950034135", "integration_key": "shopify"}
    assert reviews[0]["data"]["relationships"]["order"]["data"]["id"] == "1001"
    # The browser shrank the 5.6 MB photo itself to fit the body limit before sending.
    assert len(sent[0].post_data_buffer) <= 900_000
    assert sent[0].headers["idempotency-key"]
    assert sent[0].headers["x-review-token"]  # the closed API took the form's own token
    [image] = attributes["images"]
    jpeg = jpeg_from(image)
    assert len(jpeg) <= 900_000 * 3 // 4
    received = open_jpeg(jpeg)
    assert max(received.size) <= app.config["PHOTO_MAX_EDGE"]
    assert received.size[0] > received.size[1]
    assert not received.getexif() and b"Exif" not in jpeg
    with Image.open(photo) as original:
        assert original.getexif().get_ifd(0x8825)  # the test photo did carry GPS


def open_form(page, server, query="product_id=42&integration=shopify&locale=en"):
    page.goto(f"{server.url}/embed?{query}")
    page.locator("#kr-form").wait_for()


def fill_review(page, email="ann@example.com", content="Great fit."):
    page.locator("label[for=kr-star-5]").click()
    page.fill("#kr-content", content)
    page.fill("#kr-author", "Ann")
    page.fill("#kr-email", email)


def test_server_errors_show_next_to_their_fields_and_text_and_photos_stay(
        page, make_app, live_server, fake_klaviyo, tmp_path):
    server = live_server(make_app(WIDGET_SENDER="thread"))
    open_form(page, server)
    answers = []
    page.on("response", lambda r: answers.append(r.status)
            if r.url.endswith("/client/reviews") else None)
    # The browser's own checks catch empty fields without a request.
    page.click("#kr-submit")
    assert page.evaluate("document.activeElement.id") == "kr-summary"
    for field in ("rating", "content", "author", "email"):
        assert page.locator(f"#kr-err-{field}").inner_text()
    assert answers == []
    # The server refuses what the browser cannot judge: a bidi override, a dotless domain.
    fill_review(page, email="ann@example", content="Great \u202efit.")
    page.fill("#kr-title", "Lovely")
    page.set_input_files("#kr-photos", small_photo(tmp_path))
    page.locator("#kr-previews img").wait_for()
    with page.expect_response(lambda r: r.url.endswith("/client/reviews")) as refused:
        page.click("#kr-submit")
    assert refused.value.status == 422
    page.locator("#kr-err-email").get_by_text("Enter a valid email address").wait_for()
    assert page.locator("#kr-err-content").inner_text().startswith("Write your text")
    assert page.locator("#kr-email").get_attribute("aria-invalid") == "true"
    assert page.locator("#kr-content").get_attribute("aria-invalid") == "true"
    assert page.locator("#kr-err-title").inner_text() == ""
    assert page.locator("#kr-err-author").inner_text() == ""
    assert page.evaluate("document.activeElement.id") == "kr-summary"
    assert page.locator("#kr-summary li").count() == 2
    assert page.input_value("#kr-title") == "Lovely"
    assert page.input_value("#kr-email") == "ann@example"
    assert page.locator("#kr-previews img").count() == 1
    # Corrected, it goes through with the photo that stayed attached.
    page.fill("#kr-email", "ann@example.com")
    page.fill("#kr-content", "Great fit.")
    page.click("#kr-submit")
    page.get_by_text(THANKS).wait_for()
    [review] = fake_klaviyo.wait_for_reviews(1, timeout=10)
    assert review["data"]["attributes"]["title"] == "Lovely"
    assert len(review["data"]["attributes"]["images"]) == 1


def test_a_double_click_sends_one_review(page, make_app, live_server, fake_klaviyo):
    server = live_server(make_app(WIDGET_SENDER="thread"))
    open_form(page, server)
    requests = []
    page.on("request", lambda r: requests.append(r) if r.url.endswith("/client/reviews") else None)
    fill_review(page)
    page.dblclick("#kr-submit")
    page.get_by_text(THANKS).wait_for()
    assert len(fake_klaviyo.wait_for_reviews(2, timeout=1.5)) == 1
    assert len(requests) == 1


def test_a_failed_send_says_it_was_not_sent_keeps_everything_and_retries_with_the_same_key(
        page, make_app, live_server):
    server = live_server(make_app())
    open_form(page, server)
    keys = []

    def unavailable(route):
        keys.append(route.request.headers["idempotency-key"])
        route.fulfill(status=503, content_type="application/vnd.api+json",
                      body='{"errors": [{"status": "503", "title": "Unavailable"}]}')

    page.route("**/client/reviews", unavailable)
    fill_review(page)
    page.click("#kr-submit")
    summary = page.locator("#kr-summary")
    summary.get_by_text("Not sent: the service is unavailable").wait_for()
    assert page.locator("#kr-thanks").is_hidden()
    assert page.input_value("#kr-content") == "Great fit."
    assert page.locator("#kr-submit").is_enabled()
    page.click("#kr-submit")
    page.wait_for_function("document.querySelectorAll('#kr-summary li').length === 1")
    assert len(keys) == 2 and keys[0] == keys[1]


def test_files_that_are_not_photos_are_refused_by_name_and_photos_can_be_removed(
        page, app, live_server, tmp_path):
    server = live_server(app)
    open_form(page, server)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    page.set_input_files("#kr-photos", [notes, fake, small_photo(tmp_path, "a.png"),
                                        small_photo(tmp_path, "b.png", (200, 40, 40))])
    page.locator("#kr-previews img").nth(1).wait_for()
    error = page.locator("#kr-err-photos").inner_text()
    assert "notes.txt is not a photo" in error and "fake.jpg is not a photo" in error
    assert page.locator("#kr-previews img").count() == 2
    page.get_by_role("button", name="Remove photo 1").click()
    assert page.locator("#kr-previews img").count() == 1
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Remove photo 1"


def test_question_mode_hides_the_rating_and_sends_a_question(
        page, make_app, live_server, fake_klaviyo):
    server = live_server(make_app(WIDGET_SENDER="thread"))
    open_form(page, server, "product_id=42&type=question&locale=en")
    assert page.locator("#kr-star-1").is_hidden()
    assert page.locator("label[for=kr-content]").inner_text() == "Your question"
    page.fill("#kr-content", "Does it shrink?")
    page.fill("#kr-author", "Ann")
    page.fill("#kr-email", "ann@example.com")
    page.click("#kr-submit")
    page.get_by_text("We received your question.").wait_for()
    [question] = fake_klaviyo.wait_for_reviews(1, timeout=10)
    assert question["data"]["attributes"]["review_type"] == "question"
    assert "rating" not in question["data"]["attributes"]


def test_without_javascript_the_form_posts_and_answers_with_a_page(
        browser, make_app, live_server, fake_klaviyo, tmp_path):
    server = live_server(make_app(WIDGET_SENDER="thread"))
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        open_form(page, server, "product_id=42&locale=en&order_id=77")
        fill_review(page, email="ann@example")
        page.set_input_files("#kr-photos", small_photo(tmp_path))
        page.click("#kr-submit")
        assert page.locator("#kr-err-email").inner_text().startswith("Enter a valid email")
        assert page.input_value("#kr-content") == "Great fit."
        assert page.locator("#kr-star-5").is_checked()
        page.fill("#kr-email", "ann@example.com")
        page.set_input_files("#kr-photos", small_photo(tmp_path))  # files are not kept
        page.click("#kr-submit")
        page.get_by_text(THANKS).wait_for()
        [review] = fake_klaviyo.wait_for_reviews(1, timeout=10)
        assert review["data"]["relationships"]["order"]["data"]["id"] == "77"
        assert jpeg_from(review["data"]["attributes"]["images"][0])
        assert context.cookies() == []
    finally:
        context.close()


def test_photos_dropped_on_the_photo_field_are_attached(page, app, live_server, tmp_path):
    server = live_server(app)
    open_form(page, server)
    png = small_photo(tmp_path).read_bytes()
    page.evaluate("""bytes => {
        const transfer = new DataTransfer();
        transfer.items.add(new File([new Uint8Array(bytes)], "dropped.png", {type: "image/png"}));
        const zone = document.getElementById("kr-drop");
        zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true}));
        zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
    }""", list(png))
    page.locator("#kr-previews img").wait_for()
    assert page.locator("#kr-status").inner_text() == "1 photo attached."
    assert page.get_by_role("img", name="Photo 1").is_visible()


def test_the_readme_screenshot_of_the_form_is_taken(page, app, live_server):
    server = live_server(app)
    page.set_viewport_size({"width": 560, "height": 400})
    page.goto(f"{server.url}/embed?product_id=42&product_name=Linen%20shirt&locale=en&theme=light")
    page.locator("label[for=kr-star-4]").click()
    page.fill("#kr-title", "Soft and sturdy")
    page.fill("#kr-content", "Washed it ten times and it still looks new.")
    page.locator("#kr-title").focus()
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOT, full_page=True)
    with Image.open(SCREENSHOT) as shot:
        assert shot.width == 560 and shot.height > 800


def test_fields_marked_with_data_header_travel_as_request_headers(page, app, live_server):
    server = live_server(app)
    open_form(page, server)
    page.evaluate("""() => {
        const token = Object.assign(document.createElement("input"),
                                    {type: "hidden", value: "extra"});
        token.dataset.header = "X-Extra-Field";
        document.getElementById("kr-form").append(token);
    }""")
    fill_review(page)
    with page.expect_request(lambda r: r.url.endswith("/client/reviews")) as sent:
        page.click("#kr-submit")
    assert sent.value.headers["x-extra-field"] == "extra"
    assert sent.value.headers["x-review-token"].count(".") == 2  # the form's signed token
    assert "x-review-honeypot" not in sent.value.headers  # empty, so not sent
    assert sent.value.headers["content-type"] == "application/vnd.api+json"


def test_a_send_that_gets_no_answer_gives_up_with_a_readable_message_and_keeps_the_review(
        page, make_app, live_server, fake_klaviyo):
    server = live_server(make_app(WIDGET_SENDER="thread"))
    open_form(page, server)
    page.evaluate("document.getElementById('kr-settings').dataset.timeout = '1'")
    held = []
    page.route("**/client/reviews", lambda route: held.append(route))  # never answered
    fill_review(page)
    page.click("#kr-submit")
    page.locator("#kr-summary").get_by_text("the service took too long to answer").wait_for(
        timeout=10_000)
    assert page.input_value("#kr-content") == "Great fit."
    assert page.locator("#kr-submit").is_enabled()
    page.unroute("**/client/reviews")
    page.click("#kr-submit")
    page.get_by_text(THANKS).wait_for()
    assert len(fake_klaviyo.wait_for_reviews(1, timeout=5)) == 1


def test_an_old_form_token_is_renewed_before_sending_and_what_was_typed_stays(
        page, make_app, live_server, fake_klaviyo):
    app = make_app(WIDGET_SENDER="thread", WIDGET_TOKEN_MAX_AGE_SECONDS=4,
                   WIDGET_TOKEN_MIN_SECONDS=2)
    server = live_server(app)
    open_form(page, server)
    first = page.input_value("input[name=form_token]")
    fill_review(page, content="Typed slowly, over more than the token's lifetime.")
    page.wait_for_timeout(4500)  # the page's token has expired meanwhile
    renewals = []
    page.on("request", lambda r: renewals.append(r.url) if "/embed/token" in r.url else None)
    page.click("#kr-submit")
    page.get_by_text(THANKS).wait_for()
    assert len(renewals) == 1 and "product_id=42" in renewals[0]
    assert page.input_value("input[name=form_token]") != first
    [review] = fake_klaviyo.wait_for_reviews(1, timeout=5)
    assert review["data"]["attributes"]["content"].startswith("Typed slowly")


def test_a_used_up_token_is_renewed_once_and_the_review_sent_again(
        page, make_app, live_server, fake_klaviyo):
    server = live_server(make_app(WIDGET_SENDER="thread"))
    open_form(page, server)
    answered = []

    def used_up_once(route):
        if answered:
            return route.continue_()
        answered.append(route.request.headers["x-review-token"])
        route.fulfill(status=403, content_type="application/vnd.api+json", body=json.dumps(
            {"errors": [{"status": "403", "code": "token_used_up", "title": "Used up",
                         "detail": "Reload the form."}]}))

    page.route("**/client/reviews", used_up_once)
    fill_review(page)
    page.click("#kr-submit")
    page.get_by_text(THANKS).wait_for()
    assert len(fake_klaviyo.wait_for_reviews(1, timeout=5)) == 1
    assert page.input_value("input[name=form_token]") != answered[0]
