"""What the outbox's changes tell the outside, written in the transaction of the change.

- `delivery_outcomes`: one counter per outcome of a send (widget_deliveries_total). Counted
  in the database, not in a process: the worker role runs in a container of its own, and a
  scrape of any web process must see what every sender did.
- `webhook_events`: the events for WIDGET_WEBHOOK_URL, sent later by widget/ops/webhooks.py
  (retried with backoff, never on a request's path). A row is written with the change it
  reports, so an event is never lost nor sent for a change that was rolled back.
- `queue_watch`: since when the queue has been stuck, so that queue.stuck is sent once per
  episode, whichever process notices.

An event's payload names the review (type, rating, product, a short excerpt) and never its
email, its author or a key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    String,
    Table,
    Text,
    func,
    select,
    update,
)

from widget.delivery.outbox import metadata, submissions, utcnow

# The outcomes of a send, as the sender logs them (a lookup's "found" is "delivered").
OUTCOMES = ("delivered", "throttled", "unavailable", "timeout", "rejected", "expired")
# Characters of the review's text an event carries.
EXCERPT_CHARACTERS = 140
# Anything shaped like an email address in the excerpt (shoppers type them into reviews).
EMAIL_LIKE = re.compile(r"\S+@\S+")

delivery_outcomes = Table(
    "delivery_outcomes",
    metadata,
    Column("outcome", String(16), primary_key=True),
    Column("count", BigInteger, nullable=False),
)
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("type", String(32), nullable=False),
    # The JSON body as the receiver gets it (the Slack text is made from it when sent).
    Column("payload", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
    # Due then; a sender that claims it moves this past its lease, so a process that dies
    # mid-send leaves it to be sent again (at least once).
    Column("next_attempt_at", DateTime, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Index("ix_webhook_events_due", "next_attempt_at"),
)
queue_watch = Table(
    "queue_watch",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("stuck_since", DateTime),
)

# A write done inside the transaction of an outbox change.
Also = Callable[[Connection], None]
WAITING = ("queued", "sending")


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds") + "Z"


def count_outcome(conn: Connection, outcome: str) -> None:
    """One more send with this outcome (the rows exist from migration 0008 on)."""
    conn.execute(update(delivery_outcomes).where(delivery_outcomes.c.outcome == outcome)
                 .values(count=delivery_outcomes.c.count + 1))


def add_event(conn: Connection, payload: dict[str, Any]) -> None:
    """Queue one event for the webhook, due now."""
    now = utcnow()
    conn.execute(webhook_events.insert(), {
        "type": payload["type"], "payload": json.dumps(payload, ensure_ascii=False),
        "created_at": now, "next_attempt_at": now, "attempts": 0,
    })


def summary(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """What an event says about a review: its type, rating, product and a short excerpt."""
    product = attributes.get("product") or None
    return {
        "review_type": attributes.get("review_type"),
        "rating": attributes.get("rating"),
        "product": {"external_id": product.get("external_id"),
                    "integration_key": product.get("integration_key")} if product else None,
        "excerpt": excerpt(attributes.get("content") or ""),
    }


def excerpt(content: str) -> str:
    """The text's start, cut at a word, email-shaped words hidden."""
    text = EMAIL_LIKE.sub("[email]", " ".join(content.split()))
    if len(text) <= EXCERPT_CHARACTERS:
        return text
    return text[:EXCERPT_CHARACTERS].rsplit(" ", 1)[0] + "…"


def body_summary(body: str) -> dict[str, Any]:
    """summary() of an outbox row's body (the JSON sent to Klaviyo)."""
    try:
        return summary(json.loads(body)["data"]["attributes"])
    except (ValueError, KeyError, TypeError):
        return summary({})


def review_event(kind: str, submission_id: str, review: Mapping[str, Any],
                 **extra: Any) -> dict[str, Any]:
    """The payload of a review.* event."""
    return {"type": f"review.{kind}", "id": submission_id, "time": iso(utcnow()),
            **review, **extra}


class Report:
    """What the sender writes beside each outcome: the count, and (webhooks on) the event."""

    def __init__(self, webhooks: bool, secrets: tuple[str | None, ...] = ()) -> None:
        self.webhooks = webhooks
        self.secrets = [secret for secret in secrets if secret]

    def outcome(self, outcome: str, submission_id: str | None = None, body: str = "",
                event: str | None = None, **extra: Any) -> Also:
        """Count `outcome`; with `event` (delivered, dead), queue review.<event> too."""
        payload = None
        if event is not None and self.webhooks and submission_id is not None:
            extra = {key: self.redact(value) for key, value in extra.items()}
            payload = review_event(event, submission_id, body_summary(body), **extra)

        def write(conn: Connection) -> None:
            count_outcome(conn, outcome)
            if payload is not None:
                add_event(conn, payload)

        return write

    def accepted(self, attributes: Mapping[str, Any]) -> Callable[[Connection, dict], None] | None:
        """For Outbox.put: queue review.accepted in the transaction that stores the row."""
        if not self.webhooks:
            return None
        review = summary(attributes)

        def write(conn: Connection, row: dict[str, Any]) -> None:
            add_event(conn, review_event("accepted", row["id"], review))

        return write

    def redact(self, value: Any) -> Any:
        """Klaviyo's reason, without a key it may quote."""
        if isinstance(value, str):
            for secret in self.secrets:
                value = value.replace(secret, "[key]")
        return value


class EventQueue:
    """The webhook's events in the database, and the watch on a stuck queue."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def claim(self, lease: timedelta) -> Any:
        """The oldest event (id, payload, attempts so far, created_at), leased to this
        process, when it is due; None otherwise. Events go out in the order they were
        written: while the oldest waits for its retry, so do the others (a receiver that
        refuses one refuses them all). The UPDATE checks it is due again, so of two
        processes only one takes it."""
        now = utcnow()
        t = webhook_events
        oldest = select(func.min(t.c.id)).scalar_subquery()
        claim = (update(t).where(t.c.id == oldest, t.c.next_attempt_at <= now)
                 .values(next_attempt_at=now + lease, attempts=t.c.attempts + 1)
                 .returning(t.c.id, t.c.payload, t.c.attempts, t.c.created_at))
        with self.engine.begin() as conn:
            return conn.execute(claim).first()

    def sent(self, event_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(webhook_events.delete().where(webhook_events.c.id == event_id))

    def retry_at(self, event_id: int, when: datetime, error: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(webhook_events).where(webhook_events.c.id == event_id)
                         .values(next_attempt_at=when, last_error=error[:500]))

    def backlog(self) -> tuple[int, datetime | None]:
        with self.engine.connect() as conn:
            return backlog(conn)

    def watch_stuck(self, older_than: timedelta) -> bool:
        """Queue queue.stuck when the oldest waiting review has waited longer than
        `older_than` and no episode is open; close the episode once it is not. True when
        an event was queued. One transaction: two processes never both send it."""
        t = submissions
        since = func.coalesce(t.c.requeued_at, t.c.created_at)
        now = utcnow()
        with self.engine.begin() as conn:
            oldest = conn.execute(select(t.c.id, since.label("since"))
                                  .where(t.c.state.in_(WAITING)).order_by(since).limit(1)
                                  ).first()
            if oldest is None or now - oldest.since <= older_than:
                conn.execute(update(queue_watch).where(queue_watch.c.id == 1,
                                                       queue_watch.c.stuck_since.is_not(None))
                             .values(stuck_since=None))
                return False
            opened = conn.execute(update(queue_watch).where(queue_watch.c.id == 1,
                                                            queue_watch.c.stuck_since.is_(None))
                                  .values(stuck_since=oldest.since)).rowcount
            if not opened:
                return False
            waiting = conn.execute(select(func.count()).where(t.c.state.in_(WAITING))
                                   ).scalar_one()
            add_event(conn, {
                "type": "queue.stuck", "id": oldest.id, "time": iso(now),
                "oldest_queued_at": iso(oldest.since),
                "oldest_queued_seconds": round((now - oldest.since).total_seconds()),
                "waiting": waiting, "stuck_minutes": older_than.total_seconds() / 60,
            })
            return True


def outcome_counts(conn: Connection) -> dict[str, int]:
    """Sends by outcome since the database was made."""
    rows = conn.execute(select(delivery_outcomes.c.outcome, delivery_outcomes.c.count)).all()
    return {outcome: 0 for outcome in OUTCOMES} | {outcome: count for outcome, count in rows}


def oldest_waiting(conn: Connection) -> datetime | None:
    """When the review waiting longest was accepted (or requeued by hand)."""
    t = submissions
    return conn.execute(select(func.min(func.coalesce(t.c.requeued_at, t.c.created_at)))
                        .where(t.c.state.in_(WAITING))).scalar()


def backlog(conn: Connection) -> tuple[int, datetime | None]:
    """Webhook events not sent yet, and when the oldest was written."""
    t = webhook_events
    count, oldest = conn.execute(select(func.count(), func.min(t.c.created_at))).one()
    return count, oldest
