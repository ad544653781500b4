"""Effectively once: a send whose answer was lost is looked up in Klaviyo before it is sent
again; an outcome the database could not take at first is written again, not sent again."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
import requests

from tests.delivery.test_sender import wait_until
from tests.fake_klaviyo_fixtures import review
from tests.moderation.test_views import MODERATOR, PASSWORD
from tests.reviews import review_body
from tests.services import TcpProxy, postgres_database
from widget.delivery import reconcile
from widget.delivery.outbox import Submission, utcnow


def submit(app, **fields):
    response = app.test_client().post("/client/reviews", json=review_body(**fields))
    assert response.status_code == 202
    return response.get_json()["data"]["id"]


def row(app, review_id):
    return app.extensions["outbox"].get(review_id)


def delivered(app, review_id, timeout=15.0):
    return wait_until(lambda: row(app, review_id).state == "delivered", timeout)


def creates(fake):
    return fake.requests("/client/reviews")


def lookups(fake):
    return fake.requests("/api/reviews")


@pytest.fixture
def unanswered_app(make_app):
    """A sender whose reads time out fast and that looks an unanswered send up every second."""
    def build(**overrides):
        return make_app(**{"WIDGET_SENDER": "thread", "KLAVIYO_READ_TIMEOUT": 0.3,
                           "SENDER_RECONCILE_SECONDS": 8, **overrides})
    return build


def test_a_send_klaviyo_created_but_answered_too_late_is_found_not_sent_again(
        unanswered_app, fake_klaviyo):
    fake_klaviyo.answer_late(1.0, create=True, count=1)
    app = unanswered_app()
    review_id = submit(app, content="Answered too late, but created.")
    assert delivered(app, review_id)
    [created] = fake_klaviyo.created
    found = row(app, review_id)
    assert (found.klaviyo_review_id, found.possible_duplicate) == (created["id"], False)
    assert len(fake_klaviyo.reviews()) == 1 and len(creates(fake_klaviyo)) == 1
    [lookup] = lookups(fake_klaviyo)
    assert 'contains(content,"Answered too late")' in lookup.query["filter"]
    assert lookup.headers["Authorization"] == "Klaviyo-API-Key pk_test_private_key_never_shown"
    # The lookup took a slot like any call: the pacer granted exactly what Klaviyo saw.
    assert app.extensions["pacer"].budget.read()["seq"] == len(fake_klaviyo.requests())


def test_a_review_klaviyo_creates_late_is_found_by_a_later_lookup(unanswered_app,
                                                                  fake_klaviyo):
    fake_klaviyo.create_delay(2.5)  # Klaviyo creates asynchronously
    fake_klaviyo.answer_late(1.0, create=True, count=1)
    app = unanswered_app()
    review_id = submit(app)
    assert delivered(app, review_id)
    assert len(lookups(fake_klaviyo)) >= 2
    assert len(creates(fake_klaviyo)) == 1
    assert row(app, review_id).klaviyo_review_id == fake_klaviyo.created[0]["id"]


def test_a_send_lost_before_klaviyo_created_it_is_sent_again_after_the_reconcile_time(
        unanswered_app, fake_klaviyo):
    fake_klaviyo.answer_late(1.0, create=False, count=1)
    app = unanswered_app(SENDER_RECONCILE_SECONDS=3)
    review_id = submit(app)
    assert delivered(app, review_id)
    first, second = creates(fake_klaviyo)
    assert second.at - first.at >= 3.0
    assert len(lookups(fake_klaviyo)) >= 2  # looked for again until the time had passed
    assert [lookup.at < second.at for lookup in lookups(fake_klaviyo)] == \
        [True] * len(lookups(fake_klaviyo))
    assert len(fake_klaviyo.reviews()) == 1
    # Sent again without having been found: it is flagged, in case Klaviyo was only slow.
    assert row(app, review_id).possible_duplicate


def test_a_send_of_a_sender_killed_mid_send_is_looked_up_not_sent_twice(make_app,
                                                                        fake_klaviyo):
    app = make_app(SENDER_RECLAIM_SECONDS=0.2, SENDER_RECONCILE_SECONDS=8)
    review_id = submit(app, content="Sent by a sender that was killed.")
    claimed = app.extensions["outbox"].claim_due()  # a sender took it, sent it, and died
    requests.post(f"{fake_klaviyo.url}/client/reviews", params={"company_id": "PUBKEY"},
                  data=claimed.body.encode(), timeout=5,
                  headers={"revision": "2026-07-15", "Content-Type": "application/vnd.api+json"})
    app.extensions["sender"].start()
    assert delivered(app, review_id)
    assert len(creates(fake_klaviyo)) == 1
    assert row(app, review_id).klaviyo_review_id == fake_klaviyo.created[0]["id"]


def test_two_alike_unanswered_sends_are_matched_to_two_different_reviews(unanswered_app,
                                                                          fake_klaviyo):
    fake_klaviyo.answer_late(1.0, create=True, count=2)
    app = unanswered_app()
    store = app.extensions["outbox"]
    body = json.dumps(review_body(content="Twice the same words")).encode()
    ids = [store.put(body).id, store.put(body).id]  # stored without the repeat rule
    app.extensions["sender"].notify()
    assert all(delivered(app, review_id) for review_id in ids)
    assert {row(app, i).klaviyo_review_id for i in ids} == {r["id"] for r in fake_klaviyo.created}
    assert len(creates(fake_klaviyo)) == 2


def test_a_lookup_the_key_may_not_make_falls_back_to_sending_again_flagged(
        unanswered_app, fake_klaviyo, caplog):
    caplog.set_level(logging.ERROR, logger="widget.delivery.sender")
    fake_klaviyo.answer_late(1.0, create=True, count=1)
    app = unanswered_app(KLAVIYO_PRIVATE_KEY="pk_test_key_without_reviews_read")
    review_id = submit(app)
    assert delivered(app, review_id)
    assert row(app, review_id).possible_duplicate
    assert len(creates(fake_klaviyo)) == 2  # at least once, and it says so
    assert "cannot look up submission" in caplog.text
    assert "pk_test_key_without_reviews_read" not in caplog.text


def test_the_outbox_page_links_a_submission_found_in_klaviyo_to_its_review(unanswered_app,
                                                                          fake_klaviyo):
    fake_klaviyo.answer_late(1.0, create=True, count=1)
    app = unanswered_app(MODERATION_PASSWORD=PASSWORD)
    review_id = submit(app)
    assert delivered(app, review_id)
    klaviyo_id = fake_klaviyo.created[0]["id"]
    page = app.test_client().get("/moderation/outbox", headers=MODERATOR).get_data(as_text=True)
    assert f'href="/moderation/reviews/{klaviyo_id}"' in page
    assert review_id in page


def test_an_outcome_the_database_fails_to_take_is_written_again_not_sent_again(
        make_app, fake_klaviyo):
    with postgres_database() as url:
        parts = urlsplit(url)
        proxy = TcpProxy(parts.hostname, parts.port)
        try:
            app = make_app(DATABASE_URL=url.replace(f":{parts.port}/", f":{proxy.port}/"),
                           WIDGET_SENDER="thread")
            restored = threading.Event()

            def break_the_database(_review):  # Klaviyo has created it; we have not noted it
                proxy.cut()
                threading.Timer(1.5, lambda: (proxy.restore(), restored.set())).start()
            fake_klaviyo.on_create = break_the_database
            review_id = submit(app)
            assert restored.wait(10)
            assert delivered(app, review_id, timeout=20)
            assert len(creates(fake_klaviyo)) == 1
            assert row(app, review_id).attempts == 1
            app.extensions["sender"].stop()
            app.extensions["outbox"].engine.dispose()
        finally:
            proxy.close()


# -- the lookup's pieces ------------------------------------------------------------------
def test_a_snippet_is_the_longest_run_of_plain_characters():
    assert reconcile.snippet('Great "fit", (really) good for hiking trips') == \
        "good for hiking trips"
    assert reconcile.snippet("Très bien 很好 — vraiment") == "Très bien 很好"
    assert reconcile.snippet('"",()') == ""


def test_the_lookup_filter_is_one_klaviyo_accepts_and_asks_from_before_the_first_send():
    body = review_body(content='He said "wow", twice', rating=5)
    submission = Submission("id", json.dumps(body), "queued", 1, utcnow(), False,
                            first_sent_at=datetime(2026, 12, 1, 19, 30, 0, 123456))
    params = reconcile.lookup_params(submission)
    assert params["filter"] == (
        'and(greater-or-equal(created,2026-12-01T19:25:00+00:00),equals(status,"all"),'
        'contains(content,"He said"),equals(rating,5),'
        'equals(item.id,"$shopify:::$default:::7549950034135"))'
    )
    assert (params["sort"], params["page[size]"]) == ("created", "100")
    question = review_body(review_type="question", rating=None, product=..., content="Big?")
    params = reconcile.lookup_params(Submission("q", json.dumps(question), "queued", 1,
                                                datetime(2026, 12, 1, 19, 30), False))
    assert params["filter"] == ('and(greater-or-equal(created,2026-12-01T19:25:00+00:00),'
                                'equals(status,"all"),contains(content,"Big?"))')


def test_a_review_matches_on_email_product_rating_and_title_only():
    attributes = review_body(title="Soft")["data"]["attributes"]
    theirs = {"attributes": {"email": attributes["email"].upper(), "rating": attributes["rating"],
                             "title": "Soft", "product": {"external_id":
                                                          attributes["product"]["external_id"]}}}
    assert reconcile.same_review(theirs, attributes)
    theirs["attributes"]["title"] = "Hard"
    assert not reconcile.same_review(theirs, attributes)


def test_a_lookup_reads_at_most_five_pages_of_candidates_a_round(unanswered_app,
                                                                 fake_klaviyo):
    now = datetime.now(UTC).isoformat()
    fake_klaviyo.reads.reviews = [  # alike, but from other shoppers: candidates, no match
        review(f"alike-{n}", 0, rating=5, title="Great fit", content="Same words again",
               email=f"other{n}@example.com", created=now, updated=now)
        for n in range(700)]
    fake_klaviyo.answer_late(1.0, create=False, count=1)
    app = unanswered_app()
    submit(app, content="Same words again")
    assert wait_until(lambda: len(lookups(fake_klaviyo)) >= 6, timeout=20)
    rounds = [n for n, r in enumerate(lookups(fake_klaviyo)) if "page[cursor]" not in r.query]
    assert rounds[:2] == [0, 5]  # a second round began after five pages, of seven
