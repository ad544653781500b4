"""The outbox on the real Postgres: safe claims by several senders, reclaim, schema upgrades
(the upgrade tests run on SQLite too)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, inspect, text

from tests.services import postgres_database
from widget.delivery import migrations
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
    assert (again.id, again.possible_duplicate, again.attempts) == (submission.id, True, 2)


OLD_SCHEMA = """
CREATE TABLE submissions (
    id VARCHAR(36) PRIMARY KEY, body TEXT NOT NULL, state VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL, next_attempt_at TIMESTAMP NOT NULL, last_status INTEGER,
    last_error TEXT, possible_duplicate BOOLEAN NOT NULL,
    idempotency_key VARCHAR(255) UNIQUE, request_hash VARCHAR(64),
    created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL, claimed_at TIMESTAMP,
    delivered_at TIMESTAMP
)"""
OLD_ROW = """
INSERT INTO submissions (id, body, state, attempts, next_attempt_at, possible_duplicate,
    created_at, updated_at)
VALUES ('old-row', '{"data": 0}', 'queued', 0, '2026-01-01 00:00:00', false,
    '2026-01-01 00:00:00', '2026-01-01 00:00:00')"""


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
    else:
        with postgres_database() as url:
            yield url


def test_a_database_made_by_the_first_version_is_upgraded_and_keeps_its_rows(empty_database):
    old = create_engine(engine_url(empty_database))
    with old.begin() as conn:  # what metadata.create_all made before versions existed
        conn.execute(text(OLD_SCHEMA))
        conn.execute(text(OLD_ROW))
    old.dispose()
    store = Outbox(connect(empty_database))
    try:
        columns = {c["name"] for c in inspect(store.engine).get_columns("submissions")}
        assert {"fingerprint", "requeued_at"} <= columns
        with store.engine.connect() as conn:
            assert migrations.current_version(conn) == migrations.LATEST
        assert store.get("old-row").body == '{"data": 0}'
        assert store.claim_due().id == "old-row"
        store.put(b"new", fingerprint="f" * 64)
        assert store.counts()["queued"] == 1
    finally:
        store.engine.dispose()


def test_processes_starting_together_upgrade_the_schema_once(empty_database):
    engines, errors = [], []

    def start():
        try:
            engines.append(connect(empty_database))
        except Exception as error:  # noqa: BLE001 - the assertion below shows it
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with engines[0].connect() as conn:
        versions = conn.execute(text("SELECT version FROM outbox_schema ORDER BY version"))
        assert [v for (v,) in versions] == [number for number, _ in migrations.MIGRATIONS]
    for engine in engines:
        engine.dispose()


def test_a_schema_newer_than_the_code_is_refused(empty_database):
    connect(empty_database).dispose()
    engine = create_engine(engine_url(empty_database))
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO outbox_schema VALUES (:v, '2030-01-01 00:00:00')"),
                     {"v": migrations.LATEST + 1})
    engine.dispose()
    with pytest.raises(migrations.SchemaTooNew, match="deploy the newer version"):
        connect(empty_database)
