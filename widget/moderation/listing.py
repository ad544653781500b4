"""The moderation list over the mirror: its filters, its count, keyset pages, every match.

SQLAlchemy Core over `widget.reviews.store.reviews`, the same on SQLite and Postgres; no
call to Klaviyo. Pages are keyset pages (rows beyond the cursor's sort value and id, ties
broken by id), so rows written between two page loads neither repeat nor hide a row, and
the hundredth page costs what the first does (no OFFSET).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import JSON, ColumnElement, Engine, and_, cast, func, or_, select, type_coerce

from widget.moderation.query import Cursor, Listing
from widget.reviews.store import reviews

# Questions have no rating: they sort as 0, below one star, on both databases alike (their
# NULL orderings differ).
SORT_KEYS: dict[str, ColumnElement[Any]] = {
    "created": reviews.c.created,
    "updated": reviews.c.updated,
    "rating": func.coalesce(reviews.c.rating, 0),
}
# Rows per read of the CSV export: one short query each, so no connection is held while a
# slow client downloads.
BATCH = 500


@dataclass(frozen=True)
class Page:
    """One page of the list: Klaviyo's resources as stored, and where its neighbours start."""

    reviews: list[dict[str, Any]]
    next: Cursor | None
    prev: Cursor | None


def content(dialect: str) -> ColumnElement[str]:
    """A review's text, read from the stored resource (the mirror has no column for it)."""
    resource = reviews.c.resource
    # Postgres needs the text cast to JSON before a path; SQLite's JSON functions read text.
    document = cast(resource, JSON) if dialect == "postgresql" else type_coerce(resource, JSON)
    return document[("attributes", "content")].as_string()


def conditions(listing: Listing, dialect: str) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a view's filters."""
    c = reviews.c
    where: list[ColumnElement[bool]] = []
    if listing.status != "all":
        where.append(c.status == listing.status)
    if listing.rating is not None:
        where.append(c.rating == listing.rating)
    if listing.rating_min is not None:
        where.append(c.rating >= listing.rating_min)
    if listing.rating_max is not None:
        where.append(c.rating <= listing.rating_max)
    if listing.review_type:
        where.append(c.review_type == listing.review_type)
    if listing.verified is not None:
        where.append(c.verified == listing.verified)
    if listing.created_from:  # UTC days, both ends inclusive
        where.append(c.created >= datetime.combine(listing.created_from, time.min))
    if listing.created_to:
        where.append(c.created < datetime.combine(listing.created_to + timedelta(days=1),
                                                  time.min))
    if listing.q:  # autoescape: a % or _ typed is matched as itself
        where.append(content(dialect).icontains(listing.q, autoescape=True))
    if listing.product:
        where.append(c.product_external_id == listing.product)
    if listing.email:  # stored lower-cased
        where.append(c.email == listing.email.lower())
    if listing.media:
        where.append(c.has_media.is_(True))
    if listing.reply:
        where.append(c.has_reply.is_(True))
    return where


def count_matches(engine: Engine, listing: Listing) -> int:
    """How many reviews in the mirror match the view's filters (all pages)."""
    query = select(func.count()).select_from(reviews).where(
        *conditions(listing, engine.dialect.name))
    with engine.connect() as conn:
        return conn.execute(query).scalar_one()


def read_page(engine: Engine, listing: Listing) -> Page:
    """The view's page at its cursor (the first page without one)."""
    key = SORT_KEYS[listing.sort.lstrip("-")]
    cursor = listing.cursor
    backward = cursor is not None and cursor.backward
    # Walking toward smaller values: forward in a descending sort, or back in an ascending.
    smaller = listing.sort.startswith("-") != backward
    query = select(key.label("key"), reviews.c.id, reviews.c.resource).where(
        *conditions(listing, engine.dialect.name))
    if cursor is not None:
        query = query.where(_beyond(key, cursor, smaller))
    order = (key.desc(), reviews.c.id.desc()) if smaller else (key.asc(), reviews.c.id.asc())
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(*order).limit(listing.size + 1)).all()
    more = len(rows) > listing.size
    rows = rows[:listing.size]
    if backward:
        rows.reverse()
    first = (rows[0].key, rows[0].id) if rows else (cursor.value, cursor.id) if cursor else None
    last = (rows[-1].key, rows[-1].id) if rows else first
    has_next = True if backward else more
    has_prev = more if backward else cursor is not None
    return Page(
        reviews=[json.loads(row.resource) for row in rows],
        next=Cursor(listing.sort, *last) if has_next and last else None,
        prev=Cursor(listing.sort, *first, backward=True) if has_prev and first else None,
    )


def _beyond(key: ColumnElement[Any], cursor: Cursor, smaller: bool) -> ColumnElement[bool]:
    """Rows past the cursor's row, toward smaller or larger (sort value, id)."""
    value, review_id = cursor.value, cursor.id
    if smaller:
        return or_(key < value, and_(key == value, reviews.c.id < review_id))
    return or_(key > value, and_(key == value, reviews.c.id > review_id))


def every_match(engine: Engine, listing: Listing, batch: int = BATCH
                ) -> Iterator[list[dict[str, Any]]]:
    """Every review of the view in its sort order, a batch at a time (from the first page,
    whatever the view's cursor)."""
    view = replace(listing, size=batch, cursor=None)
    while True:
        found = read_page(engine, view)
        if found.reviews:
            yield found.reviews
        if found.next is None:
            return
        view = replace(view, cursor=found.next)
