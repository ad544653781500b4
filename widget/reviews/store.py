"""The mirror of Klaviyo's reviews: a table in the outbox's database, kept by the sync.

Each row holds Klaviyo's resource as it came (`resource`, JSON: what the pages show) and the
columns the pages filter and sort on. `reviews_sync` holds the sync's state (the highest
`updated` seen, when it last ran, its last error) and the lease that lets one process sync
at a time, on SQLite and Postgres alike: a row taken with one conditional UPDATE.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    String,
    Table,
    Text,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from widget.delivery.outbox import metadata, utcnow

SYNC = "reviews"
# What Klaviyo shows shoppers; anything else (pending, unpublished, rejected) is never public.
PUBLIC_STATUSES = ("published", "featured")

reviews = Table(
    "reviews",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("review_type", String(16), nullable=False),
    Column("rating", Integer),
    Column("verified", Boolean, nullable=False),
    # Lower-cased; only with the private key (the public endpoint has no emails).
    Column("email", String(320)),
    Column("product_external_id", String(255)),
    Column("has_media", Boolean, nullable=False),
    Column("has_reply", Boolean, nullable=False),
    Column("created", DateTime, nullable=False),
    Column("updated", DateTime, nullable=False),
    # Klaviyo's resource as it came, without its links.
    Column("resource", Text, nullable=False),
    # When a sync last saw it: a full pass drops what it did not see.
    Column("synced_at", DateTime, nullable=False),
    Index("ix_reviews_created", "created", "id"),
    Index("ix_reviews_status_created", "status", "created"),
    Index("ix_reviews_product_created", "product_external_id", "created"),
    Index("ix_reviews_email", "email"),
    Index("ix_reviews_updated", "updated"),
)
reviews_sync = Table(
    "reviews_sync",
    metadata,
    Column("name", String(32), primary_key=True),
    # "private" (GET /api/reviews) or "public" (GET /client/reviews): a change of key
    # starts the mirror again, since the two see different reviews.
    Column("source", String(16)),
    Column("watermark", DateTime),
    Column("last_sync_at", DateTime),
    Column("last_full_at", DateTime),
    Column("last_error", Text),
    Column("last_error_at", DateTime),
    Column("last_calls", Integer),
    Column("lease_holder", String(64)),
    Column("lease_until", DateTime),
    # Counted up by every write to the reviews table: the public display's caches hold
    # what they built from one generation (widget/reviews/display.py).
    Column("generation", Integer, nullable=False, server_default="0"),
)


def klaviyo_time(value: str | None) -> datetime | None:
    """Klaviyo's ISO datetime as naive UTC (the clock every row uses)."""
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def row_of(resource: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The mirror's row for one of Klaviyo's review resources."""
    attributes = resource.get("attributes") or {}
    product = attributes.get("product") or {}
    created = klaviyo_time(attributes.get("created")) or now
    kept = {key: value for key, value in resource.items() if key != "links"}
    kept["relationships"] = {key: value for key, value in
                             (resource.get("relationships") or {}).items() if key != "events"}
    return {
        "id": resource["id"],
        "status": ((attributes.get("status") or {}).get("value") or "pending")[:16],
        "review_type": (attributes.get("review_type") or "review")[:16],
        "rating": attributes.get("rating"),
        "verified": bool(attributes.get("verified")),
        "email": (attributes.get("email") or "").strip().lower() or None,
        "product_external_id": product.get("external_id"),
        "has_media": bool(attributes.get("images")),
        "has_reply": bool((attributes.get("public_reply") or {}).get("content")),
        "created": created,
        "updated": klaviyo_time(attributes.get("updated")) or created,
        "resource": json.dumps(kept, separators=(",", ":")),
        "synced_at": now,
    }


@dataclass(frozen=True)
class SyncState:
    """What /readyz and the moderation pages say about the sync."""

    source: str | None = None
    watermark: datetime | None = None
    last_sync_at: datetime | None = None
    last_full_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_calls: int | None = None

    def age(self, now: datetime | None = None) -> float | None:
        """Seconds since the last sync that finished (None: never)."""
        if self.last_sync_at is None:
            return None
        return ((now or utcnow()) - self.last_sync_at).total_seconds()


class Mirror:
    """The mirror's operations; every method is one short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._state_row_made = False  # the sync's state row exists (made once, never removed)
        # This process's writes, so that its own display sees them at once (display.py).
        self.local_writes = 0
        self.local_records = 0  # the sync state's writes in this process (sync_state's key)

    # -- the sync's writes -----------------------------------------------------------------
    def upsert(self, resources: Iterable[dict[str, Any]], now: datetime | None = None) -> int:
        """Insert or replace these resources; returns how many."""
        now = now or utcnow()
        rows = [row_of(resource, now) for resource in resources]
        if not rows:
            return 0
        dialect = self.engine.dialect.name
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(reviews)
        changed = {column.name: insert.excluded[column.name]
                   for column in reviews.c if column.name != "id"}
        self._ensure_state_row()
        with self.engine.begin() as conn:
            conn.execute(insert.on_conflict_do_update(index_elements=["id"], set_=changed),
                         rows)
            self._next_generation(conn)
        self.local_writes += 1  # after the commit: a view that sees it reads the new rows
        return len(rows)

    def drop_unseen(self, since: datetime) -> int:
        """Delete the rows no sync has seen since `since` (the start of a full pass)."""
        self._ensure_state_row()
        with self.engine.begin() as conn:
            dropped = conn.execute(delete(reviews).where(reviews.c.synced_at < since)).rowcount
            if dropped:
                self._next_generation(conn)
        self.local_writes += 1
        return dropped

    def clear(self) -> None:
        self._ensure_state_row()
        with self.engine.begin() as conn:
            conn.execute(delete(reviews))
            conn.execute(update(reviews_sync).values(watermark=None, last_full_at=None))
            self._next_generation(conn)
        self.local_writes += 1

    @staticmethod
    def _next_generation(conn: Any) -> None:
        conn.execute(update(reviews_sync).where(reviews_sync.c.name == SYNC)
                     .values(generation=reviews_sync.c.generation + 1))

    # -- the sync's state ------------------------------------------------------------------
    def state(self) -> SyncState:
        with self.engine.connect() as conn:
            row = conn.execute(select(reviews_sync).where(reviews_sync.c.name == SYNC)
                               ).mappings().first()
        if row is None:
            return SyncState()
        return SyncState(row["source"], row["watermark"], row["last_sync_at"],
                         row["last_full_at"], row["last_error"], row["last_error_at"],
                         row["last_calls"])

    def record(self, **values: Any) -> None:
        """Write fields of the sync's state."""
        self._ensure_state_row()
        with self.engine.begin() as conn:
            conn.execute(update(reviews_sync).where(reviews_sync.c.name == SYNC)
                         .values(**values))
        self.local_records += 1  # after the commit: this process's pages see it at once

    def take_lease(self, holder: str, seconds: float) -> bool:
        """Become the one syncer for `seconds` (or stay it): False while another holds it."""
        self._ensure_state_row()
        now = utcnow()
        t = reviews_sync
        with self.engine.begin() as conn:
            taken = conn.execute(
                update(t).where(t.c.name == SYNC,
                                (t.c.lease_until.is_(None)) | (t.c.lease_until < now)
                                | (t.c.lease_holder == holder))
                .values(lease_holder=holder, lease_until=now + timedelta(seconds=seconds))
            ).rowcount
        return bool(taken)

    def release_lease(self, holder: str) -> None:
        t = reviews_sync
        with self.engine.begin() as conn:
            conn.execute(update(t).where(t.c.name == SYNC, t.c.lease_holder == holder)
                         .values(lease_holder=None, lease_until=None))

    def _ensure_state_row(self) -> None:
        if self._state_row_made:
            return
        try:
            with self.engine.begin() as conn:
                exists = conn.execute(select(reviews_sync.c.name)
                                      .where(reviews_sync.c.name == SYNC)).first()
                if exists is None:
                    conn.execute(reviews_sync.insert(), {"name": SYNC})
        except IntegrityError:
            pass  # another process made it at the same moment
        self._state_row_made = True

    # -- reads -----------------------------------------------------------------------------
    def get(self, review_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(reviews.c.resource).where(reviews.c.id == review_id)
                               ).first()
        return json.loads(row[0]) if row else None

    def generation(self) -> int:
        """The number of writes the reviews table has seen (0 before the first)."""
        with self.engine.connect() as conn:
            value = conn.execute(select(reviews_sync.c.generation)
                                 .where(reviews_sync.c.name == SYNC)).scalar()
        return value or 0

    def shown(self, review_types: Iterable[str], product_id: str | None = None
              ) -> list[dict[str, Any]]:
        """The published and featured resources of these types, for one product (or, with
        None, for none: store reviews), newest first."""
        t = reviews
        query = select(t.c.resource).where(t.c.status.in_(PUBLIC_STATUSES),
                                           t.c.review_type.in_(list(review_types)))
        query = query.where(t.c.product_external_id == product_id) if product_id is not None \
            else query.where(t.c.product_external_id.is_(None))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(t.c.created.desc(), t.c.id)).scalars().all()
        return [json.loads(row) for row in rows]

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(reviews)).scalar_one()

    def ids(self) -> Iterator[str]:
        with self.engine.connect() as conn:
            yield from conn.execute(select(reviews.c.id)).scalars()


def init_app(app: Flask) -> None:
    """The mirror, in the outbox's database (its tables come with the outbox's migrations)."""
    app.extensions["mirror"] = Mirror(app.extensions["outbox"].engine)


def current() -> Mirror:
    return current_app.extensions["mirror"]
