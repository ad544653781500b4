"""The outbox on the real Postgres: safe claims by several senders, reclaim (its schema's
upgrades: tests/delivery/test_migrations.py)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, text

from tests.services import postgres_database
from widget.delivery.outbox import Outbox, connect, engine_url


@pytest.fixture
def database_url():
    with postgres_database() as url:
        yield url


@pytest.fixture
def outboxes(database_url):
    """Two outboxes on one database, each with its own engine: two processes."""
    stores = [Outbox(connect(database_url)) for _ in range(2)]
    yield stores
    for store in stores:
        store.engine.dispose()


def test_postgres_outbox_keeps_what_it_is_given(outboxes):
    first, second = outboxes
    submission = first.put(b'{"data": 1}', "key-1", "digest")
    row = second.get(submission.id)
    assert (row.state, row.body, row.attempts) == ("queued", '{"data": 1}', 0)
    assert second.find_replay("key-1", "digest").id == submission.id


def test_two_senders_on_postgres_never_claim_the_same_row(outboxes):
    first, second = outboxes
    ids = {first.put(str(i).encode()).id for i in range(200)}
    claimed: list[str] = []
    lock = threading.Lock()

    def sender(store):
        while (row := store.claim_due()) is not None:
            with lock:
                claimed.append(row.id)
            store.mark_delivered(row.id, 202)

    threads = [threading.Thread(target=sender, args=(store,)) for store in outboxes * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claimed) == len(set(claimed)) == 200
    assert set(claimed) == ids
    assert first.counts()["delivered"] == 200


def test_a_claim_skips_rows_another_transaction_has_locked(outboxes, database_url):
    first, _ = outboxes
    locked, free = first.put(b"1").id, first.put(b"2").id
    holder = create_engine(engine_url(database_url))
    with holder.connect() as conn:  # another sender mid-claim holds the oldest row
        conn.execute(text("SELECT id FROM submissions WHERE id = :id FOR UPDATE"),
                     {"id": locked})
        assert first.claim_due().id == free
        assert first.claim_due() is None
        conn.rollback()
    holder.dispose()
    assert first.claim_due().id == locked


def test_rows_of_a_dead_sender_are_reclaimed_on_postgres(outboxes):
    first, second = outboxes
    submission = first.put(b"1")
    first.claim_due()  # then the process died
    assert second.reclaim_stale(timedelta(seconds=-1)) == 1
    again = second.claim_due()
    assert (again.id, again.attempts) == (submission.id, 2)
    assert again.unknown_since is not None and again.first_sent_at <= again.unknown_since
