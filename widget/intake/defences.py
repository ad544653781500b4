"""Who may post a review, and how often: form tokens, honeypot, Origin, backlog, email limits.

- The widget's form carries a signed, time-limited token (itsdangerous) issued when the form
  is rendered: a post needs it unless WIDGET_OPEN_API is on, and it must be at least
  WIDGET_TOKEN_MIN_SECONDS old (people take that long to write a review; scripts do not).
- A honeypot field, invisible to people, must stay empty.
- A browser post (it carries `Origin`) must come from this service or an allowed storefront.
- The outbox may only grow so far beyond what Klaviyo can take (a backlog ceiling), and one
  email address may only post so often.
"""

from __future__ import annotations

import fnmatch
import hashlib
import secrets
import time
from typing import Any

from flask import current_app, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from limits import parse_many

from widget.delivery import outbox
from widget.errors import ApiError
from widget.extensions import limiter

TOKEN_HEADER = "X-Review-Token"
HONEYPOT_HEADER = "X-Review-Honeypot"
TOKEN_SALT = "review-form"
# How long a counted backlog is reused: counting on every post would cost a query each.
BACKLOG_CACHE_SECONDS = 2.0


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=TOKEN_SALT)


def issue_token() -> str:
    """A token for one rendering of the form."""
    return _serializer().dumps({"n": secrets.token_urlsafe(8)})


def refuse(code: str, title: str, detail: str, **kwargs: Any) -> ApiError:
    return ApiError.one(403, code, title, detail, **kwargs)


def check_token(token: str | None, *, required: bool) -> None:
    """Refuse a missing (when required), forged, expired or too-quick form token."""
    if not token:
        if required:
            raise refuse(
                "token_required", "Form token required",
                "Reviews are taken from the review form only: reload the form and send it "
                "again. (Other clients need WIDGET_OPEN_API=true on this service.)",
                parameter=TOKEN_HEADER,
            )
        return
    config = current_app.config
    try:
        _, issued = _serializer().loads(
            token, max_age=config["WIDGET_TOKEN_MAX_AGE_SECONDS"], return_timestamp=True
        )
    except SignatureExpired:
        raise refuse("token_expired", "Form expired",
                     "The form was open too long: reload it and send the review again.",
                     parameter=TOKEN_HEADER) from None
    except BadSignature:
        raise refuse("token_invalid", "Invalid form token",
                     "The form token is not one this service issued: reload the form.",
                     parameter=TOKEN_HEADER) from None
    waited = time.time() - issued.timestamp()
    if waited < config["WIDGET_TOKEN_MIN_SECONDS"]:
        raise refuse("too_fast", "Sent too quickly",
                     f"The form was sent {waited:.0f} s after it was opened; that is faster "
                     "than a person writes. Wait a moment and send it again.",
                     parameter=TOKEN_HEADER)


def check_honeypot(value: str | None) -> None:
    """The honeypot field is hidden from people; only a bot fills it in."""
    if value and value.strip():
        raise refuse("honeypot", "Refused as spam",
                     "A field that must stay empty was filled in, so this looks automated.",
                     parameter=HONEYPOT_HEADER)


def allowed_origins() -> tuple[set[str], list[str]]:
    """This service's origin and WIDGET_FRAME_ANCESTORS, as exact origins and patterns."""
    exact = {f"{request.scheme}://{request.host}".lower()}
    patterns = []
    for source in current_app.config["WIDGET_FRAME_ANCESTORS"].split():
        source = source.lower().rstrip("/")
        if source.startswith("'"):  # 'self' is above; 'none' allows nothing more
            continue
        if "://" not in source:  # CSP allows a host without a scheme
            source = "*://" + source
        if "*" in source:
            patterns.append(source)
        else:
            exact.add(source)
    return exact, patterns


def origin_allowed(origin: str) -> bool:
    exact, patterns = allowed_origins()
    origin = origin.lower().rstrip("/")
    return origin in exact or any(fnmatch.fnmatchcase(origin, p) for p in patterns)


def check_origin() -> None:
    """A browser post must come from this service or an allowed storefront."""
    origin = request.headers.get("Origin")
    if origin is not None and not origin_allowed(origin):
        raise refuse("origin_not_allowed", "Origin not allowed",
                     f"Posts from {origin[:100]} are not accepted; the storefront must be in "
                     "WIDGET_FRAME_ANCESTORS.", parameter="Origin")


def check_backlog() -> None:
    """503 with Retry-After when the outbox holds more than Klaviyo can take for a while."""
    ceiling = current_app.config["WIDGET_BACKLOG_LIMIT"]
    cached = current_app.extensions.get("backlog")
    now = time.monotonic()
    if cached is None or now - cached[0] > BACKLOG_CACHE_SECONDS:
        cached = (now, outbox.current().counts()["queued"])
        current_app.extensions["backlog"] = cached
    if cached[1] >= ceiling:
        raise ApiError.one(
            503, "backlog_full", "Too many reviews waiting",
            "More reviews are waiting for Klaviyo than it can take soon; try again later.",
            headers={"Retry-After": "60"},
        )


def check_email_limit(email: str) -> None:
    """One address may only post so often (WIDGET_EMAIL_LIMIT), whatever its IP."""
    if not current_app.config["RATELIMIT_ENABLED"]:
        return
    key = hashlib.sha256(email.lower().encode()).hexdigest()[:32]  # no address in storage
    strategy = limiter.limiter
    for item in parse_many(current_app.config["WIDGET_EMAIL_LIMIT"]):
        if not strategy.hit(item, "email", key):
            reset = strategy.get_window_stats(item, "email", key).reset_time
            raise ApiError.one(
                429, "throttled", "Too many reviews from this address",
                f"This email address has sent {item.amount} reviews recently; try again "
                "later.",
                pointer="/data/attributes/email",
                headers={"Retry-After": str(max(1, int(reset - time.time()) + 1))},
            )


def fingerprint(review: dict[str, Any]) -> str:
    """Same author email, product and text: the same review, however often it is sent."""
    attributes = review["data"]["attributes"]
    product = attributes.get("product") or {}
    parts = (attributes["email"].lower(), attributes["review_type"],
             product.get("integration_key", ""), product.get("external_id", ""),
             " ".join(attributes["content"].split()).lower())
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
