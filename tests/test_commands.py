"""`flask --app app outbox`: counts, dead rows, requeue, purge; and the scheduled purge."""

from __future__ import annotations

import json
import time
from datetime import timedelta

from sqlalchemy import update

from tests.reviews import review_body
from widget.delivery.outbox import submissions, utcnow


def put(app, count=1, **attributes):
    store = app.extensions["outbox"]
    return [store.put(json.dumps(review_body(**attributes)).encode()).id for _ in range(count)]


def deliver(app, ids, days_ago=0.0):
    store = app.extensions["outbox"]
    for review_id in ids:
        store.mark_delivered(review_id, 202)
    with store.engine.begin() as conn:
        conn.execute(update(submissions).where(submissions.c.id.in_(ids))
                     .values(delivered_at=utcnow() - timedelta(days=days_ago)))


def kill(app, ids, error="Invalid input."):
    for review_id in ids:
        app.extensions["outbox"].mark_dead(review_id, status=400, error=error)


def run(app, *args):
    result = app.test_cli_runner().invoke(args=["outbox", *args])
    return result


def test_counts_shows_every_state(app):
    deliver(app, put(app, 2))
    kill(app, put(app, 1))
    put(app, 3)
    result = run(app, "counts")
    assert result.exit_code == 0
    lines = dict(line.split() for line in result.output.splitlines())
    assert lines == {"queued": "3", "sending": "0", "delivered": "2", "dead": "1"}


def test_dead_lists_ids_and_reasons_but_never_the_review(app):
    [dead] = put(app, 1, content="Secret text", email="zed@example.com")
    kill(app, [dead], error="rating: must be 1 to 5")
    result = run(app, "dead")
    assert result.exit_code == 0
    assert dead in result.output
    assert "status=400" in result.output and "error=rating: must be 1 to 5" in result.output
    assert "Secret text" not in result.output and "zed@example.com" not in result.output


def test_requeue_sends_a_dead_row_again_with_a_fresh_age_limit(make_app, fake_klaviyo):
    app = make_app(SENDER_MAX_AGE_HOURS=1)
    [old, other] = put(app, 2)
    kill(app, [old, other], error="not delivered within 1 hours")
    store = app.extensions["outbox"]
    with store.engine.begin() as conn:  # accepted two hours ago: over the age limit
        conn.execute(update(submissions).values(created_at=utcnow() - timedelta(hours=2)))
    result = run(app, "requeue", old, "no-such-id")
    assert result.exit_code == 0
    assert "requeued 1 dead row(s)" in result.output
    assert store.get(old).state == "queued" and store.get(other).state == "dead"
    app.extensions["sender"].start()
    deadline = time.monotonic() + 5
    while store.get(old).state != "delivered" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.get(old).state == "delivered"
    assert len(fake_klaviyo.reviews()) == 1


def test_requeue_all_or_by_id_but_not_neither(app):
    kill(app, put(app, 3))
    assert run(app, "requeue").exit_code != 0
    assert "requeued 3 dead row(s)" in run(app, "requeue", "--all").output
    assert app.extensions["outbox"].counts()["dead"] == 0


def test_purge_deletes_only_delivered_rows_older_than_n_days(app):
    old, recent = put(app, 2), put(app, 2)
    deliver(app, old, days_ago=10)
    deliver(app, recent, days_ago=1)
    waiting = put(app, 1)
    kill(app, put(app, 1))
    with app.extensions["outbox"].engine.begin() as conn:  # a queued row, accepted long ago
        conn.execute(update(submissions).where(submissions.c.id.in_(waiting))
                     .values(created_at=utcnow() - timedelta(days=30)))
    result = run(app, "purge", "--older-than-days", "7")
    assert result.exit_code == 0
    assert "purged 2 delivered row(s) older than 7 days" in result.output
    store = app.extensions["outbox"]
    assert [store.get(i) for i in old] == [None, None]
    assert store.counts() == {"queued": 1, "sending": 0, "delivered": 2, "dead": 1}


def test_purge_defaults_to_the_configured_days(make_app):
    app = make_app(OUTBOX_PURGE_DELIVERED_DAYS=0.5)
    deliver(app, put(app, 1), days_ago=1)
    deliver(app, put(app, 1), days_ago=0.1)
    assert "purged 1 delivered row(s) older than 0.5 days" in run(app, "purge").output


def test_the_sender_purges_old_delivered_rows_on_its_own(make_app):
    app = make_app(OUTBOX_PURGE_DELIVERED_DAYS=7)
    old, recent = put(app, 1), put(app, 1)
    deliver(app, old, days_ago=8)
    deliver(app, recent, days_ago=6)
    app.extensions["sender"].start()
    store = app.extensions["outbox"]
    deadline = time.monotonic() + 5
    while store.counts()["delivered"] > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.get(old[0]) is None and store.get(recent[0]) is not None


def test_the_scheduled_purge_can_be_turned_off(make_app):
    app = make_app(OUTBOX_PURGE_DELIVERED_DAYS=0)
    deliver(app, put(app, 1), days_ago=400)
    sender = app.extensions["sender"]
    sender.step(None)  # nothing due: the step only does its housekeeping
    assert app.extensions["outbox"].counts()["delivered"] == 1
