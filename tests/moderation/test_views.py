"""The moderation pages: who may see them, what they show, and that nothing runs from a review."""

from __future__ import annotations

import base64
import json
import re

import pytest

from tests.moderation.mirror import ids_on, link
from tests.reviews import review_body

PASSWORD = "correct horse battery staple"
URLS = ["/moderation/", "/moderation", "/moderation/?status=rejected",
        "/moderation/reviews/pub-unicode", "/moderation/outbox", "/moderation/overview",
        "/moderation/reviews.csv", "/moderation/reviews.csv?status=pending",
        "/moderation/no-such-page"]


def basic(username, password):
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


MODERATOR = basic("moderator", PASSWORD)




def text(response):
    return response.get_data(as_text=True)


# -- who may see the pages ----------------------------------------------------------------
@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("headers", [
    {},
    basic("moderator", "wrong password"),
    basic("someone", PASSWORD),
    basic("moderator", ""),
    {"Authorization": f"Bearer {PASSWORD}"},
    {"Authorization": "Basic not-base64!"},
], ids=["none", "wrong-password", "wrong-user", "empty-password", "bearer", "garbage"])
def test_every_moderation_url_answers_401_without_the_right_credentials(
        moderation, fake_klaviyo, url, headers):
    response = moderation.test_client().get(url, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert "Log in" in text(response)
    assert "Lovely shirt" not in text(response)
    assert "text/csv" not in response.content_type
    assert fake_klaviyo.received == []


@pytest.mark.parametrize("url", URLS)
def test_moderation_is_closed_and_says_how_to_open_it_when_no_password_is_set(
        make_app, fake_klaviyo, url):
    response = make_app(MODERATION_PASSWORD=None).test_client().get(url, headers=MODERATOR)
    assert response.status_code == 403
    assert "Moderation is closed" in text(response)
    assert "MODERATION_PASSWORD" in text(response)
    assert "WWW-Authenticate" not in response.headers
    assert fake_klaviyo.received == []


def test_a_custom_username_is_required_when_one_is_set(make_app):
    client = make_app(MODERATION_PASSWORD=PASSWORD, MODERATION_USERNAME="ines").test_client()
    assert client.get("/moderation/outbox", headers=MODERATOR).status_code == 401
    assert client.get("/moderation/outbox", headers=basic("ines", PASSWORD)).status_code == 200


@pytest.mark.parametrize("url,headers", [
    ("/moderation/", MODERATOR), ("/moderation/reviews/xss-payload", MODERATOR),
    ("/moderation/outbox", MODERATOR), ("/moderation/", {}),
    ("/moderation/overview", MODERATOR), ("/moderation/reviews.csv", MODERATOR),
    ("/moderation/reviews.csv?rating=9", MODERATOR),
    ("/moderation/reviews/missing", MODERATOR), ("/moderation/?rating=9", MODERATOR),
])
def test_moderation_pages_are_never_cached_never_framed_and_allow_no_script(
        moderation, url, headers):
    response = moderation.test_client().get(url, headers=headers)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert "unsafe-inline" not in csp
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    if response.mimetype == "text/csv":  # plain text, downloaded: the review's own text
        assert response.headers["Content-Disposition"] == 'attachment; filename="reviews.csv"'
    else:
        assert "<script" not in text(response).lower()


# -- the list -----------------------------------------------------------------------------
def test_the_list_shows_each_review_with_stars_status_reason_photos_and_dates(browse):
    page = text(browse("/moderation/?status=all&size=100"))
    row = re.search(r'data-review-id="pub-unicode".*?</tr>', page, re.S).group(0)
    assert 'aria-label="5 of 5 stars">★★★★★' in row
    assert "Très bien — 很好" in row and "Zoë Ångström 🌟" in row
    assert "pub-unicode@example.com" in row and "Linen shirt" in row
    assert 'src="https://images.example.com/reviews/pub-unicode-1.jpg"' in row
    assert "2025-01-07 09:37 UTC" in row
    rejected = re.search(r'data-review-id="rej-other".*?</tr>', page, re.S).group(0)
    assert "rejected" in rejected and "reason: other" in rejected
    assert "Duplicate of review pub-unicode" in rejected
    question = re.search(r'data-review-id="question-size".*?</tr>', page, re.S).group(0)
    assert "question (no rating)" in question
    empty = re.search(r'data-review-id="empty-fields".*?</tr>', page, re.S).group(0)
    assert "(no title)" in empty and "(no text)" in empty and "(no email)" in empty
    assert "(no product)" in empty and "(no author)" in empty


def test_filters_sort_and_page_size_combine_over_the_mirror_without_calling_klaviyo(
        browse, fake_klaviyo):
    page = text(browse("/moderation/?status=rejected&rating=1&verified=true&q=WASHES"
                       "&created_from=2025-01-01&created_to=2025-01-31&sort=rating&size=3"))
    assert ids_on(page) == ["rej1-0", "rej1-2", "rej1-4"]
    assert "<strong>3 reviews</strong>" in page
    assert '<option value="rejected" selected>' in page  # the form shows the view it is
    assert fake_klaviyo.received == []


def test_invalid_filters_explain_themselves_and_read_nothing(browse, fake_klaviyo):
    page = text(browse('/moderation/?rating=9&q=say+"hi"&rating_min=5&rating_max=2'
                       "&email=a%01b&media=without", 400))
    assert "These filters cannot be used" in page
    assert "rating: Must be greater than or equal to 1" in page
    assert "email: Must not contain control characters." in page
    assert "media: Must be one of: with." in page
    assert 'value="say &#34;hi&#34;"' in page
    assert "data-review-id" not in page
    assert fake_klaviyo.received == []


def test_paging_goes_forward_and_back_with_our_own_cursors_and_no_klaviyo_call(
        browse, fake_klaviyo):
    url = "/moderation/?status=rejected&rating=1&sort=-created&size=2"
    pages, seen = [], []
    for _ in range(3):
        page = text(browse(url))
        seen.append(ids_on(page))
        pages.append(page)
        url = link(page, "next")
    assert seen == [["rej1-4", "rej1-3"], ["rej1-2", "rej1-1"], ["rej1-0", "rej-other"]]
    assert url is None  # the last page has no next link
    assert 'rel="prev"' not in pages[0]
    back = link(pages[2], "prev")
    assert back.startswith("/moderation/?") and "status=rejected" in back
    assert ids_on(text(browse(back))) == ["rej1-2", "rej1-1"]
    assert all("<strong>6 reviews</strong>" in page for page in pages)
    assert fake_klaviyo.received == []


# -- one review ---------------------------------------------------------------------------
def test_the_detail_page_shows_every_field_klaviyo_returns_and_the_related_events(
        browse, fake_klaviyo):
    fake_klaviyo.reads.reviews[0]["attributes"]["syndicated_from"] = "store-2"
    page = text(browse("/moderation/reviews/pub-unicode"))
    for expected in ["pub-unicode", "Très bien — 很好", "Perfekt passform. „Schön“ ✓ 👕",
                     "Zoë Ångström 🌟", "pub-unicode@example.com", "published", "★★★★★",
                     "Smart quote</dt><dd>Perfekt passform", "Danke, Zoë!", "Linen &amp; Co",
                     'href="https://shop.example.com/products/7549950034135"',
                     "external id: 7549950034135", "2025-01-07 09:37 UTC",
                     "$shopify:::$default:::7549950034135", "pub-unicode-2.jpg",
                     "evt-pub-unicode", "SubmittedReview", "profile-pub-unicode",
                     "Review widget", "syndicated_from", "store-2"]:
        assert expected in page, expected
    rejected = text(browse("/moderation/reviews/rej-other"))
    assert "Rejection reason</dt><dd>other" in rejected
    assert "Explanation</dt><dd>Duplicate of review pub-unicode" in rejected


def test_a_review_with_empty_fields_or_no_rating_still_renders(browse):
    assert "<span class=\"muted\">—</span>" in text(browse("/moderation/reviews/empty-fields"))
    assert "question (no rating)" in text(browse("/moderation/reviews/question-size"))


@pytest.mark.parametrize("review_id", ["missing", "..", "a%20b", "x" * 65])
def test_an_unknown_or_malformed_review_id_is_a_clear_404(browse, review_id):
    assert "No such review" in text(browse(f"/moderation/reviews/{review_id}", 404))


# -- nothing from a review runs -----------------------------------------------------------
@pytest.mark.parametrize("url", ["/moderation/?size=100", "/moderation/reviews/xss-payload"])
def test_html_and_script_in_reviews_are_shown_as_text(browse, url):
    page = text(browse(url))
    assert "&lt;script&gt;window.__pwned" in page
    assert "onerror=&#34;window.__pwned" in page
    assert not re.search(r"<(script|svg|iframe|b )", page, re.I)
    assert not re.search(r"<img[^>]*onerror", page, re.I)
    assert not re.search(r'(href|src)="\s*javascript:', page, re.I)
    assert 'src="http://insecure.example.com' not in page


def test_photos_are_thumbnails_only_when_https_or_an_image_data_uri(browse):
    page = text(browse("/moderation/reviews/photo-data-uri"))
    assert re.search(r'<img class="photo" src="data:image/png;base64,iVBOR', page)
    assert "photo not shown (not https): http://insecure.example.com/x.jpg" in page
    assert "photo not shown (not https): javascript:alert(&#39;photo&#39;)" in page


# -- the local queue ----------------------------------------------------------------------
def test_the_outbox_page_counts_states_and_shows_waiting_and_dead_rows_with_reasons(
        make_app, fake_klaviyo):
    app = make_app(MODERATION_PASSWORD=PASSWORD, KLAVIYO_PRIVATE_KEY=None)
    store = app.extensions["outbox"]
    waiting = store.put(json.dumps(review_body()).encode())
    dead = store.put(json.dumps(review_body(author="Bo")).encode())
    store.mark_dead(dead.id, status=400, error="product.external_id: not a known product")
    response = app.test_client().get("/moderation/outbox", headers=MODERATOR)
    page = text(response)
    assert response.status_code == 200
    assert "<strong>1</strong> queued" in page and "<strong>1</strong> dead" in page
    assert waiting.id in page and dead.id in page
    dead_row = re.search(rf"<code>{dead.id}</code>.*?</tr>", page, re.S).group(0)
    assert "product.external_id: not a known product" in dead_row and "400" in dead_row
    assert "ann@example.com" not in page  # bodies (personal data) are not listed
    assert fake_klaviyo.received == []
