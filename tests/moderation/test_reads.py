"""Moderation's reads from Klaviyo (the detail page; the list reads the mirror): cached,
paced with submissions, honest when they fail, and never showing the private key."""

from __future__ import annotations

import json
import logging
import time

import pytest

from tests.fake_klaviyo_reads import UNSCOPED_KEY
from tests.moderation.mirror import forget_calls, sync
from tests.moderation.test_views import MODERATOR, PASSWORD
from tests.reviews import review_body
from widget.klaviyo import KlaviyoClient

KEY = "pk_test_private_key_never_shown"



def get(app, url):
    return app.test_client().get(url, headers=MODERATOR)


def lists(fake):
    return fake.requests("/api/reviews")


def details(fake):
    return [r for r in fake.received if r.path.startswith("/api/reviews/")]


# -- kind to the shared budget ------------------------------------------------------------
def test_reloading_a_review_within_the_cache_time_makes_no_new_call_and_the_list_none(
        moderation, fake_klaviyo):
    for _ in range(3):
        assert get(moderation, "/moderation/?status=rejected").status_code == 200
        assert get(moderation, "/moderation/reviews/rej-other").status_code == 200
    assert lists(fake_klaviyo) == []
    assert len(details(fake_klaviyo)) == 1


def test_another_review_or_an_expired_cache_calls_klaviyo_again(make_app, fake_klaviyo):
    app = make_app(MODERATION_PASSWORD=PASSWORD, MODERATION_CACHE_SECONDS=0.2)
    get(app, "/moderation/reviews/rej-other")
    get(app, "/moderation/reviews/pending-anon")
    assert len(details(fake_klaviyo)) == 2
    time.sleep(0.25)
    get(app, "/moderation/reviews/rej-other")
    assert len(details(fake_klaviyo)) == 3


def test_the_list_overview_and_csv_make_no_call_and_a_detail_page_one_with_events(
        moderation, fake_klaviyo):
    for url in ["/moderation/?size=100", "/moderation/?status=pending&sort=rating",
                "/moderation/overview", "/moderation/reviews.csv?media=with"]:
        assert get(moderation, url).status_code == 200
    assert fake_klaviyo.received == []
    get(moderation, "/moderation/reviews/pub-unicode")
    [detail] = fake_klaviyo.received
    assert detail.path == "/api/reviews/pub-unicode" and detail.query == {"include": "events"}


def test_a_page_waits_its_turn_in_the_budget_submissions_share_or_says_it_is_busy(
        make_app, fake_klaviyo):
    app = make_app(MODERATION_PASSWORD=PASSWORD, SENDER_RATE_LIMITS="1/minute",
                   MODERATION_WAIT_SECONDS=0.2)
    assert get(app, "/moderation/reviews/rej-other").status_code == 200
    response = get(app, "/moderation/reviews/pending-anon")
    assert response.status_code == 503
    assert 40 <= int(response.headers["Retry-After"]) <= 60
    page = response.get_data(as_text=True)
    assert "Busy" in page and f"Try again in {response.headers['Retry-After']} seconds" in page
    assert len(details(fake_klaviyo)) == 1
    assert get(app, "/moderation/?status=pending").status_code == 200  # the list needs none


def test_a_429_from_klaviyo_pauses_the_sender_too(moderation, fake_klaviyo):
    fake_klaviyo.throttle(retry_after=7)
    response = get(moderation, "/moderation/reviews/rej-other")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    assert "Try again in 7 seconds" in response.get_data(as_text=True)
    assert moderation.extensions["pacer"].pause_remaining() > 5


# -- failures are pages, not 500s ---------------------------------------------------------
@pytest.mark.parametrize("setup,status,says", [
    (lambda fake: fake.fail_with(503), 503, "Klaviyo answered 503"),
    (lambda fake: fake.fail_with(500), 503, "Klaviyo is having trouble"),
    (lambda fake: fake.refuse(), 503, "Klaviyo cannot be reached"),
    (lambda fake: fake.hang(), 504, "Klaviyo did not answer in time"),
    (lambda fake: fake.fail_with(400), 502, "Klaviyo refused the request"),
], ids=["503", "500", "unreachable", "timeout", "400"])
def test_klaviyo_trouble_gives_a_clear_page_with_when_to_retry(
        make_app, fake_klaviyo, setup, status, says):
    app = make_app(MODERATION_PASSWORD=PASSWORD, KLAVIYO_READ_TIMEOUT=0.3)
    setup(fake_klaviyo)
    response = get(app, "/moderation/reviews/rej-other")
    page = response.get_data(as_text=True)
    assert response.status_code == status
    assert says in page
    if status != 502:
        assert "Try again in 30 seconds" in page
    if status == 503:  # Retry-After means something on a 503 (errors.py drops it elsewhere)
        assert response.headers["Retry-After"] == "30"


@pytest.mark.parametrize("key,says", [
    ("pk_test_revoked_key", "Klaviyo refused the private key"),
    (UNSCOPED_KEY, "reviews:read"),
], ids=["401-bad-key", "403-missing-scope"])
def test_a_refused_key_says_what_to_fix_without_asking_the_browser_to_log_in(
        make_app, key, says):
    response = get(make_app(MODERATION_PASSWORD=PASSWORD, KLAVIYO_PRIVATE_KEY=key),
                   "/moderation/reviews/pub-unicode")
    page = response.get_data(as_text=True)
    assert response.status_code == 502
    assert "WWW-Authenticate" not in response.headers
    assert says in page and "KLAVIYO_PRIVATE_KEY" in page
    assert key not in page


def test_without_a_private_key_the_list_says_what_it_lacks_and_a_review_how_to_set_one(
        make_app, fake_klaviyo):
    app = make_app(MODERATION_PASSWORD=PASSWORD, KLAVIYO_PRIVATE_KEY=None)
    sync(app)  # with the public key only: published and featured reviews, no emails
    listing = get(app, "/moderation/?size=100")
    page = listing.get_data(as_text=True)
    assert listing.status_code == 200
    assert "published and\n  featured reviews only, without emails" in page
    assert 'data-review-id="pub-unicode"' in page and 'data-review-id="rej-other"' not in page
    forget_calls(fake_klaviyo)
    response = get(app, "/moderation/reviews/pub-unicode")
    page = response.get_data(as_text=True)
    assert response.status_code == 503
    assert "KLAVIYO_PRIVATE_KEY" in page and "reviews:read" in page
    assert fake_klaviyo.received == []


# -- the private key stays private --------------------------------------------------------
def test_reads_carry_the_key_only_in_authorization_and_the_create_call_carries_none(
        moderation, fake_klaviyo):
    client = KlaviyoClient(moderation.config)
    client.list_reviews({"page[size]": "1"})
    client.create_review(json.dumps(review_body()).encode())
    client.close()
    read, create = fake_klaviyo.received
    assert read.headers["Authorization"] == f"Klaviyo-API-Key {KEY}"
    assert read.headers["Revision"] == "2026-07-15"
    assert read.headers["Accept"] == "application/vnd.api+json"
    assert KEY not in json.dumps(read.query)
    assert create.status == 202 and "Authorization" not in create.headers
    assert KEY not in repr(client)


def test_the_private_key_appears_in_no_response_body_header_or_log_line(
        moderation, fake_klaviyo, caplog):
    caplog.set_level(logging.DEBUG)
    fake_klaviyo.reads.echo_key_in_errors = True
    seen = []

    def visit(url, headers=MODERATOR):
        response = moderation.test_client().get(url, headers=headers)
        assert response.status_code < 500 or response.status_code in (502, 503, 504)
        seen.append(response)

    for url in ["/moderation/", "/moderation/?status=rejected&size=2",
                "/moderation/reviews/xss-payload", "/moderation/outbox",
                "/moderation/overview", "/moderation/reviews.csv",
                "/moderation/reviews/missing", "/moderation/?rating=0", "/moderation/nope"]:
        visit(url)
    visit("/moderation/", headers={})
    fake_klaviyo.fail_with(503)
    visit("/moderation/reviews/pending-anon")
    fake_klaviyo.throttle(retry_after=1)
    visit("/moderation/reviews/featured-store")
    fake_klaviyo.clear()
    fake_klaviyo.reads.keys.clear()  # Klaviyo refuses the key, and this fake echoes it back
    moderation.extensions["pacer"].reset()
    assert moderation.extensions["syncer"].sync_once().error  # the sync's error is shown
    visit("/moderation/overview")
    visit("/moderation/reviews/unpublished-3")
    assert "[private key]" in seen[-1].get_data(as_text=True)
    for response in seen:
        assert KEY not in response.get_data(as_text=True)
        assert all(KEY not in value for value in response.headers.values())
    assert caplog.records and all(KEY not in record.getMessage() for record in caplog.records)
    assert KEY not in caplog.text
