"""The durable queue of accepted submissions: put, claim, mark, list.

SQLAlchemy Core over DATABASE_URL: a SQLite file (WAL) by default, Postgres by URL. A row is
committed before the 202 leaves; senders claim rows one at a time with a single atomic
UPDATE (`FOR UPDATE SKIP LOCKED` on Postgres), so two senders never hold the same row.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from uuid6 import uuid7

from widget.delivery import migrations
from widget.delivery.commits import GroupCommit, Pending, on_a_real_thread

log = logging.getLogger(__name__)

STATES = ("queued", "sending", "delivered", "dead")
# Written in the transaction of a change, beside it: the count of a send's outcome and a
# webhook's event (widget/delivery/events.py). Put's is given the new row.
Also = Callable[[Connection], None]
AlsoStored = Callable[[Connection, dict[str, Any]], None]
# How long a process starting on a new SQLite file waits for another one migrating it.
SQLITE_WAL_SWITCH_SECONDS = 30.0
# A batch whose bodies hold this many characters (a photo's data-URI: 100 KB to 5 MB) takes
# milliseconds to write and fsync into SQLite, and under gevent that would stop every
# request of the process meanwhile (a 300 KB photo's: 11 ms). Such a batch is written on a
# real thread while the loop serves the others. Text batches stay on the loop: their
# commit is shorter than the hand-over (docs/benchmarks.md). Postgres's commit waits on a
# socket, which gevent overlaps already.
THREAD_WRITE_CHARS = 64 * 1024

metadata = MetaData()
submissions = Table(
    "submissions",
    metadata,
    Column("id", String(36), primary_key=True),
    # The exact JSON body sent to Klaviyo (photos already re-encoded).
    Column("body", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("last_status", Integer),
    Column("last_error", Text),
    # Set when a send may have reached Klaviyo without our seeing the 202 (read timeout,
    # or a sender that died mid-send): Klaviyo has no idempotency key, so a retry can
    # create a second review. Moderators see the flag.
    Column("possible_duplicate", Boolean, nullable=False, default=False),
    Column("idempotency_key", String(255), unique=True),
    Column("request_hash", String(64)),
    # Same author email, product and text: a shopper's double post or a bot's repeats are
    # stored once a day (see Outbox.put).
    Column("fingerprint", String(64)),
    # The hash of a submission's content, its photos by their content hash: a repeat of
    # the fingerprint is the same review only when this is the same too.
    Column("content_digest", String(64)),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("claimed_at", DateTime),
    Column("delivered_at", DateTime),
    # Set when a dead row is sent again by hand: the age limit counts from here.
    Column("requeued_at", DateTime),
    # When the row was first sent: a lookup in Klaviyo searches from here (less a skew).
    Column("first_sent_at", DateTime),
    # Set while the outcome of the last send is unknown (no answer after the body went, or a
    # sender that died mid-send): with the private key the row is looked up in Klaviyo
    # before it is sent again (widget/delivery/reconcile.py).
    Column("unknown_since", DateTime),
    # Klaviyo's id of the review, when a lookup found it (its create answers no id).
    Column("klaviyo_review_id", String(64)),
    Index("ix_submissions_due", "state", "next_attempt_at"),
    Index("ix_submissions_delivered", "state", "delivered_at"),
    Index("ix_submissions_fingerprint", "fingerprint", "created_at"),
)
# /readyz writes a row here: proof that the database takes a write, not only a read.
outbox_health = Table(
    "outbox_health",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("checked_at", DateTime, nullable=False),
)


def fingerprint(email: str, review_type: str, integration_key: str, external_id: str,
                content: str) -> str:
    """Same author email, product and text: the same review, however often it is sent (the
    repeat rule of the intake; the mirror finds our reviews in Klaviyo's by it too)."""
    parts = (email.lower(), review_type, integration_key, external_id,
             " ".join(content.split()).lower())
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def resource_fingerprint(resource: dict[str, Any]) -> str | None:
    """The fingerprint of one of Klaviyo's review resources (None without an email)."""
    attributes = resource.get("attributes") or {}
    if not attributes.get("email") or attributes.get("content") is None:
        return None
    product = attributes.get("product") or {}
    item = (((resource.get("relationships") or {}).get("item") or {}).get("data") or {})
    integration = str(item.get("id") or "").split(":::")[0].lstrip("$") if product else ""
    return fingerprint(attributes["email"], attributes.get("review_type") or "review",
                       integration, product.get("external_id") or "", attributes["content"])


def utcnow() -> datetime:
    """Naive UTC: the one clock every row uses, the same on SQLite and Postgres."""
    return datetime.now(UTC).replace(tzinfo=None)


def request_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before for a different body."""


class OutboxFull(Exception):
    """The outbox's disk has too little room left for the next reviews."""

    def __init__(self, free: int, needed: int) -> None:
        super().__init__(f"{free / 1e6:.1f} MB free on the outbox's disk, "
                         f"{needed / 1e6:.0f} MB needed")
        self.free, self.needed = free, needed


class RepeatConflict(Exception):
    """The same email, product and text were stored before with other details."""

    def __init__(self, earlier: Submission) -> None:
        super().__init__(earlier.id)
        self.earlier = earlier


@dataclass(frozen=True)
class Submission:
    """A row of the outbox. `outcome` says how a put() answered: "stored" (a new row),
    "replayed" (the first row of its Idempotency-Key) or "repeat" (the same review, stored
    earlier)."""

    id: str
    body: str
    state: str
    attempts: int
    created_at: datetime
    possible_duplicate: bool
    outcome: str = "stored"
    requeued_at: datetime | None = None
    content_digest: str | None = None
    first_sent_at: datetime | None = None
    unknown_since: datetime | None = None
    klaviyo_review_id: str | None = None

    @property
    def replayed(self) -> bool:
        return self.outcome == "replayed"

    @property
    def age_from(self) -> datetime:
        """When the age limit started: acceptance, or the last requeue by hand."""
        return self.requeued_at or self.created_at


@dataclass(frozen=True)
class NewRow:
    """A row to insert, and since when the same review counts as a repeat (None: never)."""

    row: dict[str, Any]
    duplicate_since: datetime | None
    also: AlsoStored | None = None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    # WAL lets readers and the writer work at once; FULL makes each commit durable on disk
    # before the 202 leaves, even if the machine loses power.
    _switch_to_wal(cursor)
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """A new file's switch to WAL needs it to itself, and SQLite answers "locked" at once,
    busy timeout or not, while another process is migrating it: ask again for a while
    (once a file is in WAL, the switch is a no-op)."""
    deadline = time.monotonic() + SQLITE_WAL_SWITCH_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def engine_url(url: str) -> str:
    """DATABASE_URL as SQLAlchemy wants it: Heroku-style `postgres://` means psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def connect(url: str) -> Engine:
    """An engine for the outbox, its schema brought up to date (widget/delivery/migrations/)."""
    url = engine_url(url)
    # A server connection can die between requests (restarts, idle timeouts): test it on
    # checkout. A SQLite file cannot, and the test would cost every request a query.
    engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        migrations.upgrade(engine)
    except Exception:
        engine.dispose()
        raise
    return engine


class Outbox:
    """The queue's operations; every method is one short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # SQLite has one writer at a time, and a writer that finds the lock taken sleeps in
        # steps of up to 100 ms. Threads of this process queue on a lock instead, which
        # turns those sleeps into a short, fair wait (4x the throughput under load).
        self._write_lock = threading.Lock() if engine.dialect.name == "sqlite" else None
        self._commits: GroupCommit[NewRow, Submission] = GroupCommit(self._put_batch)

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A write transaction, committed on exit."""
        with self._write_lock or nullcontext(), self.engine.begin() as conn:
            yield conn

    def put(self, body: bytes, idempotency_key: str | None = None,
            digest: str | None = None, fingerprint: str | None = None,
            content_digest: str | None = None,
            duplicate_since: datetime | None = None,
            also: AlsoStored | None = None) -> Submission:
        """Store a submission durably. `digest` identifies the request an Idempotency-Key
        was first used with; a replay of the key answers the first submission. With
        `duplicate_since`, a submission of the same fingerprint made since then answers
        instead of storing this one when its `content_digest` is the same, and raises
        RepeatConflict when it is not (looked up in the same transaction as the insert).
        `also` runs in the transaction that stores the row (not for a replay or a repeat).

        Submissions that arrive together are committed together (widget/delivery/commits.py)."""
        now = utcnow()
        row = {
            # UUIDv7 (RFC 9562) begins with the time: a batch's new keys land on the last
            # page of the primary key's index, not on a random page each (with uuid4, a
            # commit of 14 rows wrote a quarter more pages, and took as much longer).
            "id": str(uuid7()),
            "body": body.decode("utf-8"),
            "state": "queued",
            "attempts": 0,
            "next_attempt_at": now,
            "possible_duplicate": False,
            "idempotency_key": idempotency_key,
            "request_hash": digest or request_hash(body),
            "fingerprint": fingerprint,
            "content_digest": content_digest,
            "created_at": now,
            "updated_at": now,
        }
        return self._commits.submit(NewRow(row, duplicate_since if fingerprint else None,
                                           also))

    def _put_batch(self, batch: list[Pending[NewRow, Submission]]) -> None:
        """One transaction for the whole batch; if it fails (a key that raced in from
        another process, say), each submission is stored on its own and gets its own
        answer or error."""
        items = [pending.item for pending in batch]
        large = sum(len(new.row["body"]) for new in items) >= THREAD_WRITE_CHARS
        if len(batch) > 1 or large:
            try:
                with self._write_lock or nullcontext(), self.engine.connect() as conn:
                    if large and self.engine.dialect.name == "sqlite":
                        outcomes = on_a_real_thread(_commit_many, conn, items)
                    else:
                        outcomes = _commit_many(conn, items)
            except Exception:  # retried one by one below, where errors surface
                log.info("a batch of %d submissions failed; storing them one by one",
                         len(batch), exc_info=True)
            else:
                for pending, outcome in zip(batch, outcomes, strict=True):
                    if isinstance(outcome, BaseException):
                        pending.finish(error=outcome)
                    else:
                        pending.finish(outcome)
                return
        for pending in batch:
            try:
                pending.finish(self._put_one(pending.item))
            except Exception as error:
                pending.finish(error=error)

    def _put_one(self, new: NewRow) -> Submission:
        row = new.row
        try:
            with self._writing() as conn:
                if new.duplicate_since is not None:
                    earlier = _first_since(conn, row["fingerprint"], new.duplicate_since)
                    if earlier is not None:
                        return _repeat(earlier, row["content_digest"])
                conn.execute(submissions.insert(), row)
                if new.also is not None:
                    new.also(conn, row)
        except IntegrityError:
            # Two requests with the same key raced; the one that committed first wins.
            key = row["idempotency_key"]
            earlier = self.find_replay(key, row["request_hash"]) if key else None
            if earlier is None:
                raise
            return earlier
        return _stored(row)

    def find_replay(self, key: str, digest: str) -> Submission | None:
        """The submission first stored under `key`, if any; IdempotencyConflict when the key
        was used for a different request."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(submissions).where(submissions.c.idempotency_key == key)
            ).mappings().first()
        if row is None:
            return None
        if row["request_hash"] != digest:
            raise IdempotencyConflict(key)
        return _submission(row, outcome="replayed")

    def find_repeat(self, fingerprint: str, content_digest: str,
                    since: datetime) -> Submission | None:
        """The first submission of this fingerprint stored since then, if any, when it sent
        the same content; RepeatConflict when it sent other content."""
        with self.engine.connect() as conn:
            earlier = _first_since(conn, fingerprint, since)
        return _repeat(earlier, content_digest) if earlier else None

    def claim_due(self) -> Submission | None:
        """Take the next due row for sending, or None when nothing is due."""
        now = utcnow()
        t = submissions
        due = (
            select(t.c.id)
            .where(t.c.state == "queued", t.c.next_attempt_at <= now)
            .order_by(t.c.next_attempt_at)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        claim = (
            update(t)
            .where(t.c.id == due, t.c.state == "queued")
            .values(state="sending", claimed_at=now, updated_at=now, attempts=t.c.attempts + 1,
                    first_sent_at=func.coalesce(t.c.first_sent_at, now))
            .returning(*t.c)
        )
        with self._writing() as conn:
            row = conn.execute(claim).mappings().first()
        return _submission(row) if row else None

    def next_due_at(self) -> datetime | None:
        """When the earliest queued row becomes due (None: the queue is empty)."""
        t = submissions
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.min(t.c.next_attempt_at)).where(t.c.state == "queued")
            ).scalar()

    def mark_delivered(self, submission_id: str, status: int | None,
                       klaviyo_review_id: str | None = None, note: str | None = None,
                       also: Also | None = None) -> None:
        """Delivered: Klaviyo answered `status`, or (status None) a lookup found the review
        by its content, under `klaviyo_review_id`."""
        now = utcnow()
        values: dict[str, Any] = {"state": "delivered", "last_status": status,
                                  "last_error": note, "delivered_at": now,
                                  "unknown_since": None, "claimed_at": None}
        if klaviyo_review_id is not None:
            values["klaviyo_review_id"] = klaviyo_review_id
        self._set(submission_id, also, **values)

    def mark_unknown(self, submission_id: str, since: datetime, when: datetime, *,
                     error: str, also: Also | None = None) -> None:
        """The send that began at `since` got no answer: it may have created the review.
        Queued again for `when`, to be looked up (or, without the private key, sent)."""
        self._set(submission_id, also, state="queued", unknown_since=since,
                  next_attempt_at=when, last_status=None, last_error=error, claimed_at=None)

    def mark_resend(self, submission_id: str) -> None:
        """An unknown outcome is given up on: the row is sent again, flagged as a possible
        duplicate (Klaviyo may yet have created the first one)."""
        self._set(submission_id, possible_duplicate=True, unknown_since=None)

    def retry_at(self, submission_id: str, when: datetime, *, status: int | None, error: str,
                 possible_duplicate: bool = False, count_attempt: bool = True,
                 clear_unknown: bool = False, also: Also | None = None) -> None:
        values: dict[str, Any] = {
            "state": "queued", "next_attempt_at": when, "last_status": status,
            "last_error": error, "claimed_at": None,
        }
        if possible_duplicate:
            values["possible_duplicate"] = True
        if clear_unknown:
            values["unknown_since"] = None
        if not count_attempt:
            values["attempts"] = submissions.c.attempts - 1
        self._set(submission_id, also, **values)

    def mark_dead(self, submission_id: str, *, status: int | None, error: str,
                  also: Also | None = None) -> None:
        self._set(submission_id, also, state="dead", last_status=status, last_error=error,
                  claimed_at=None)

    def _set(self, submission_id: str, also: Also | None = None, **values: Any) -> None:
        """Change one row; `also` writes what the change tells the outside, in its
        transaction."""
        with self._writing() as conn:
            conn.execute(
                update(submissions)
                .where(submissions.c.id == submission_id)
                .values(updated_at=utcnow(), **values)
            )
            if also is not None:
                also(conn)

    def reclaim_stale(self, older_than: timedelta) -> int:
        """Queue again the rows a dead process left in `sending`: they may have been sent,
        so their outcome is unknown since they were claimed."""
        cutoff = utcnow() - older_than
        t = submissions
        with self._writing() as conn:
            result = conn.execute(
                update(t)
                .where(t.c.state == "sending", t.c.claimed_at < cutoff)
                .values(state="queued", claimed_at=None,
                        unknown_since=func.coalesce(t.c.unknown_since, t.c.claimed_at),
                        next_attempt_at=utcnow(), updated_at=utcnow(),
                        last_error="reclaimed from a sender that stopped mid-send")
            )
        return result.rowcount

    def klaviyo_ids_taken(self, review_ids: list[str], but: str) -> set[str]:
        """Which of these Klaviyo review ids a row other than `but` already holds."""
        if not review_ids:
            return set()
        t = submissions
        with self.engine.connect() as conn:
            return set(conn.execute(
                select(t.c.klaviyo_review_id).where(t.c.klaviyo_review_id.in_(review_ids),
                                                    t.c.id != but)
            ).scalars())

    def get(self, submission_id: str) -> Submission | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(submissions).where(submissions.c.id == submission_id)
            ).mappings().first()
        return _submission(row) if row else None

    def counts(self) -> dict[str, int]:
        t = submissions
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.state, func.count()).group_by(t.c.state)).all()
        return {state: 0 for state in STATES} | {state: n for state, n in rows}

    def rows(self, states: tuple[str, ...], limit: int = 100) -> list[dict[str, Any]]:
        """Rows in the given states, oldest first, without their bodies (for listings)."""
        t = submissions
        columns = [c for c in t.c if c.name not in ("body", "request_hash")]
        with self.engine.connect() as conn:
            result = conn.execute(
                select(*columns).where(t.c.state.in_(states)).order_by(t.c.created_at)
                .limit(limit)
            )
            return [dict(row) for row in result.mappings()]

    def link_klaviyo_ids(self, resources: list[dict[str, Any]]) -> int:
        """Note Klaviyo's id on delivered rows that sent these reviews (found in the mirror
        by their fingerprint: email, type, product, text), where none is noted yet and no
        other row holds that id. Returns how many rows were linked."""
        found = {}
        for resource in resources:
            fingerprint = resource_fingerprint(resource)
            if fingerprint is not None:
                found.setdefault(fingerprint, resource["id"])
        if not found:
            return 0
        t = submissions
        with self._writing() as conn:
            taken = set(conn.execute(select(t.c.klaviyo_review_id).where(
                t.c.klaviyo_review_id.in_(list(found.values())))).scalars())
            rows = conn.execute(
                select(t.c.id, t.c.fingerprint)
                .where(t.c.fingerprint.in_(list(found)), t.c.state == "delivered",
                       t.c.klaviyo_review_id.is_(None))
                .order_by(t.c.created_at)
            ).all()
            linked = 0
            for row_id, fingerprint in rows:
                klaviyo_id = found[fingerprint]
                if klaviyo_id in taken:
                    continue
                conn.execute(update(t).where(t.c.id == row_id)
                             .values(klaviyo_review_id=klaviyo_id))
                taken.add(klaviyo_id)
                linked += 1
        return linked

    def by_klaviyo_id(self, review_id: str) -> Submission | None:
        """The row that sent Klaviyo's review `review_id`, when it is known."""
        with self.engine.connect() as conn:
            row = conn.execute(select(submissions)
                               .where(submissions.c.klaviyo_review_id == review_id)
                               ).mappings().first()
        return _submission(row) if row else None

    def doubted_deliveries(self, limit: int = 100) -> list[dict[str, Any]]:
        """Delivered rows whose delivery was in doubt, newest first: found in Klaviyo after
        a send went unanswered (with Klaviyo's id), or sent again (a possible duplicate)."""
        t = submissions
        columns = [c for c in t.c if c.name not in ("body", "request_hash")]
        with self.engine.connect() as conn:
            result = conn.execute(
                select(*columns)
                .where(t.c.state == "delivered",
                       t.c.klaviyo_review_id.is_not(None) | t.c.possible_duplicate)
                .order_by(t.c.delivered_at.desc()).limit(limit)
            )
            return [dict(row) for row in result.mappings()]

    def touched_since(self, since: datetime) -> int:
        """Rows claimed or sent since then: at least one call to Klaviyo each (the pacer of a
        restarted process counts them, see widget/delivery/pacing.py)."""
        t = submissions
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count()).where(t.c.updated_at >= since,
                                           t.c.updated_at > t.c.created_at)
            ).scalar_one()

    def requeue_dead(self, ids: list[str] | None = None) -> int:
        """Send dead rows again (all of them when `ids` is None): queued, due now, with a
        fresh age limit. Returns how many were requeued."""
        now = utcnow()
        t = submissions
        where = [t.c.state == "dead"]
        if ids is not None:
            where.append(t.c.id.in_(ids))
        with self._writing() as conn:
            result = conn.execute(
                update(t).where(*where)
                .values(state="queued", next_attempt_at=now, requeued_at=now, updated_at=now,
                        claimed_at=None)
            )
        return result.rowcount

    def purge_delivered(self, older_than: timedelta) -> int:
        """Delete delivered rows delivered more than `older_than` ago (their bodies hold
        personal data and photos). Returns how many were deleted."""
        cutoff = utcnow() - older_than
        t = submissions
        with self._writing() as conn:
            result = conn.execute(
                t.delete().where(t.c.state == "delivered", t.c.delivered_at < cutoff)
            )
        return result.rowcount

    def check_writable(self, room_bytes: int) -> None:
        """Raise unless the outbox takes a write now: one row of `outbox_health` is written
        and committed as a review would be (down, read-only or full raise SQLAlchemyError).
        On a SQLite file, OutboxFull when its disk has less than `room_bytes` free."""
        now = utcnow()
        try:
            with self._writing() as conn:
                written = conn.execute(update(outbox_health).where(outbox_health.c.id == 1)
                                       .values(checked_at=now)).rowcount
                if not written:
                    conn.execute(outbox_health.insert(), {"id": 1, "checked_at": now})
        except IntegrityError:
            pass  # another process wrote the first row at the same moment: a write happened
        path = self.engine.url.database if self.engine.dialect.name == "sqlite" else None
        if path and path != ":memory:":
            disk = os.statvfs(os.path.dirname(os.path.abspath(path)))
            free = disk.f_bavail * disk.f_frsize
            if free < room_bytes:
                raise OutboxFull(free, room_bytes)


# Built once: a statement's construction costs more than its execution on SQLite.
INSERT = submissions.insert()
SAME_REVIEWS = (
    select(submissions)
    .where(submissions.c.fingerprint.in_(bindparam("fingerprints", expanding=True)),
           submissions.c.created_at >= bindparam("since"))
    .order_by(submissions.c.created_at)
)


def _first_since(conn: Connection, fingerprint: str, since: datetime) -> Submission | None:
    t = submissions
    row = conn.execute(
        select(t).where(t.c.fingerprint == fingerprint, t.c.created_at >= since)
        .order_by(t.c.created_at).limit(1)
    ).mappings().first()
    return _submission(row, outcome="repeat") if row else None


def _repeat(earlier: Submission, content_digest: str | None) -> Submission:
    """The earlier submission when it sent this content, else RepeatConflict (rows from
    before content digests count as other content)."""
    if earlier.content_digest is not None and earlier.content_digest == content_digest:
        return earlier
    raise RepeatConflict(earlier)


def _commit_many(conn: Connection, batch: list[NewRow]) -> list[Submission | Exception]:
    """_insert_many in a transaction of its own, committed."""
    with conn.begin():
        return _insert_many(conn, batch)


def _insert_many(conn: Connection, batch: list[NewRow]) -> list[Submission | Exception]:
    """The batch's outcomes, in order: each row stored, or answered by the same review made
    earlier (in the table or in this batch), or an Idempotency-Key conflict within it."""
    checked = [new for new in batch if new.duplicate_since is not None]
    earlier: dict[str, list[Any]] = {}
    if checked:
        since = min(new.duplicate_since for new in checked)
        found = conn.execute(SAME_REVIEWS, {
            "fingerprints": list({new.row["fingerprint"] for new in checked}), "since": since,
        }).mappings().all()
        for row in found:
            earlier.setdefault(row["fingerprint"], []).append(row)
    outcomes: list[Submission | Exception] = []
    by_key: dict[str, dict[str, Any]] = {}
    inserts, stored = [], []
    for new in batch:
        row, key = new.row, new.row["idempotency_key"]
        if key is not None and key in by_key:
            first = by_key[key]
            outcomes.append(_stored(first, outcome="replayed")
                            if first["request_hash"] == row["request_hash"]
                            else IdempotencyConflict(key))
            continue
        same = [r for r in earlier.get(row["fingerprint"], ())
                if new.duplicate_since is not None and r["created_at"] >= new.duplicate_since]
        if same:
            try:
                outcomes.append(_repeat(_submission(same[0], outcome="repeat"),
                                        row["content_digest"]))
            except RepeatConflict as conflict:
                outcomes.append(conflict)
            continue
        if new.duplicate_since is not None:
            earlier.setdefault(row["fingerprint"], []).append(row)
        if key is not None:
            by_key[key] = row
        inserts.append(row)
        stored.append(new)
        outcomes.append(_stored(row))
    if inserts:
        conn.execute(INSERT, inserts)
    for new in stored:
        if new.also is not None:
            new.also(conn, new.row)
    return outcomes


def _stored(row: dict[str, Any], outcome: str = "stored") -> Submission:
    return Submission(row["id"], row["body"], "queued", 0, row["created_at"], False,
                      outcome=outcome, content_digest=row["content_digest"])


def _submission(row: Any, outcome: str = "stored") -> Submission:
    return Submission(
        id=row["id"], body=row["body"], state=row["state"], attempts=row["attempts"],
        created_at=row["created_at"], possible_duplicate=bool(row["possible_duplicate"]),
        outcome=outcome, requeued_at=row.get("requeued_at"),
        content_digest=row.get("content_digest"), first_sent_at=row.get("first_sent_at"),
        unknown_since=row.get("unknown_since"), klaviyo_review_id=row.get("klaviyo_review_id"),
    )


def init_app(app: Flask) -> None:
    """Open the outbox named by DATABASE_URL (default: a SQLite file in the instance folder)."""
    url = app.config["DATABASE_URL"]
    if not url:
        os.makedirs(app.instance_path, exist_ok=True)
        url = "sqlite:///" + os.path.join(app.instance_path, "outbox.db")
    app.extensions["outbox"] = Outbox(connect(url))


def current() -> Outbox:
    return current_app.extensions["outbox"]
