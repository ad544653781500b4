"""The sender delivers every accepted review, paced, through Klaviyo's failures."""

from __future__ import annotations

import json
import logging
import time

import pytest

from tests.reviews import review_body


def submit_many(app, count):
    client = app.test_client()
    ids = []
    for i in range(count):
        response = client.post("/client/reviews", json=review_body(content=f"Review {i}"))
        assert response.status_code == 202
        ids.append(response.get_json()["data"]["id"])
    return ids


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def states(app, ids):
    outbox = app.extensions["outbox"]
    return [outbox.get(i).state for i in ids]


def delivered(app, ids):
    return wait_until(lambda: states(app, ids) == ["delivered"] * len(ids))


def test_reviews_accepted_while_klaviyo_answers_503_all_arrive_after_it_recovers(
        make_app, fake_klaviyo):
    fake_klaviyo.fail_with(503)
    app = make_app(WIDGET_SENDER="thread")
    ids = submit_many(app, 5)
    assert wait_until(lambda: len(fake_klaviyo.requests()) >= 8)
    assert fake_klaviyo.reviews() == []
    fake_klaviyo.clear()
    assert delivered(app, ids)
    contents = sorted(r["data"]["attributes"]["content"] for r in fake_klaviyo.reviews())
    assert contents == sorted(f"Review {i}" for i in range(5))
    assert all(app.extensions["outbox"].get(i).attempts >= 2 for i in ids)


def test_refused_connections_are_retried_until_klaviyo_is_back(make_app, fake_klaviyo):
    fake_klaviyo.refuse()
    app = make_app(WIDGET_SENDER="thread")
    [review_id] = submit_many(app, 1)
    assert wait_until(lambda: app.extensions["outbox"].get(review_id).attempts >= 2)
    row = app.extensions["outbox"].get(review_id)
    assert (row.state, row.possible_duplicate) in {("queued", False), ("sending", False)}
    fake_klaviyo.accept()
    assert delivered(app, [review_id])


def test_429_pauses_all_sending_for_retry_after(make_app, fake_klaviyo):
    fake_klaviyo.throttle(retry_after=1, count=1)
    app = make_app(WIDGET_SENDER="thread")
    ids = submit_many(app, 3)
    assert delivered(app, ids)
    requests = fake_klaviyo.requests("/client/reviews")
    assert [r.status for r in requests] == [429, 202, 202, 202]
    assert requests[1].at - requests[0].at >= 1.0
    assert fake_klaviyo.during_pause == []
    assert app.extensions["outbox"].get(ids[0]).attempts == 1  # a 429 is not the row's fault


def test_without_the_private_key_a_read_timeout_is_sent_again_and_flagged(make_app,
                                                                         fake_klaviyo):
    fake_klaviyo.slow(1.0)
    app = make_app(WIDGET_SENDER="thread", KLAVIYO_READ_TIMEOUT=0.3, KLAVIYO_PRIVATE_KEY=None)
    [review_id] = submit_many(app, 1)
    assert wait_until(lambda: app.extensions["outbox"].get(review_id).possible_duplicate)
    fake_klaviyo.clear()
    assert delivered(app, [review_id])
    assert app.extensions["outbox"].get(review_id).possible_duplicate


def test_klaviyo_refusing_a_review_makes_it_dead_with_klaviyos_reason(make_app, fake_klaviyo):
    fake_klaviyo.fail_with(400, count=1)
    app = make_app(WIDGET_SENDER="thread")
    [review_id] = submit_many(app, 1)
    assert wait_until(lambda: states(app, [review_id]) == ["dead"])
    [row] = app.extensions["outbox"].rows(("dead",))
    assert (row["last_status"], row["last_error"]) == (400, "the fake was told to answer 400")
    assert len(fake_klaviyo.requests()) == 1


def test_a_review_older_than_the_maximum_age_is_given_up(make_app, fake_klaviyo):
    app = make_app(WIDGET_SENDER="thread", SENDER_MAX_AGE_HOURS=1e-9)
    [review_id] = submit_many(app, 1)
    assert wait_until(lambda: states(app, [review_id]) == ["dead"])
    assert "not delivered within" in app.extensions["outbox"].rows(("dead",))[0]["last_error"]
    assert fake_klaviyo.requests() == []


def test_without_a_public_key_reviews_wait_and_the_log_says_why(make_app, fake_klaviyo, caplog):
    caplog.set_level(logging.WARNING, logger="widget.delivery.sender")
    app = make_app(KLAVIYO_PUBLIC_KEY=None)
    ids = submit_many(app, 2)
    app.extensions["sender"].start()
    assert wait_until(lambda: "KLAVIYO_PUBLIC_KEY is not set" in caplog.text)
    assert "2 submissions wait" in caplog.text
    assert states(app, ids) == ["queued", "queued"]
    assert fake_klaviyo.requests() == []


def test_without_the_private_key_rows_of_a_sender_that_died_are_sent_again_flagged(
        make_app, fake_klaviyo):
    app = make_app(SENDER_RECLAIM_SECONDS=0.2, KLAVIYO_PRIVATE_KEY=None)
    [review_id] = submit_many(app, 1)
    app.extensions["outbox"].claim_due()  # a sender took it, then vanished
    app.extensions["sender"].start()
    assert delivered(app, [review_id])
    assert app.extensions["outbox"].get(review_id).possible_duplicate


def test_idle_sender_picks_up_a_new_review_in_well_under_a_second(make_app, fake_klaviyo):
    app = make_app(WIDGET_SENDER="thread", SENDER_POLL_SECONDS=0.25)
    time.sleep(0.3)  # let it go idle
    started = time.monotonic()
    submit_many(app, 1)
    fake_klaviyo.wait_for_reviews(1, timeout=2)
    assert fake_klaviyo.requests()[0].at - time.time() + time.monotonic() - started < 0.25


def test_sender_log_lines_never_hold_the_body_or_the_email(make_app, fake_klaviyo, caplog):
    caplog.set_level(logging.INFO, logger="widget.delivery.sender")
    app = make_app(WIDGET_SENDER="thread")
    ids = submit_many(app, 1)
    assert delivered(app, ids)
    lines = [r.getMessage() for r in caplog.records if r.name == "widget.delivery.sender"]
    assert any(f"send id={ids[0]} attempt=1 outcome=delivered status=202" in line
               for line in lines)
    assert not any("ann@example.com" in line or "Review 0" in line for line in lines)


@pytest.mark.slow
def test_a_hundred_submissions_at_once_never_exceed_eight_a_second(make_app, fake_klaviyo):
    app = make_app(WIDGET_SENDER="thread")
    ids = submit_many(app, 100)
    assert wait_until(lambda: len(fake_klaviyo.reviews()) == 100, timeout=40)
    assert delivered(app, ids)
    assert fake_klaviyo.peak(1) <= 8
    assert [r.status for r in fake_klaviyo.requests()].count(429) == 0
    bodies = [json.dumps(r, sort_keys=True) for r in fake_klaviyo.reviews()]
    assert len(set(bodies)) == 100
