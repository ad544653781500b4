"""The drop-in create_client_review endpoint: parse, accept (widget/intake/submissions.py),
answer 202."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import orjson
from flask import Blueprint, Response, current_app, request

from widget.delivery.outbox import Submission, request_hash
from widget.errors import JSONAPI, ApiError
from widget.extensions import limiter
from widget.intake import defences, submissions
from widget.intake.submissions import Arrival, Body

bp = Blueprint("api", __name__)

P = ParamSpec("P")
R = TypeVar("R")
MEDIA_TYPES = ("application/vnd.api+json", "application/json")
MAX_IDEMPOTENCY_KEY = 255


def submit_limit() -> str:
    return current_app.config["WIDGET_SUBMIT_LIMIT"]


# One per-IP bucket for the API and the form's no-JavaScript post together.
_shared_submit_limit = limiter.shared_limit(submit_limit, scope="submissions")


def submissions_limit(view: Callable[P, R]) -> Callable[P, R]:
    """The shared per-IP limit on a view; with web limits off (RATELIMIT_ENABLED=false), the
    view alone: flask-limiter's decorator would still look for the limits of the request
    (40 µs of a submission's 600 in-process) to find that none apply."""
    limited = _shared_submit_limit(view)

    @wraps(view)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        if not limiter.enabled:
            return view(*args, **kwargs)
        return limited(*args, **kwargs)

    return checked


# The routes that take submissions: the only ones with web limits.
SUBMIT_ENDPOINTS = frozenset({"api.create_review", "form.submit"})


@limiter.request_filter
def without_limits() -> bool:
    """Every other route skips flask-limiter's per-request work: resolving limits a route
    does not have cost 140 to 280 µs under cProfile (docs/benchmarks.md, "What every
    request pays")."""
    return request.endpoint not in SUBMIT_ENDPOINTS


@bp.post("/client/reviews")
@submissions_limit
def create_review() -> tuple[Response, int]:
    check_media_type()
    check_company_id(request.args.get("company_id"))
    submission = submissions.accept(Arrival(
        read=read_review,
        token=request.headers.get(defences.TOKEN_HEADER),
        honeypot=request.headers.get(defences.HONEYPOT_HEADER),
        idempotency_key=idempotency_key(),
        token_required=not current_app.config["WIDGET_OPEN_API"],
    ))
    return accepted(submission)


def read_review() -> Body:
    """The body, once its length is acceptable. A body may be tens of MB: hold one form of
    it at a time. The bytes go once decoded, the text once parsed (popped, so nothing
    keeps it while photos are processed)."""
    raw = read_body()
    digest = request_hash(raw)
    text = [decode(raw)]
    del raw
    return Body(digest, lambda: parse_json(text.pop()))


def check_media_type() -> None:
    if request.mimetype not in MEDIA_TYPES:
        raise ApiError.one(
            415, "unsupported_media_type", "Unsupported media type",
            f"Send the review as {MEDIA_TYPES[0]} or {MEDIA_TYPES[1]}, "
            f"not {request.mimetype or 'no Content-Type'}.",
        )


def read_body() -> bytes:
    """The request body, once its length is acceptable."""
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


def accepted(submission: Submission) -> tuple[Response, int]:
    """The 202 document: jsonify's bytes (keys sorted, a newline at the end), written by
    orjson in half jsonify's time (10 of 19 µs)."""
    response = Response(orjson.dumps({"data": {
        "type": "review-submission",
        "id": submission.id,
        "attributes": {"status": "queued"},
    }}, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE), content_type=JSONAPI)
    if submission.replayed:  # an Idempotency-Key replay, and nothing else
        response.headers["Idempotent-Replayed"] = "true"
    return response, 202
