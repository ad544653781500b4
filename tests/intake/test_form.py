"""The form's routes without a browser: pages, the no-JavaScript post, headers, settings."""

from __future__ import annotations

import io
import json
import re

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as settings_of
from hypothesis import strategies as st
from PIL import Image
from werkzeug.datastructures import MultiDict

from tests.reviews import decode_data_uri, form_token, image_bytes
from widget import create_app, i18n
from widget.config import ConfigError
from widget.intake import defences
from widget.intake import pages as embed
from widget.intake.schemas import INTEGRATIONS

QUESTIONS = [
    {"id": "fit", "label": {"en": "How does it fit?", "fr": "Quelle taille ?"},
     "choices": ["Small", {"value": "True to size", "label": {"fr": "Normale"}}, "Large"],
     "required": True},
    {"id": "use", "label": "What for?"},
]


@pytest.fixture
def settings(settings):
    """The closed API of production; tokens may be used at once (tests type fast)."""
    return {**settings, "WIDGET_OPEN_API": False, "WIDGET_TOKEN_MIN_SECONDS": 0}


def token(product="shopify:42", secret="test-secret"):
    """What GET /embed puts in the form of product 42 (settings' SECRET_KEY)."""
    return form_token(product, secret=secret)


def form(**fields):
    base = {"review_type": "review", "rating": "5", "content": "Great fit.", "author": "Ann",
            "email": "ann@example.com", "product_id": "42", "integration": "shopify",
            "idempotency_key": "k" * 32, "form_token": token()}
    base.update(fields)
    return {key: value for key, value in base.items() if value is not None}


def queued_bodies(app):
    store = app.extensions["outbox"]
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT body FROM submissions ORDER BY created_at").all()
    return [json.loads(row[0]) for row in rows]


def test_the_form_shows_the_product_name_escaped_as_its_heading(client):
    page = client.get("/embed?product_id=42&product_name=<img src=x onerror=alert(1)>")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "<h1>&lt;img src=x onerror=alert(1)&gt;</h1>" in html
    assert "<img src=x" not in html


def test_pages_have_no_inline_script_or_style_and_a_strict_csp(client):
    for path in ("/embed?product_id=42", "/"):
        page = client.get(path)
        html = page.get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\ssrc=)", html), path
        assert " style=" not in html and "<style" not in html, path
        csp = page.headers["Content-Security-Policy"]
        assert "script-src 'self';" in csp and "style-src 'self';" in csp
        assert "unsafe-inline" not in csp and "default-src 'none'" in csp


def test_only_the_form_takes_frame_ancestors_from_the_setting(make_app):
    client = make_app(WIDGET_FRAME_ANCESTORS="'self' https://shop.example").test_client()
    form_csp = client.get("/embed").headers["Content-Security-Policy"]
    assert form_csp.endswith("frame-ancestors 'self' https://shop.example")
    assert client.post("/embed", data=form(email="x")).headers[
        "Content-Security-Policy"].endswith("frame-ancestors 'self' https://shop.example")
    assert client.get("/").headers["Content-Security-Policy"].endswith("frame-ancestors 'self'")


def test_every_response_carries_nosniff_a_referrer_policy_and_denied_features(client):
    for response in (client.get("/embed"), client.get("/healthz"), client.get("/embed.js")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert "camera=()" in response.headers["Permissions-Policy"]
    assert "Content-Security-Policy" not in client.get("/healthz").headers


def test_headers_a_view_already_set_are_left_alone(app):
    app.add_url_rule("/own", "own", lambda: ("<p>x</p>", 200, {
        "Content-Security-Policy": "frame-ancestors 'none'", "Referrer-Policy": "no-referrer"}))
    response = app.test_client().get("/own")
    assert response.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_locale_comes_from_the_query_then_the_browser_then_english(client):
    assert 'lang="fr"' in client.get("/embed?locale=fr-CA").get_data(as_text=True)
    german = client.get("/embed", headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
    assert "Bewertung schreiben" in german.get_data(as_text=True)
    assert 'lang="en"' in client.get("/embed?locale=ko",
                                     headers={"Accept-Language": "ko"}).get_data(as_text=True)


def test_unknown_theme_and_type_fall_back_and_an_unknown_integration_is_explained(client):
    html = client.get("/embed?theme=neon&type=poem").get_data(as_text=True)
    assert 'data-theme="auto"' in html and 'id="kr-type"\n      value="store" checked' in html
    dark = client.get("/embed?theme=dark&type=question").get_data(as_text=True)
    assert 'data-theme="dark"' in dark and 'value="question" checked' in dark
    bad = client.get("/embed?product_id=42&integration=magento")
    assert bad.status_code == 400
    assert "integration: Must be one of: shopify, woocommerce." in bad.get_data(as_text=True)


def test_a_form_post_without_javascript_queues_the_review_and_says_what_happens_next(app):
    client = app.test_client()
    page = client.post("/embed", data=form(title="Nice", incentive_type="free_product",
                                           order_id="1001"))
    assert page.status_code == 200
    assert "It will appear on the site after moderation." in page.get_data(as_text=True)
    [body] = queued_bodies(app)
    assert body == {"data": {"type": "review", "attributes": {
        "review_type": "review", "email": "ann@example.com", "author": "Ann",
        "content": "Great fit.", "rating": 5, "title": "Nice", "incentive_type": "free_product",
        "product": {"external_id": "42", "integration_key": "shopify"}},
        "relationships": {"order": {"data": {"type": "order", "id": "1001"}}}}}
    assert "Set-Cookie" not in page.headers


def test_posting_the_same_form_twice_stores_one_review(app):
    client = app.test_client()
    assert client.post("/embed", data=form()).status_code == 200
    assert client.post("/embed", data=form()).status_code == 200
    assert len(queued_bodies(app)) == 1


def test_a_refused_form_comes_back_as_typed_with_errors_next_to_fields(app):
    page = app.test_client().post("/embed", data=form(
        email="ann@example", rating=None, title="<b>Hi</b>", locale="fr"))
    html = page.get_data(as_text=True)
    assert page.status_code == 422
    assert re.search(r'id="kr-err-email">Indiquez une adresse e-mail valide', html)
    assert 'aria-invalid="true"' in html
    assert 'value="&lt;b&gt;Hi&lt;/b&gt;"' in html and "ann@example" in html
    assert 'name="idempotency_key" value="' + "k" * 32 in html
    assert queued_bodies(app) == []


def test_a_question_posted_without_javascript_carries_no_rating(app):
    page = app.test_client().post("/embed", data=form(review_type="question", rating="5",
                                                      title="ignored"))
    assert "We received your question." in page.get_data(as_text=True)
    [body] = queued_bodies(app)
    assert body["data"]["attributes"]["review_type"] == "question"
    assert "rating" not in body["data"]["attributes"]
    assert "title" not in body["data"]["attributes"]


def test_a_photo_posted_without_javascript_arrives_re_encoded_without_exif(app):
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    photo = image_bytes(size=(640, 480), exif=exif)
    data = form()
    data["photos"] = (io.BytesIO(photo), "shirt.jpg", "image/jpeg")
    page = app.test_client().post("/embed", data=data, content_type="multipart/form-data")
    assert page.status_code == 200
    [body] = queued_bodies(app)
    [uri] = body["data"]["attributes"]["images"]
    jpeg = decode_data_uri(uri)
    assert jpeg.startswith(b"\xff\xd8") and b"Exif" not in jpeg and b"TestCam" not in jpeg


def test_a_non_photo_posted_without_javascript_is_named_in_the_error(app):
    data = form()
    data["photos"] = (io.BytesIO(b"<svg/>"), "x.svg", "image/svg+xml")
    page = app.test_client().post("/embed", data=data, content_type="multipart/form-data")
    assert page.status_code == 422
    assert "Photo 1 could not be used" in page.get_data(as_text=True)


def test_custom_questions_from_configuration_are_asked_and_answered(make_app):
    app = make_app(WIDGET_CUSTOM_QUESTIONS=json.dumps(QUESTIONS))
    client = app.test_client()
    french = client.get("/embed?product_id=42&locale=fr").get_data(as_text=True)
    assert "Quelle taille ?" in french and "Normale" in french and "What for?" in french
    shop = client.get("/embed?locale=fr").get_data(as_text=True)  # a store review: none
    assert "Quelle taille ?" not in shop and 'name="review_type"' in shop
    assert 'name="q.fit" value="True to size" required' in french
    client.post("/embed", data=form(**{"q.fit": "True to size", "q.use": "  "}))
    [body] = queued_bodies(app)
    assert body["data"]["attributes"]["custom_questions"] == [
        {"id": "fit", "answers": ["True to size"]}]


@pytest.mark.parametrize("setting, message", [
    ("{not json", "not valid JSON"),
    ('[{"label": "No id"}]', "needs an id"),
    ('[{"id": "a", "label": "A"}, {"id": "a", "label": "B"}]', "distinct"),
    ('[{"id": "a", "label": "A", "colour": "red"}]', "unknown keys"),
    ('[{"id": "a", "label": "A", "required": "yes"}]', "true or false"),
])
def test_custom_questions_that_make_no_sense_stop_the_app_at_boot(settings, setting, message):
    with pytest.raises(ConfigError, match=message):
        create_app({**settings, "WIDGET_CUSTOM_QUESTIONS": setting})


def test_the_theme_setting_is_served_as_a_stylesheet_of_custom_properties(make_app):
    client = make_app(WIDGET_THEME="--kr-accent: #7a1fa2; --kr-radius: 12px").test_client()
    assert "/embed/theme.css" in client.get("/embed").get_data(as_text=True)
    css = client.get("/embed/theme.css")
    assert css.mimetype == "text/css"
    assert css.get_data(as_text=True) == (
        ":root,:root[data-theme]{--kr-accent: #7a1fa2; --kr-radius: 12px}\n")


@pytest.mark.parametrize("theme", ["color: red", "--kr-x: red} body{display:none",
                                   "--kr-bg: url(https://evil.example/x.png)"])
def test_a_theme_that_is_not_plain_custom_properties_stops_the_app(settings, theme):
    with pytest.raises(ConfigError, match="WIDGET_THEME"):
        create_app({**settings, "WIDGET_THEME": theme})


def test_the_loader_is_cached_briefly_and_versioned_assets_for_a_year(client):
    loader = client.get("/embed.js")
    assert loader.mimetype == "text/javascript"
    assert loader.cache_control.max_age == 300
    html = client.get("/embed").get_data(as_text=True)
    css_url = re.search(r'href="(/embed/assets/form\.css\?v=\w+)"', html)[1]
    css = client.get(css_url)
    assert css.cache_control.max_age == 365 * 24 * 3600 and css.cache_control.immutable
    again = client.get(css_url, headers={"If-None-Match": css.headers["ETag"]})
    assert again.status_code == 304
    assert client.get("/embed/assets/secrets.py").status_code == 404


def test_the_demo_storefront_embeds_the_form_with_the_loader(client):
    html = client.get("/").get_data(as_text=True)
    assert re.search(r'<script src="/embed.js" data-product-id="demo-tshirt"', html)


def test_pages_are_compressed_for_browsers_that_accept_it(client):
    page = client.get("/embed", headers={"Accept-Encoding": "gzip"})
    assert page.headers["Content-Encoding"] == "gzip"
    assert len(page.data) < 4000


def test_a_changed_form_sent_again_from_the_back_button_is_explained_with_a_new_key(app):
    client = app.test_client()
    client.post("/embed", data=form())
    page = client.post("/embed", data=form(content="Changed my mind."))
    html = page.get_data(as_text=True)
    assert page.status_code == 422
    assert "This form was sent before." in html
    assert 'name="idempotency_key" value="' + "k" * 32 not in html
    key = re.search(r'name="idempotency_key" value="(\w+)"', html)[1]
    assert client.post("/embed", data=form(content="Changed my mind.",
                                           idempotency_key=key)).status_code == 200
    assert len(queued_bodies(app)) == 2


def test_form_pages_are_never_stored_by_caches(client):
    assert client.get("/embed").headers["Cache-Control"] == "no-store"
    assert client.post("/embed", data=form()).headers["Cache-Control"] == "no-store"


def test_a_throttled_form_post_comes_back_as_typed_and_says_when_to_retry(make_app):
    client = make_app(RATELIMIT_ENABLED=True, WIDGET_SUBMIT_LIMIT="1/minute").test_client()
    assert client.post("/embed", data=form()).status_code == 200
    page = client.post("/embed", data=form(content="Another one.", locale="de"))
    html = page.get_data(as_text=True)
    assert page.status_code == 429 and int(page.headers["Retry-After"]) > 0
    assert "Nicht gesendet: zu viele Einsendungen" in html and "Another one." in html


def test_the_form_carries_a_signed_token_and_a_honeypot_for_the_script_to_send(client):
    html = client.get("/embed").get_data(as_text=True)
    token = re.search(r'name="form_token" value="([^"]+)"\s+data-header="X-Review-Token"', html)
    assert token and token[1].count(".") == 2
    assert re.search(r'name="website" tabindex="-1" autocomplete="off"\s+'
                     r'data-header="X-Review-Honeypot"', html)


@pytest.mark.parametrize("fields, detail", [
    ({"form_token": None}, "Reviews are taken from the review form only"),
    ({"form_token": "forged.token.value"}, "not one this service issued"),
    ({"website": "https://spam.example"}, "looks automated"),
])
def test_a_form_post_without_a_valid_token_or_with_the_honeypot_filled_is_refused(
        app, fields, detail):
    page = app.test_client().post("/embed", data=form(**fields))
    assert page.status_code == 403
    html = page.get_data(as_text=True)
    assert detail in html and "Great fit." in html
    assert queued_bodies(app) == []


def test_a_form_post_from_a_page_on_another_origin_is_refused(app):
    page = app.test_client().post("/embed", data=form(),
                                  headers={"Origin": "https://evil.example"})
    assert page.status_code == 403
    assert queued_bodies(app) == []


# Query values as a storefront (or an attacker) may send them: markup, quotes, entities,
# private-use characters like the page's own slot markers, any script.
query_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40) \
    | st.sampled_from(['<script>alert(1)</script>', '"><img src=x>', "&amp;", "\ue000key\ue001"])


# One app for every example on purpose: later examples fill blank pages cached by earlier ones.
@settings_of(max_examples=60, deadline=None,
             suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(product_id=st.none() | query_text, order_id=st.none() | query_text,
       product_name=st.none() | query_text, locale=st.sampled_from(sorted(i18n.LOCALES)),
       theme=st.sampled_from(embed.THEMES), mode=st.sampled_from(embed.MODES),
       integration=st.sampled_from(INTEGRATIONS))
def test_a_form_filled_into_its_blank_page_is_the_page_a_full_render_gives(
        app, product_id, order_id, product_name, locale, theme, mode, integration):
    context = {"product_id": product_id, "order_id": order_id, "product_name": product_name,
               "locale": locale, "theme": theme, "mode": mode, "integration": integration}
    with app.test_request_context("/embed"):
        full = embed.render_form(context, MultiDict(), {}, key="k" * 32, token="a.b.c")
        filled = embed.blank_form(context).fill(context, key="k" * 32, token="a.b.c")
    assert filled == full


def test_each_form_page_has_its_own_key_and_token_and_the_product_it_was_asked_for(client):
    first = client.get("/embed?product_id=1&product_name=Shirt%20%3Cb%3E").text
    second = client.get("/embed?product_id=2&product_name=Socks").text
    key = re.compile(r'name="idempotency_key" value="(\w+)"')
    token = re.compile(r'name="form_token" value="([^"]+)"')
    assert key.search(first).group(1) != key.search(second).group(1)
    assert token.search(first).group(1) != token.search(second).group(1)
    assert "<h1>Shirt &lt;b&gt;</h1>" in first and "<h1>Socks</h1>" in second
    assert 'name="product_id" value="2"' in second and "\ue000" not in second


def test_the_merchants_questions_hold_for_a_form_posted_without_javascript(make_app):
    app = make_app(WIDGET_CUSTOM_QUESTIONS=json.dumps(QUESTIONS))
    client = app.test_client()
    page = client.post("/embed", data=form(**{"q.fit": "Enormous", "q.use": "Hiking"}))
    html = page.get_data(as_text=True)
    assert page.status_code == 422
    assert re.search(r'id="kr-err-q0">Answer this question\.', html)
    assert "Hiking" in html
    missing = client.post("/embed", data=form(**{"q.use": "Hiking"}))
    assert missing.status_code == 422
    assert re.search(r'id="kr-err-questions">Answer this question\.', missing.text)
    unknown = client.post("/embed", data=form(**{"q.fit": "Small", "q.colour": "red"}))
    assert unknown.status_code == 422
    assert queued_bodies(app) == []


def test_a_refused_form_comes_back_with_a_fresh_token_for_the_same_product(app):
    sent = token()
    page = app.test_client().post("/embed", data=form(email="nope", form_token=sent))
    fresh = re.search(r'name="form_token" value="([^"]+)"', page.text)[1]
    assert page.status_code == 422 and fresh != sent
    with app.test_request_context():
        claims = defences.check_token(fresh, required=True)
    assert claims.product == "shopify:42"


def test_photos_over_the_body_limit_are_named_and_the_text_comes_back(make_app):
    app = make_app(MAX_CONTENT_LENGTH=100_000)  # bodies under werkzeug's test spool (500 KB)
    client = app.test_client()
    data = form(content="Keep what I wrote.")
    data["photos"] = [(io.BytesIO(image_bytes()), "small.jpg", "image/jpeg"),
                      (io.BytesIO(b"\xff\xd8\xff" + b"\x01" * 150_000), "big.jpg", "image/jpeg")]
    page = client.post("/embed", data=data, content_type="multipart/form-data")
    assert page.status_code == 413
    assert "Keep what I wrote." in page.text and "Photo 2 could not be used" in page.text
    assert "Photo 1 could not be used" not in page.text
    data["photos"] = [(io.BytesIO(b"\xff\xd8\xff" + b"\x01" * 250_000), "huge.jpg", "image/jpeg")]
    beyond = client.post("/embed", data=data, content_type="multipart/form-data")
    assert beyond.status_code == 413 and "too large to send" in beyond.text
    assert queued_bodies(app) == []


def test_the_form_pages_context_is_kept_per_query_and_language_and_a_setup_error_is_not(app):
    from widget.intake.form import embed_context

    def context_of(query, language="fr"):
        with app.test_request_context(f"/embed?{query}", headers={"Accept-Language": language}):
            return embed_context()

    first = context_of("product_id=42")
    assert context_of("product_id=42") is first and first["locale"] == "fr"
    assert context_of("product_id=42", "de")["locale"] == "de"
    for _ in range(2):
        with pytest.raises(embed.SetupError):
            context_of("integration=nope")
