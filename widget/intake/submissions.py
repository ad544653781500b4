"""The one pipeline every submission takes, from the API and the form alike.

Cheapest checks first, so that what is refused costs little: who may post (origin, form
token, honeypot), an Idempotency-Key replay, the backlog ceiling, validation (ReviewSchema),
the form token's product, a repeat of a review already stored, the email limit, then the
photos (the only costly step), and the durable store. Every refusal is an ApiError or a
ValidationError, answered once by the view's handlers.

A repeat is only a repeat: the same email, product and text within REPEAT_WINDOW is answered
with the first submission when everything else is the same too (photos compared by content
hash), and with a 409 naming it when anything differs, never with a 202 that drops what was
sent. Only stored reviews count against the email limit.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy.exc import SQLAlchemyError

from widget.delivery import outbox, sender
from widget.delivery.outbox import IdempotencyConflict, RepeatConflict, Submission, utcnow
from widget.errors import ApiError, from_validation
from widget.intake import defences, photos
from widget.intake.schemas import ReviewSchema, serialise

log = logging.getLogger(__name__)

# Klaviyo's cap is 5 MB; we aim 10% under it so headers and rounding never tip it over.
BODY_TARGET_SHARE = 0.9
# The same review (email, product and text) sent again within this window is a repeat.
REPEAT_WINDOW = timedelta(days=1)
# Seconds a client should wait before sending again when the outbox cannot be written.
STORE_RETRY_AFTER = 30


@dataclass(frozen=True)
class Body:
    """A request's review: `digest` identifies the request for Idempotency-Key replays;
    `document()` gives the JSON:API body (parsed only when the request is new)."""

    digest: str
    document: Callable[[], Any]


@dataclass(frozen=True)
class Arrival:
    """A submission as it arrived, before anything in it is believed."""

    read: Callable[[], Body]
    token: str | None = None
    honeypot: str | None = None
    idempotency_key: str | None = None
    token_required: bool = True


def accept(arrival: Arrival) -> Submission:
    """Take one submission through every check to the outbox; returns what was stored,
    or the earlier submission this one repeats."""
    defences.check_origin()
    claims = defences.check_token(arrival.token, required=arrival.token_required)
    defences.check_honeypot(arrival.honeypot)
    body = arrival.read()
    try:
        return _store(arrival, body, claims)
    except SQLAlchemyError as error:
        raise store_unavailable(error) from None


def _store(arrival: Arrival, body: Body, claims: defences.TokenClaims | None) -> Submission:
    store = outbox.current()
    key = arrival.idempotency_key
    try:
        earlier = store.find_replay(key, body.digest) if key else None
    except IdempotencyConflict:
        raise idempotency_conflict() from None
    if earlier:
        return earlier
    defences.backlog().check()
    review = review_schema().load(body.document())
    defences.check_token_product(claims, review)
    fingerprint, content = defences.fingerprint(review), content_digest(review)
    since = utcnow() - REPEAT_WINDOW
    attributes = review["data"]["attributes"]
    try:
        # The insert's transaction looks for a repeat; with photos, look first as well, so
        # that a repeat never costs their decoding.
        earlier = store.find_repeat(fingerprint, content, since) \
            if attributes.get("images") else None
        if earlier is not None:
            return earlier
        defences.check_email_limit(review)
        if attributes.get("images"):
            attributes["images"] = prepare_photos(review)
        submission = store.put(serialise(review), key, body.digest, fingerprint, content,
                               duplicate_since=since,
                               also=sender.current().report.accepted(attributes))
    except IdempotencyConflict:
        raise idempotency_conflict() from None
    except RepeatConflict as conflict:
        raise repeat_conflict(conflict.earlier) from None
    if submission.outcome == "stored":  # not a request that raced its own repeat
        defences.count_email(review)
        sender.current().notify()
    return submission


def prepare_photos(review: dict[str, Any]) -> list[str]:
    """The review's photos as Klaviyo receives them. Each gets an equal share of what the
    text leaves of Klaviyo's body cap, in binary bytes (base64 grows them by a third)."""
    attributes = review["data"]["attributes"]
    references = attributes["images"]
    text_bytes = len(serialise({**review, "data": {**review["data"], "attributes": {
        **attributes, "images": []}}}))
    target = int(current_app.config["KLAVIYO_MAX_BODY_BYTES"] * BODY_TARGET_SHARE)
    share = (target - text_bytes) * 3 // 4 // len(references)
    try:
        return photos.current().prepare(references, share)
    except photos.PhotosRefused as refused:
        raise from_validation(refused, status=refused.status) from None
    except photos.PhotoBusy as busy:
        raise ApiError.one(503, "busy", "Too busy to take photos now", str(busy),
                           pointer="/data/attributes/images",
                           headers={"Retry-After": str(busy.retry_after)}) from None


def content_digest(review: dict[str, Any]) -> str:
    """Everything sent that Klaviyo receives, photos by content hash: equal digests are
    the same review."""
    attributes = review["data"]["attributes"]
    images = [photos.content_hash(reference) for reference in attributes.get("images") or []]
    same = {**review, "data": {**review["data"], "attributes": {**attributes, "images": images}}}
    return hashlib.sha256(serialise(same)).hexdigest()


def review_schema() -> ReviewSchema:
    return current_app.extensions["review_schema"]


def idempotency_conflict() -> ApiError:
    return ApiError.one(
        422, "idempotency_key_reused", "Idempotency-Key reused",
        "This Idempotency-Key was already used for a different review; use a new key.",
        parameter="Idempotency-Key",
    )


def repeat_conflict(earlier: Submission) -> ApiError:
    return ApiError.one(
        409, "review_already_sent", "Review already sent",
        f"This email address sent a review with this text for this product on "
        f"{earlier.created_at:%Y-%m-%d %H:%M} UTC (submission {earlier.id}), with other "
        "details; a review cannot be changed once sent. Send new text for a new review.",
        pointer="/data/attributes/content",
    )


def store_unavailable(error: SQLAlchemyError) -> ApiError:
    """The outbox cannot take the review now (database down, disk full): retryable."""
    log.warning("outbox unavailable: %s: %s", type(error).__name__,
                str(getattr(error, "orig", error)).splitlines()[0][:200])
    return ApiError.one(
        503, "outbox_unavailable", "Cannot store reviews right now",
        "The review could not be stored safely just now, so it was not accepted; send it "
        "again in a moment.",
        headers={"Retry-After": str(STORE_RETRY_AFTER)},
    )


def init_app(app: Flask) -> None:
    """Build the review schema once: schemas keep no state between loads, and building the
    nested ones costs more than a load."""
    app.extensions["review_schema"] = ReviewSchema(
        max_photos=app.config["WIDGET_MAX_PHOTOS"],
        questions=app.extensions["custom_questions"])
