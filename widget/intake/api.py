"""The drop-in create_client_review endpoint: parse, validate, store, answer 202."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from widget.delivery import outbox, sender
from widget.delivery.outbox import IdempotencyConflict, Submission, request_hash, utcnow
from widget.errors import JSONAPI, ApiError
from widget.extensions import limiter
from widget.intake import defences
from widget.intake.photos import PhotoPolicy
from widget.intake.schemas import ReviewSchema, serialise

bp = Blueprint("api", __name__)

MEDIA_TYPES = ("application/vnd.api+json", "application/json")
# Klaviyo's cap is 5 MB; we aim 10% under it so headers and rounding never tip it over.
BODY_TARGET_SHARE = 0.9
MAX_IDEMPOTENCY_KEY = 255
# The same review (email, product, text) sent again within this window is stored once.
DUPLICATE_WINDOW = timedelta(days=1)


def submit_limit() -> str:
    return current_app.config["WIDGET_SUBMIT_LIMIT"]


@bp.post("/client/reviews")
@limiter.limit(submit_limit)
def create_review() -> tuple[Response, int]:
    raw = read_body()
    check_company_id(request.args.get("company_id"))
    defences.check_origin()
    defences.check_token(request.headers.get(defences.TOKEN_HEADER),
                         required=not current_app.config["WIDGET_OPEN_API"])
    defences.check_honeypot(request.headers.get(defences.HONEYPOT_HEADER))
    key = idempotency_key()
    digest = request_hash(raw)
    # A body may be tens of MB: hold one form of it at a time. The bytes go once decoded,
    # the text once parsed (popped, so nothing keeps it while photos are processed).
    text = [decode(raw)]
    del raw
    submission = accept(digest, lambda: parse_json(text.pop()), key)
    return accepted(submission)


def accept(digest: str, document: Callable[[], Any], key: str | None) -> Submission:
    """The one path every submission takes (API and form): replay check, backlog ceiling,
    validation, email limit, durable store (or the same review's first answer), wake the
    sender.

    `digest` identifies the request for Idempotency-Key replays; `document` gives the JSON:API
    body and is only called when the request is new."""
    store = outbox.current()
    try:
        earlier = store.find_replay(key, digest) if key else None
        if earlier:
            return earlier
        defences.check_backlog()
        review = review_schema().load(document())
        defences.check_email_limit(review["data"]["attributes"]["email"])
        submission = store.put(serialise(review), key, digest, defences.fingerprint(review),
                               duplicate_since=utcnow() - DUPLICATE_WINDOW)
    except IdempotencyConflict:
        raise idempotency_conflict() from None
    sender.current().notify()
    return submission


def read_body() -> bytes:
    """The request body, once its media type and length are acceptable."""
    if request.mimetype not in MEDIA_TYPES:
        raise ApiError.one(
            415, "unsupported_media_type", "Unsupported media type",
            f"Send the review as {MEDIA_TYPES[0]} or {MEDIA_TYPES[1]}, "
            f"not {request.mimetype or 'no Content-Type'}.",
        )
    length = request.content_length
    if length is None:
        raise ApiError.one(411, "length_required", "Length required",
                           "Send a Content-Length header with the body.")
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if length > limit:
        raise ApiError.one(413, "payload_too_large", "Payload too large",
                           f"The body is {length:,} bytes; the limit is {limit:,}.")
    return request.get_data(cache=False)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError.one(400, "parse_error", "Malformed JSON",
                           "The body is not valid UTF-8.") from None


def parse_json(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        detail = "The JSON is nested too deeply."
    except ValueError as error:
        detail = f"The body is not valid JSON: {error}"
    raise ApiError.one(400, "parse_error", "Malformed JSON", detail)


def check_company_id(company_id: str | None) -> None:
    """`company_id` is optional; when given it must name the account we deliver to."""
    if company_id is None:
        return
    if company_id != current_app.config["KLAVIYO_PUBLIC_KEY"]:
        raise ApiError.one(
            400, "invalid_company_id", "Unknown company_id",
            "company_id does not match the Klaviyo account this service delivers to "
            "(KLAVIYO_PUBLIC_KEY); leave it out or send the matching public key.",
            parameter="company_id",
        )


def idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise ApiError.one(
            400, "invalid_idempotency_key", "Invalid Idempotency-Key",
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters.",
            parameter="Idempotency-Key",
        )
    return key


def idempotency_conflict() -> ApiError:
    return ApiError.one(
        422, "idempotency_key_reused", "Idempotency-Key reused",
        "This Idempotency-Key was already used for a different review; use a new key.",
        parameter="Idempotency-Key",
    )


def review_schema() -> ReviewSchema:
    """The app's ReviewSchema, built once: schemas hold no per-load state, and building the
    nested schemas costs more than a whole load."""
    schema = current_app.extensions.get("review_schema")
    if schema is None:
        schema = current_app.extensions["review_schema"] = _build_review_schema()
    return schema


def _build_review_schema() -> ReviewSchema:
    config = current_app.config
    photos = PhotoPolicy(
        max_photos=config["WIDGET_MAX_PHOTOS"],
        max_data_uri_chars=config["PHOTO_MAX_DATA_URI_CHARS"],
        max_pixels=config["PHOTO_MAX_PIXELS"],
        max_edge=config["PHOTO_MAX_EDGE"],
    )
    target = int(config["KLAVIYO_MAX_BODY_BYTES"] * BODY_TARGET_SHARE)
    return ReviewSchema(photos=photos, body_target=target)


def accepted(submission: Submission) -> tuple[Response, int]:
    response = jsonify({"data": {
        "type": "review-submission",
        "id": submission.id,
        "attributes": {"status": "queued"},
    }})
    response.content_type = JSONAPI
    if submission.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response, 202
