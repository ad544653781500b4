"""What shoppers and search engines see of the mirror: a product's published reviews and
questions (or the shop's store reviews), their summary, pages and schema.org data.

Only what Klaviyo published or featured is shown, and of each review only the fields named
in `public_review` (never the email). A product's whole shelf is built once per mirror
generation (`Mirror.generation`, counted up by every write of the sync) and kept in memory,
so a view costs no Klaviyo call and, while the mirror stands still, no database read either.
Another process's sync is noticed within CHECK_SECONDS; this process's own at once.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import Flask, current_app

from widget.cache import ReadCache
from widget.reviews.store import Mirror, klaviyo_time

KINDS = ("review", "question", "store")
SORTS = ("newest", "highest", "lowest", "photos")
PAGE_SIZE = 10
# Klaviyo's review types each kind shows: a "rating" is a review with stars and no text.
TYPES = {"review": ("review", "rating", "question"), "question": ("review", "rating", "question"),
         "store": ("store",)}
RATED = ("review", "rating", "store")
# How often a process asks the database whether another process's sync wrote (seconds).
CHECK_SECONDS = 1.0
# Shelves (one per product shown lately) and rendered pages kept per process: a page of a
# product with 200 reviews is about 25 KB, so the pages hold at most about 25 MB.
MAX_SHELVES = 256
MAX_PAGES = 1024
# Google's review-snippet rules: an author's name is shorter than 100 characters.
AUTHOR_MAX = 100


@dataclass(frozen=True)
class Reply:
    author: str | None
    content: str
    updated: datetime | None


@dataclass(frozen=True)
class PublicReview:
    """One published review as shoppers may see it: no email, no status beyond featured."""

    id: str
    review_type: str
    author: str | None
    created: datetime
    rating: int | None
    title: str | None
    content: str | None
    images: tuple[str, ...]
    verified: bool
    featured: bool
    smart_quote: str | None
    reply: Reply | None
    product_name: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "type": self.review_type, "author": self.author,
            "created": self.created.isoformat() + "Z", "rating": self.rating,
            "title": self.title, "content": self.content, "images": list(self.images),
            "verified": self.verified, "featured": self.featured,
            "smart_quote": self.smart_quote,
            "reply": None if self.reply is None else {
                "author": self.reply.author, "content": self.reply.content,
                "updated": self.reply.updated.isoformat() + "Z" if self.reply.updated
                else None},
        }


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def public_photo(url: Any) -> str | None:
    """A photo address shoppers' browsers may load: https only (Klaviyo hosts them)."""
    return url if isinstance(url, str) and url.lower().startswith("https://") else None


def public_review(resource: dict[str, Any]) -> PublicReview | None:
    """The shown fields of one mirrored resource; None when it is not public."""
    attributes = resource.get("attributes") or {}
    status = (attributes.get("status") or {}).get("value")
    if status not in ("published", "featured"):
        return None
    rating = attributes.get("rating")
    if isinstance(rating, bool) or rating not in (1, 2, 3, 4, 5):
        rating = None
    reply = attributes.get("public_reply") or {}
    product = attributes.get("product") or {}
    return PublicReview(
        id=str(resource.get("id")),
        review_type=attributes.get("review_type") or "review",
        author=_text(attributes.get("author")),
        created=klaviyo_time(attributes.get("created")) or datetime(1970, 1, 1),
        rating=rating,
        title=_text(attributes.get("title")),
        content=_text(attributes.get("content")),
        images=tuple(filter(None, map(public_photo, attributes.get("images") or []))),
        verified=bool(attributes.get("verified")),
        featured=status == "featured",
        smart_quote=_text(attributes.get("smart_quote")),
        reply=Reply(_text(reply.get("author")), reply["content"].strip(),
                    klaviyo_time(reply.get("updated")))
        if _text(reply.get("content")) else None,
        product_name=_text(product.get("name")),
    )


@dataclass(frozen=True)
class Summary:
    """The stars over what a kind shows: average to one decimal, count, count per star."""

    count: int
    average: float | None
    histogram: dict[int, int]
    questions: int

    def as_json(self) -> dict[str, Any]:
        return {"average": self.average, "count": self.count, "questions": self.questions,
                "histogram": {str(stars): n for stars, n in self.histogram.items()}}


@dataclass(frozen=True)
class Page:
    items: list[PublicReview]
    number: int
    pages: int
    total: int


@dataclass
class Shelf:
    """Everything one product (or the store) shows, newest first, built from one generation."""

    reviews: list[PublicReview]
    questions: list[PublicReview]
    summary: Summary
    product_name: str | None
    _sorted: dict[str, list[PublicReview]] = field(default_factory=dict)

    @classmethod
    def of(cls, resources: list[dict[str, Any]], kind: str) -> Shelf:
        shown = [review for review in map(public_review, resources) if review is not None]
        questions = [r for r in shown if r.review_type == "question"] if kind != "store" \
            else []
        rated = [r for r in shown if r.review_type in RATED and r.rating is not None]
        histogram = {stars: 0 for stars in (5, 4, 3, 2, 1)}
        for review in rated:
            histogram[review.rating] += 1  # type: ignore[index]
        average = (math.floor(sum(r.rating for r in rated) / len(rated) * 10 + 0.5) / 10
                   if rated else None)  # type: ignore[misc]
        name = next((r.product_name for r in shown if r.product_name), None)
        return cls(rated, questions, Summary(len(rated), average, histogram, len(questions)),
                   name)

    def page(self, kind: str, sort: str, rating: int | None, number: int) -> Page:
        """One page of a kind's list; a page past the end is the last page."""
        if kind == "question":
            chosen = self.questions
        else:
            chosen = self.sorted(sort)
            if rating is not None:
                chosen = [r for r in chosen if r.rating == rating]
        pages = max(1, math.ceil(len(chosen) / PAGE_SIZE))
        number = min(max(1, number), pages)
        start = (number - 1) * PAGE_SIZE
        return Page(chosen[start:start + PAGE_SIZE], number, pages, len(chosen))

    def sorted(self, sort: str) -> list[PublicReview]:
        if sort not in self._sorted:  # each order once per shelf (sorted() is stable)
            reviews = self.reviews  # newest first already
            if sort == "highest":
                reviews = sorted(reviews, key=lambda r: -(r.rating or 0))
            elif sort == "lowest":
                reviews = sorted(reviews, key=lambda r: r.rating or 0)
            elif sort == "photos":
                reviews = sorted(reviews, key=lambda r: not r.images)
            self._sorted[sort] = reviews
        return self._sorted[sort]


def structured_data(shelf: Shelf, product_name: str | None) -> dict[str, Any] | None:
    """schema.org Product with aggregateRating and the first page's reviews, by Google's
    review-snippet rules; None when nothing is rated or the product has no name."""
    name = product_name or shelf.product_name
    if not shelf.summary.count or not name:
        return None
    first = shelf.page("review", "newest", None, 1).items
    return {
        "@context": "https://schema.org",
        "@type": "Product",
        "name": name,
        "aggregateRating": {"@type": "AggregateRating", "ratingValue": shelf.summary.average,
                            "reviewCount": shelf.summary.count, "bestRating": 5,
                            "worstRating": 1},
        "review": [_review_data(review) for review in first
                   if review.author and len(review.author) < AUTHOR_MAX],
    }


def _review_data(review: PublicReview) -> dict[str, Any]:
    data: dict[str, Any] = {
        "@type": "Review",
        "author": {"@type": "Person", "name": review.author},
        "datePublished": review.created.date().isoformat(),
        "reviewRating": {"@type": "Rating", "ratingValue": review.rating, "bestRating": 5,
                         "worstRating": 1},
    }
    if review.title:
        data["name"] = review.title
    if review.content:
        data["reviewBody"] = review.content
    return data


class Display:
    """The per-process shelves and rendered pages, dropped when the mirror's generation
    moves on."""

    def __init__(self, mirror: Mirror, check_seconds: float = CHECK_SECONDS) -> None:
        self.mirror = mirror
        self.check_seconds = check_seconds
        self.shelves = ReadCache(math.inf, max_entries=MAX_SHELVES)
        self.pages = ReadCache(math.inf, max_entries=MAX_PAGES)
        self._generation: int | None = None
        self._local_writes = -1
        self._checked_at = -math.inf
        self._lock = threading.Lock()

    def shelf(self, kind: str, product_id: str | None) -> Shelf:
        generation = self._check()
        return self.shelves.fetch((generation, kind == "store", product_id), lambda: Shelf.of(
            self.mirror.shown(TYPES[kind], None if kind == "store" else product_id), kind))

    def page(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """What `build` made for this key in this generation (a rendered page, say)."""
        return self.pages.fetch((self._check(), key), build)

    def _check(self) -> int | None:
        """The mirror's generation as last read; read again when due. The keys carry it,
        so a build that read the mirror before a write is never served after it."""
        now = time.monotonic()
        writes = self.mirror.local_writes
        if now - self._checked_at < self.check_seconds and writes == self._local_writes:
            return self._generation
        with self._lock:
            generation = self.mirror.generation()
            self._checked_at, self._local_writes = now, writes
            if generation != self._generation:  # what older generations built is dead
                self._generation = generation
                self.shelves.clear()
                self.pages.clear()
            return generation


def init_app(app: Flask) -> None:
    app.extensions["display"] = Display(app.extensions["mirror"])


def current() -> Display:
    return current_app.extensions["display"]
