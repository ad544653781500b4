"""The outbox keeps every submission until it is delivered or given up."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from datetime import timedelta

import pytest

from widget.delivery.outbox import (
    IdempotencyConflict,
    Outbox,
    RepeatConflict,
    connect,
    engine_url,
    utcnow,
)


@pytest.fixture
def outbox(tmp_path):
    store = Outbox(connect(f"sqlite:///{tmp_path / 'outbox.db'}"))
    yield store
    store.engine.dispose()


def test_put_commits_a_queued_row_that_survives_a_new_connection(tmp_path, outbox):
    submission = outbox.put(b'{"data": 1}')
    reopened = Outbox(connect(f"sqlite:///{tmp_path / 'outbox.db'}"))
    row = reopened.get(submission.id)
    assert (row.state, row.body, row.attempts) == ("queued", '{"data": 1}', 0)
    reopened.engine.dispose()


def test_submission_ids_are_uuids_in_the_order_they_were_stored(outbox):
    """Time-ordered keys (UUIDv7) append to the primary key's index rather than dirtying a
    random page of it per row: a commit writes fewer pages."""
    ids = [outbox.put(f'{{"n": {n}}}'.encode()).id for n in range(50)]
    assert all(uuid.UUID(id_).version == 7 and str(uuid.UUID(id_)) == id_ for id_ in ids)
    assert sorted(ids) == ids and len(set(ids)) == 50


def test_sqlite_outbox_uses_wal_and_full_sync(outbox):
    with outbox.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2


def test_claim_takes_the_oldest_due_row_once(outbox):
    first = outbox.put(b"1")
    second = outbox.put(b"2")
    claimed = outbox.claim_due()
    assert (claimed.id, claimed.state, claimed.attempts) == (first.id, "sending", 1)
    assert outbox.claim_due().id == second.id
    assert outbox.claim_due() is None


def test_rows_not_yet_due_are_not_claimed(outbox):
    submission = outbox.put(b"1")
    outbox.claim_due()
    outbox.retry_at(submission.id, utcnow() + timedelta(minutes=5), status=503, error="down")
    assert outbox.claim_due() is None
    assert outbox.next_due_at() > utcnow()


def test_concurrent_claims_never_hand_out_a_row_twice(outbox):
    ids = {outbox.put(str(i).encode()).id for i in range(60)}
    claimed: list[str] = []
    lock = threading.Lock()

    def worker():
        while (row := outbox.claim_due()) is not None:
            with lock:
                claimed.append(row.id)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(ids)


def test_rows_left_sending_by_a_dead_sender_are_reclaimed_with_their_outcome_unknown(outbox):
    submission = outbox.put(b"1")
    claimed = outbox.claim_due()
    assert outbox.reclaim_stale(timedelta(minutes=1)) == 0
    assert outbox.reclaim_stale(timedelta(seconds=-1)) == 1
    row = outbox.get(submission.id)
    assert (row.state, row.possible_duplicate) == ("queued", False)
    assert row.unknown_since is not None and row.unknown_since >= claimed.created_at
    assert row.first_sent_at is not None


def test_a_row_sent_again_after_an_unknown_outcome_is_flagged(outbox):
    submission = outbox.put(b"1")
    outbox.claim_due()
    outbox.reclaim_stale(timedelta(seconds=-1))
    outbox.mark_resend(submission.id)
    row = outbox.get(submission.id)
    assert (row.possible_duplicate, row.unknown_since) == (True, None)


def test_a_row_found_in_klaviyo_is_delivered_with_klaviyos_id(outbox):
    first, second = outbox.put(b"1"), outbox.put(b"2")
    outbox.claim_due()
    outbox.mark_delivered(first.id, None, klaviyo_review_id="rev-1", note="found")
    row = outbox.get(first.id)
    assert (row.state, row.klaviyo_review_id, row.unknown_since) == ("delivered", "rev-1", None)
    assert outbox.klaviyo_ids_taken(["rev-1", "rev-2"], but=second.id) == {"rev-1"}
    assert outbox.klaviyo_ids_taken(["rev-1"], but=first.id) == set()


def test_outcomes_are_recorded(outbox):
    delivered, dead = outbox.put(b"1"), outbox.put(b"2")
    outbox.claim_due(), outbox.claim_due()
    outbox.mark_delivered(delivered.id, 202)
    outbox.mark_dead(dead.id, status=400, error="Invalid input.")
    assert outbox.counts() == {"queued": 0, "sending": 0, "delivered": 1, "dead": 1}
    [row] = outbox.rows(("dead",))
    assert (row["last_status"], row["last_error"]) == (400, "Invalid input.")
    assert "body" not in row


def test_idempotency_key_finds_the_first_submission_and_refuses_another_body(outbox):
    first = outbox.put(b"1", "key", "digest-1")
    assert outbox.find_replay("key", "digest-1").id == first.id
    assert outbox.put(b"1", "key", "digest-1").id == first.id
    with pytest.raises(IdempotencyConflict):
        outbox.find_replay("key", "digest-2")
    assert outbox.counts()["queued"] == 1


@pytest.mark.parametrize("url, expected", [
    ("postgres://u:p@db:5432/r", "postgresql+psycopg://u:p@db:5432/r"),
    ("postgresql://u@db/r", "postgresql+psycopg://u@db/r"),
    ("sqlite:////var/data/outbox.db", "sqlite:////var/data/outbox.db"),
])
def test_database_urls_of_the_heroku_form_are_understood(url, expected):
    assert engine_url(url) == expected


def pending_rows(outbox, *puts):
    """Pending items as put() makes them, for writing one batch by hand."""
    from widget.delivery.commits import Pending

    made = []
    original = outbox._commits.submit
    outbox._commits.submit = lambda new: made.append(Pending(new))
    try:
        for args, kwargs in puts:
            outbox.put(*args, **kwargs)
    finally:
        outbox._commits.submit = original
    return made


def test_concurrent_puts_share_transactions_and_every_row_is_stored(outbox):
    start = threading.Barrier(30)
    ids = []

    def put(i):
        start.wait()
        ids.append(outbox.put(f'{{"n": {i}}}'.encode(), fingerprint=f"f{i}",
                              duplicate_since=utcnow() - timedelta(days=1)).id)

    threads = [threading.Thread(target=put, args=(i,)) for i in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(set(ids)) == 30
    assert outbox.counts()["queued"] == 30
    assert outbox._commits.batches < 30


def repeat(fingerprint, content, since):
    return dict(fingerprint=fingerprint, content_digest=content, duplicate_since=since)


def test_the_same_review_twice_in_one_batch_is_stored_once(outbox):
    since = utcnow() - timedelta(days=1)
    batch = pending_rows(outbox, ((b"1",), repeat("same", "c1", since)),
                         ((b"1",), repeat("same", "c1", since)),
                         ((b"3",), repeat("other", "c3", since)))
    outbox._put_batch(batch)
    first, second, third = (pending.result for pending in batch)
    assert second.id == first.id and second.outcome == "repeat" and first.outcome == "stored"
    assert not second.replayed  # Idempotent-Replayed is for Idempotency-Key replays only
    assert third.id != first.id
    assert outbox.counts()["queued"] == 2


def test_the_same_text_with_other_details_in_one_batch_is_a_conflict(outbox):
    since = utcnow() - timedelta(days=1)
    batch = pending_rows(outbox, ((b"1",), repeat("same", "c1", since)),
                         ((b"2",), repeat("same", "c2", since)))
    outbox._put_batch(batch)
    assert isinstance(batch[1].error, RepeatConflict)
    assert batch[1].error.earlier.id == batch[0].result.id
    assert outbox.counts()["queued"] == 1


def test_a_batch_answers_a_review_stored_earlier_instead_of_storing_it_again(outbox):
    since = utcnow() - timedelta(days=1)
    earlier = outbox.put(b"1", **repeat("same", "c1", since))
    batch = pending_rows(outbox, ((b"1",), repeat("same", "c1", since)),
                         ((b"2",), repeat("new", "c2", since)),
                         ((b"3",), repeat("same", "c3", since)))
    outbox._put_batch(batch)
    assert batch[0].result.id == earlier.id and batch[0].result.outcome == "repeat"
    assert isinstance(batch[2].error, RepeatConflict) and batch[2].error.earlier.id == earlier.id
    assert outbox.counts()["queued"] == 2


def test_one_put_of_the_same_text_with_other_details_is_a_conflict(outbox):
    since = utcnow() - timedelta(days=1)
    earlier = outbox.put(b"1", **repeat("same", "c1", since))
    assert outbox.put(b"1", **repeat("same", "c1", since)).id == earlier.id
    with pytest.raises(RepeatConflict) as conflict:
        outbox.put(b"2", **repeat("same", "c2", since))
    assert conflict.value.earlier.id == earlier.id
    assert outbox.counts()["queued"] == 1


def test_one_idempotency_key_twice_in_a_batch_replays_or_conflicts(outbox):
    batch = pending_rows(outbox, ((b"1", "key", "digest-1"), {}),
                         ((b"1", "key", "digest-1"), {}),
                         ((b"2", "key", "digest-2"), {}))
    outbox._put_batch(batch)
    first, replay, conflict = batch
    assert replay.result.id == first.result.id and replay.result.replayed
    assert isinstance(conflict.error, IdempotencyConflict)
    assert outbox.counts()["queued"] == 1


def test_a_key_stored_meanwhile_by_another_process_sends_the_batch_row_by_row(outbox):
    # find_replay ran before put, and the key was stored in between: the batch's insert
    # breaks the unique index, and every row is then stored (or answered) on its own.
    stored = outbox.put(b"1", "key", "digest-1")
    batch = pending_rows(outbox, ((b"1", "key", "digest-1"), {}), ((b"2",), {}))
    outbox._put_batch(batch)
    assert batch[0].result.id == stored.id and batch[0].result.replayed
    assert batch[1].error is None and outbox.get(batch[1].result.id).body == "2"
    assert outbox.counts()["queued"] == 2


# Under gevent (the Procfile's web role) the outbox writes a photo review on a real thread:
# the script's commit hook stands in for a slow fsync (a real sleep, which blocks whatever
# thread runs it), and a greenlet counts the loop's turns meanwhile.
SLOW_COMMIT_SCRIPT = """
import sys, tempfile, time
from gevent import monkey
monkey.patch_all()
import gevent
from gevent.monkey import get_original
from sqlalchemy import event
from widget.delivery.outbox import Outbox, connect

real_sleep = get_original("time", "sleep")
os_thread = get_original("_thread", "get_ident")
outbox = Outbox(connect(f"sqlite:///{tempfile.mkdtemp()}/outbox.db"))
turns, seen = [0], {}

@event.listens_for(outbox.engine, "commit")
def slow_disk(conn):
    before = turns[0]
    real_sleep(0.3)
    seen.update(turns=turns[0] - before, main=os_thread() == main)

def tick():
    while True:
        gevent.sleep(0.01)
        turns[0] += 1

main = os_thread()
gevent.spawn(tick)
gevent.sleep(0.02)
body = b'{"photo": "' + b"A" * int(sys.argv[1]) + b'"}'
submission = outbox.put(body)
assert outbox.get(submission.id).body == body.decode()
print(seen["turns"], seen["main"])
"""


def _slow_commit(body_bytes: int) -> tuple[int, bool]:
    out = subprocess.run([sys.executable, "-c", SLOW_COMMIT_SCRIPT, str(body_bytes)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    turns, on_main = out.stdout.split()
    return int(turns), on_main == "True"


def test_a_photo_review_is_written_on_a_thread_while_the_event_loop_serves_others():
    # A 300 KB data-URI: its insert and fsync took 11 ms of a blocked loop on this disk.
    turns, on_main = _slow_commit(300_000)
    assert not on_main
    assert turns >= 10  # a turn every 10 ms of the 300 ms commit, give or take a busy CI


def test_a_text_review_is_written_on_the_event_loop_where_a_hand_over_costs_more():
    turns, on_main = _slow_commit(2_000)
    assert on_main
    assert turns == 0
