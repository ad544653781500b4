"""The list page over the mirror: the new filters, the count, stable paging, what it says
about the sync, and the links between a review and the submission that sent it."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.fake_klaviyo_fixtures import review, reviews
from tests.moderation.mirror import CHECK_SECONDS, ids_on, link, store
from tests.moderation.test_views import MODERATOR, PASSWORD
from tests.reviews import review_body
from widget.reviews.store import Mirror


@pytest.fixture
def read(browse):
    """GET a page as the moderator; its text."""
    return lambda url, expect=200: browse(url, expect).get_data(as_text=True)




@pytest.mark.parametrize("query,expected", [
    ("product=xss-1", ["xss-payload"]),
    ("product=7549950034135&rating=1&status=published", ["pub-one-star"]),
    ("email=PUB-Unicode%40Example.com", ["pub-unicode"]),
    ("media=with", ["photo-data-uri", "pub-unicode"]),
    ("reply=with", ["xss-payload", "question-size", "pub-unicode"]),
    ("media=with&reply=with", ["pub-unicode"]),
    ("reply=with&review_type=question", ["question-size"]),
])
def test_each_new_filter_narrows_the_list_and_its_count(read, fake_klaviyo, query,
                                                        expected):
    page = read(f"/moderation/?{query}")
    assert ids_on(page) == expected
    noun = "review" if len(expected) == 1 else "reviews"
    assert f"<strong>{len(expected)} {noun}</strong>" in page
    assert fake_klaviyo.received == []


def test_the_form_shows_the_new_filters_it_was_given(read):
    page = read("/moderation/?product=xss-1&email=a%40b.example&media=with&reply=with")
    assert 'name="product" maxlength="255" value="xss-1"' in page
    assert 'name="email" maxlength="320" value="a@b.example"' in page
    assert '<option value="with" selected>with photos</option>' in page
    assert '<option value="with" selected>with a reply</option>' in page


def test_the_count_states_every_match_in_words_that_agree(read):
    assert f"<strong>{len(reviews())} reviews</strong>" in read("/moderation/?size=2")
    assert "<strong>1 review</strong>" in read("/moderation/?status=featured")
    nothing = read("/moderation/?product=none-such")
    assert "<strong>0 reviews</strong>" in nothing
    assert "No reviews match these filters." in nothing and "as CSV" not in nothing


def test_the_count_groups_thousands(moderation, read):
    store(moderation, [review(f"bulk-{n:04d}", 0) for n in range(1200)])
    assert f"<strong>{1200 + len(reviews()):,} reviews</strong>" in read("/moderation/")


def test_the_next_page_repeats_nothing_when_newer_reviews_arrive_between_two_loads(
        moderation, read):
    first = read("/moderation/?status=rejected&size=3")
    assert ids_on(first) == ["rej2-two-stars", "rej1-4", "rej1-3"]
    store(moderation, [review(f"late-{n}", 30 + n, status="rejected") for n in range(4)])
    second = read(link(first, "next"))
    assert ids_on(second) == ["rej1-2", "rej1-1", "rej1-0"]  # offsets would show rej1-4 again
    assert "<strong>11 reviews</strong>" in second
    assert ids_on(read(link(second, "prev"))) == ids_on(first)
    assert ids_on(read("/moderation/?status=rejected&size=3"))[0] == "late-3"


def test_a_changed_or_stale_page_link_is_a_clear_400(read):
    page = read("/moderation/?status=rejected&size=3")
    token = re.search(r"cursor=([^&\"]+)", link(page, "next")).group(1)
    stale = read(f"/moderation/?status=rejected&size=3&cursor={token[:-3]}xyz", 400)
    assert "This page link is not valid any more" in stale
    other = read(f"/moderation/?status=rejected&size=3&sort=rating&cursor={token}", 400)
    assert "another sort order" in other


def test_product_and_email_link_to_their_own_filters(read):
    page = read("/moderation/?size=100")
    row = re.search(r'data-review-id="pub-unicode".*?</tr>', page, re.S).group(0)
    assert 'href="/moderation/?email=pub-unicode@example.com"' in row
    assert 'href="/moderation/?product=7549950034135"' in row


def test_the_csv_link_carries_the_filters_and_sort_but_not_the_page(read):
    page = read("/moderation/?status=rejected&rating=1&sort=rating&size=2")
    href = re.search(r'href="(/moderation/reviews\.csv[^"]*)"', page).group(1)
    assert href.replace("&amp;", "&") == \
        "/moderation/reviews.csv?status=rejected&rating=1&sort=rating"


def test_the_list_says_how_fresh_the_mirror_is_and_what_its_last_sync_hit(
        moderation, read, fake_klaviyo):
    assert re.search(r"synced <span class=\"sync-age\">\d+ s</span> ago", read("/moderation/"))
    fake_klaviyo.fail_with(503)
    assert moderation.extensions["syncer"].sync_once().error
    page = read("/moderation/")
    assert "The last sync failed 0 s ago" in page and "KlaviyoUnavailable" in page
    assert 'data-review-id="pub-unicode"' in page  # what the earlier sync read stays


def test_an_empty_mirror_says_it_is_not_synced_yet_and_how_it_fills(make_app, fake_klaviyo):
    app = make_app(MODERATION_PASSWORD=PASSWORD)
    response = app.test_client().get("/moderation/", headers=MODERATOR)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Not synced yet." in page and "REVIEWS_SYNC_SECONDS" in page
    assert "KLAVIYO_PRIVATE_KEY" in page and "<strong>0 reviews</strong>" in page
    assert fake_klaviyo.received == []


def test_a_review_sent_by_this_service_and_its_outbox_row_link_each_other(
        moderation, read):
    store_ = moderation.extensions["outbox"]
    sent = store_.put(json.dumps(review_body()).encode())
    store_.mark_delivered(sent.id, 202, klaviyo_review_id="pub-unicode")
    detail = read("/moderation/reviews/pub-unicode")
    assert "Sent by this service: submission" in detail
    assert f'href="/moderation/outbox#submission-{sent.id}"><code>{sent.id}</code></a>' in detail
    queue = read("/moderation/outbox")
    row = re.search(rf'<tr class="row-delivered" id="submission-{sent.id}">.*?</tr>', queue,
                    re.S).group(0)
    assert 'href="/moderation/reviews/pub-unicode"' in row
    assert "Sent by this service" not in read("/moderation/reviews/rej-other")


def test_a_list_page_is_kept_per_mirror_generation_and_another_process_sync_shows(
        moderation, read):
    moderation.extensions["display"].check_seconds = CHECK_SECONDS
    before = ids_on(read("/moderation/?status=rejected&size=3"))
    other_process = Mirror(moderation.extensions["mirror"].engine)  # its own local writes
    other_process.upsert([review("from-elsewhere", 60, status="rejected")])
    assert ids_on(read("/moderation/?status=rejected&size=3")) == before  # kept, not read
    time.sleep(CHECK_SECONDS + 0.05)
    assert ids_on(read("/moderation/?status=rejected&size=3"))[0] == "from-elsewhere"
