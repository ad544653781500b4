"""Webhooks: signed events to a real receiver on loopback, written with the change they
report, sent beside the sender, never with an email or a key, never in a request's way."""

from __future__ import annotations

import json
import socket
import time
from datetime import timedelta

from sqlalchemy import func, select, update

from tests.delivery.test_sender import wait_until
from tests.ops import sample, scrape, signed_by
from tests.ops.conftest import SECRET
from tests.reviews import review_body
from tests.services import postgres_database
from widget.delivery.events import webhook_events
from widget.delivery.outbox import submissions, utcnow
from widget.ops.webhooks import signature, slack_text

EMAIL = "ann.secret@example.com"


def types(events):
    return [event["type"] for event in events]


def post(client, **attributes):
    response = client.post("/client/reviews", json=review_body(email=EMAIL, **attributes))
    assert response.status_code == 202
    return response.get_json()["data"]["id"]


def stored_events(app):
    with app.extensions["outbox"].engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(webhook_events)).scalar_one()


def test_an_accepted_and_delivered_review_is_announced_signed_and_without_its_email(
        make_notifying_app, receiver, fake_klaviyo):
    app = make_notifying_app()
    submission = post(app.test_client(), content=f"Great. Write to me at {EMAIL} !", rating=4)
    events = receiver.wait_for(lambda got: len(got) >= 2)
    assert types(events) == ["review.accepted", "review.delivered"]
    for headers, body in receiver.received:
        assert signed_by(SECRET, headers, body)
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Widget-Event"] in body.decode()
        assert EMAIL not in body.decode() and "ann.secret" not in body.decode()
        assert "PUBKEY" not in body.decode() and "pk_test" not in body.decode()
    accepted, delivered = events
    assert accepted["id"] == delivered["id"] == submission
    assert accepted["rating"] == 4 and accepted["review_type"] == "review"
    assert accepted["product"] == {"external_id": "7549950034135", "integration_key": "shopify"}
    assert accepted["excerpt"] == "Great. Write to me at [email] !"
    assert accepted["time"].endswith("Z") and "author" not in accepted
    assert fake_klaviyo.reviews()[0]["data"]["attributes"]["email"] == EMAIL
    assert wait_until(lambda: stored_events(app) == 0)  # sent events are not kept


def test_on_postgres_two_processes_send_each_event_once(make_notifying_app, receiver):
    with postgres_database() as url:
        apps = [make_notifying_app(DATABASE_URL=url) for _ in range(2)]  # two loops, one queue
        try:
            ids = [post(apps[0].test_client(), content=f"On Postgres {i}.") for i in range(3)]
            events = receiver.wait_for(lambda got: len(got) >= 6)
            time.sleep(0.3)  # a second copy would come now
            events = receiver.events()
            assert sorted(types(events)) == ["review.accepted"] * 3 + ["review.delivered"] * 3
            assert sorted(event["id"] for event in events) == sorted(ids * 2)
            assert sample(scrape(apps[1].test_client().get), "widget_deliveries",
                          "widget_deliveries_total", outcome="delivered") == 3
        finally:
            for app in apps:
                app.extensions["notifier"].stop()
                app.extensions["sender"].stop()
                app.extensions["outbox"].engine.dispose()


def test_a_review_klaviyo_refuses_is_announced_dead_with_klaviyos_reason(
        make_notifying_app, receiver, fake_klaviyo):
    fake_klaviyo.fail_with(400, count=1)
    app = make_notifying_app()
    post(app.test_client())
    events = receiver.wait_for(lambda got: "review.dead" in types(got))
    [dead] = [event for event in events if event["type"] == "review.dead"]
    assert dead["reason"] == "the fake was told to answer 400" and dead["status"] == 400
    assert "review.delivered" not in types(events)


def test_a_long_review_is_cut_to_a_short_excerpt_at_a_word():
    from widget.delivery.events import EXCERPT_CHARACTERS, excerpt

    text = excerpt("word " * 100)
    assert len(text) <= EXCERPT_CHARACTERS + 1 and text.endswith("word…")
    assert excerpt("  two\n\tlines ") == "two lines"


def test_a_replayed_or_repeated_review_announces_nothing_new(make_app, receiver):
    app = make_app(WIDGET_WEBHOOK_URL=receiver.url, WIDGET_WEBHOOK_SECRET=SECRET)
    client = app.test_client()
    body = review_body()
    first = client.post("/client/reviews", json=body, headers={"Idempotency-Key": "k1"})
    again = client.post("/client/reviews", json=body, headers={"Idempotency-Key": "k1"})
    repeat = client.post("/client/reviews", json=body)
    assert (first.status_code, again.status_code, repeat.status_code) == (202, 202, 202)
    assert stored_events(app) == 1  # waiting: neither the sender nor its loop runs here


def test_a_receiver_that_hangs_slows_no_submission_and_no_delivery(make_notifying_app):
    hanging = socket.create_server(("127.0.0.1", 0))  # connections wait, never answered
    app = make_notifying_app(WIDGET_WEBHOOK_URL=f"http://127.0.0.1:{hanging.getsockname()[1]}/")
    client = app.test_client()
    try:
        started = time.monotonic()
        for i in range(5):
            post(client, content=f"Review {i}")
        assert time.monotonic() - started < 2.0
        assert wait_until(lambda: app.extensions["outbox"].counts()["delivered"] == 5,
                          timeout=3.0)  # within the webhook's 5 s read timeout
        assert sample(scrape(client.get), "widget_webhook_backlog") == 10
        assert _attempts(app) == 1  # its first event is still on its way
    finally:
        hanging.close()  # the waiting connection is reset: the loop can stop


def test_a_receiver_that_is_down_is_tried_again_with_backoff(make_notifying_app):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    app = make_notifying_app(WIDGET_WEBHOOK_URL=f"http://127.0.0.1:{closed.getsockname()[1]}/")
    try:
        post(app.test_client())
        assert wait_until(lambda: _attempts(app) >= 3)
        body = app.test_client().get("/readyz").get_json()
        assert body["status"] == "ready" and body["webhooks"]["backlog"] == 2
    finally:
        closed.close()


def _attempts(app):
    with app.extensions["outbox"].engine.connect() as conn:
        return conn.execute(select(func.max(webhook_events.c.attempts))).scalar() or 0


def test_events_a_receiver_refused_are_sent_again_in_order(make_notifying_app, receiver):
    receiver.fail(2, status=500)
    app = make_notifying_app()
    submission = post(app.test_client())
    events = receiver.wait_for(lambda got: len(got) >= 2)
    assert types(events) == ["review.accepted", "review.delivered"]
    assert {event["id"] for event in events} == {submission}
    assert receiver.answered[:2] == [500, 500]


def test_a_stuck_queue_is_announced_once_per_episode(make_notifying_app, receiver):
    app = make_notifying_app(KLAVIYO_PUBLIC_KEY=None, WIDGET_STUCK_MINUTES=1)
    client = app.test_client()
    notifier = app.extensions["notifier"]
    first = post(client, content="Waiting for a key.")
    post(client, content="Waiting too.")
    engine = app.extensions["outbox"].engine

    def age_all(minutes):
        with engine.begin() as conn:
            conn.execute(update(submissions)
                         .values(created_at=utcnow() - timedelta(minutes=minutes)))

    def check():
        notifier._last_stuck_check = -1e9  # the next step looks now
        notifier.wake.set()

    age_all(2)
    check()
    events = receiver.wait_for(lambda got: "queue.stuck" in types(got))
    [stuck] = [event for event in events if event["type"] == "queue.stuck"]
    assert stuck["id"] == first and stuck["waiting"] == 2
    assert 110 <= stuck["oldest_queued_seconds"] <= 150 and stuck["stuck_minutes"] == 1
    for _ in range(3):  # still stuck: no second event
        check()
        time.sleep(0.1)
    age_all(0)  # the episode ends
    check()
    time.sleep(0.2)
    age_all(5)  # and another begins
    check()
    events = receiver.wait_for(lambda got: types(got).count("queue.stuck") >= 2, timeout=5)
    assert types(events).count("queue.stuck") == 2
    assert all(signed_by(SECRET, h, b) for h, b in receiver.received)


def test_the_slack_format_sends_one_text_and_nothing_else(make_notifying_app, receiver):
    app = make_notifying_app(WIDGET_WEBHOOK_FORMAT="slack")
    post(app.test_client(), content="Fits <well> & washes fine", rating=5)
    events = receiver.wait_for(lambda got: len(got) >= 2)
    assert [list(event) for event in events] == [["text"], ["text"]]
    assert events[0]["text"].startswith("New review ★★★★★ (review on shopify product")
    assert "Fits &lt;well&gt; &amp; washes fine" in events[0]["text"]
    assert events[1]["text"].startswith("Review delivered to Klaviyo")
    assert EMAIL not in json.dumps(events)


def test_the_signature_is_the_hmac_sha256_of_the_exact_body():
    # RFC 4231, test case 2.
    assert signature("Jefe", b"what do ya want for nothing?") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    assert signature("Jefe", b"what do ya want for nothing? ") != signature(
        "Jefe", b"what do ya want for nothing?")


def test_slack_text_names_a_dead_reviews_reason():
    text = slack_text({"type": "review.dead", "id": "abc", "rating": None,
                       "review_type": "question", "product": None, "excerpt": "Is it warm?",
                       "reason": "content is required"})
    assert text == ("Review not delivered (question): “Is it warm?” Reason: content is "
                    "required (submission abc)")
