"""Who may post a review, and how often: form tokens, honeypot, Origin, backlog, email limits.

- The widget's form carries a signed, time-limited token (itsdangerous) issued when the form
  is rendered: a post needs it unless WIDGET_OPEN_API is on, and its form must have been
  shown at least WIDGET_TOKEN_MIN_SECONDS before (people take that long to write a review;
  scripts do not). It is good for the product it was issued for and for
  WIDGET_TOKEN_MAX_POSTS posts; the form's script renews it before it expires.
- A honeypot field, invisible to people, must stay empty.
- A browser post (it carries `Origin`) must come from this service or an allowed storefront.
- The outbox may only grow so far beyond what Klaviyo can take (a backlog ceiling), and one
  email address may only post so often.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode
from itsdangerous.serializer import Serializer
from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerSecond, parse_many

from widget.delivery import outbox
from widget.errors import ApiError
from widget.extensions import limiter

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Review-Token"
HONEYPOT_HEADER = "X-Review-Honeypot"
TOKEN_SALT = "review-form"
# How long a counted backlog is reused: counting on every post would cost a query each.
BACKLOG_CACHE_SECONDS = 2.0


class FormTokens(URLSafeTimedSerializer):
    """itsdangerous' URL-safe timed tokens, issued in half the time (every form page issues
    one): the signer is built once, not for each token, and zlib is not tried on a payload
    of 70 bytes of JSON, which it never shortens. The tokens are the same bytes."""

    def __init__(self, secret_key: str | bytes, salt: str) -> None:
        super().__init__(secret_key, salt=salt)
        self._signer = self.make_signer()  # it keeps no state between tokens

    def dump_payload(self, obj: Any) -> bytes:
        return base64_encode(Serializer.dump_payload(self, obj))

    def dumps(self, obj: Any, salt: str | bytes | None = None) -> str:
        signer = self._signer if salt is None else self.make_signer(salt)
        return signer.sign(self.dump_payload(obj)).decode("utf-8")


def _serializer() -> FormTokens:
    """This app's token serializer, built once (it keeps no state between calls)."""
    serializer = current_app.extensions.get("form_tokens")
    if serializer is None:
        serializer = current_app.extensions["form_tokens"] = FormTokens(
            current_app.config["SECRET_KEY"], salt=TOKEN_SALT)
    return serializer


@dataclass(frozen=True)
class TokenClaims:
    """What a valid form token says: its own id (uses are counted by it), the product it
    was issued for ("" for a store review), and when its form was first shown."""

    nonce: str
    product: str
    first_shown: float


def product_key(integration: str | None, external_id: str | None) -> str:
    """How a token names its product: "shopify:123", or "" for none (a store review)."""
    return f"{integration}:{external_id}" if external_id else ""


def issue_token(product: str, first_shown: float | None = None) -> str:
    """A token for one rendering of the form of `product` (see product_key)."""
    return _serializer().dumps({"n": secrets.token_urlsafe(8), "p": product,
                                "t0": int(first_shown if first_shown is not None
                                          else time.time())})


def renew_token(old: str | None, product: str) -> str:
    """A fresh token for the same form: it keeps the time the form was first shown when the
    old token is ours and of this product (so renewing never makes a post "too fast"),
    whatever its age (a tab left open for days keeps what was typed)."""
    try:
        claims = _claims(*_serializer().loads(old or "", return_timestamp=True))
    except BadSignature:
        claims = None
    if claims is None or claims.product != product:
        return issue_token(product)
    return issue_token(product, claims.first_shown)


def _claims(payload: Any, signed: Any) -> TokenClaims | None:
    if not isinstance(payload, dict) or not isinstance(payload.get("n"), str):
        return None
    product = payload.get("p")
    first = payload.get("t0", signed.timestamp())
    if not isinstance(product, str) or not isinstance(first, int | float):
        return None
    return TokenClaims(payload["n"], product, float(first))


def refuse(code: str, title: str, detail: str, **kwargs: Any) -> ApiError:
    return ApiError.one(403, code, title, detail, **kwargs)


def check_token(token: str | None, *, required: bool) -> TokenClaims | None:
    """Refuse a missing (when required), forged, expired, too-quick or used-up form token;
    the claims of a good one (None when there is none and none is required)."""
    if not token:
        if required:
            raise refuse(
                "token_required", "Form token required",
                "Reviews are taken from the review form only: reload the form and send it "
                "again. (Other clients need WIDGET_OPEN_API=true on this service.)",
                parameter=TOKEN_HEADER,
            )
        return None
    config = current_app.config
    try:
        claims = _claims(*_serializer().loads(
            token, max_age=config["WIDGET_TOKEN_MAX_AGE_SECONDS"], return_timestamp=True))
    except SignatureExpired:
        raise refuse("token_expired", "Form expired",
                     "The form was open too long: reload it and send the review again.",
                     parameter=TOKEN_HEADER) from None
    except BadSignature:
        claims = None
    if claims is None:
        raise refuse("token_invalid", "Invalid form token",
                     "The form token is not one this service issued: reload the form.",
                     parameter=TOKEN_HEADER)
    waited = time.time() - claims.first_shown
    if waited < config["WIDGET_TOKEN_MIN_SECONDS"]:
        raise refuse("too_fast", "Sent too quickly",
                     f"The form was sent {waited:.0f} s after it was opened; that is faster "
                     "than a person writes. Wait a moment and send it again.",
                     parameter=TOKEN_HEADER)
    count_token_use(claims)
    return claims


def count_token_use(claims: TokenClaims) -> None:
    """A token is good for WIDGET_TOKEN_MAX_POSTS posts, counted in the limits storage for
    as long as the token lives."""
    config = current_app.config
    if not config["RATELIMIT_ENABLED"]:
        return
    item = RateLimitItemPerSecond(config["WIDGET_TOKEN_MAX_POSTS"],
                                  config["WIDGET_TOKEN_MAX_AGE_SECONDS"])
    if not _limit("hit", item, "form-token", claims.nonce):
        raise refuse("token_used_up", "Form sent too often",
                     f"This form was sent {item.amount} times already: reload it to send "
                     "another review.", parameter=TOKEN_HEADER)


def check_token_product(claims: TokenClaims | None, review: dict[str, Any]) -> None:
    """A form token is good for the product its form was shown for, and no other."""
    if claims is None:
        return
    product = review["data"]["attributes"].get("product") or {}
    sent = product_key(product.get("integration_key"), product.get("external_id"))
    if sent != claims.product:
        raise refuse("token_wrong_product", "Form of another product",
                     "This form was shown for another product: reload the form of the "
                     "product you review.", pointer="/data/attributes/product")


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


class Backlog:
    """503 with Retry-After when the outbox holds more than Klaviyo can take for a while.
    The count is reused for BACKLOG_CACHE_SECONDS: counting on every post costs a query."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self.counted: tuple[float, int] | None = None  # (monotonic time, queued rows)

    def check(self) -> None:
        now = time.monotonic()
        if self.counted is None or now - self.counted[0] > BACKLOG_CACHE_SECONDS:
            self.counted = (now, outbox.current().counts()["queued"])
        if self.counted[1] >= self.ceiling:
            raise ApiError.one(
                503, "backlog_full", "Too many reviews waiting",
                "More reviews are waiting for Klaviyo than it can take soon; try again later.",
                headers={"Retry-After": "60"},
            )


def backlog() -> Backlog:
    """This app's backlog ceiling."""
    return current_app.extensions["backlog"]


def init_app(app: Flask) -> None:
    """The backlog ceiling, its count shared by this process's requests."""
    app.extensions["backlog"] = Backlog(app.config["WIDGET_BACKLOG_LIMIT"])


def _email_key(email: str, order: str | None = None) -> str:
    """The address (and order) as a digest: no address in the limits storage."""
    text = email.lower() if order is None else f"{email.lower()}\n{order}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def check_email_limit(review: dict[str, Any]) -> None:
    """One address may only send so many stored reviews (WIDGET_EMAIL_LIMIT), whatever its
    IP; the reviews of one order count once, up to a review per product of an order's page
    and the shop's. Only looks: count_email() counts a review once it is stored."""
    if not current_app.config["RATELIMIT_ENABLED"]:
        return
    email, order = _email_and_order(review)
    if order is not None:
        item, key = _order_item(), _email_key(email, order)
        if not _limit("test", item, "email-order", key):
            raise _email_throttled(item, "email-order", key, said=f"This email address has "
                                   f"sent {item.amount} reviews for this order")
        stats = _limit("get_window_stats", item, "email-order", key)
        if stats is not True and stats.remaining < item.amount:
            return  # this order is counted already
    for item in parse_many(current_app.config["WIDGET_EMAIL_LIMIT"]):
        if not _limit("test", item, "email", _email_key(email)):
            raise _email_throttled(item, "email", _email_key(email), said=f"This email "
                                   f"address has sent {item.amount} reviews recently")


def _email_throttled(item: RateLimitItem, *identifiers: str, said: str) -> ApiError:
    stats = _limit("get_window_stats", item, *identifiers)
    reset = stats.reset_time if stats is not True else time.time() + 60
    return ApiError.one(
        429, "throttled", "Too many reviews from this address", f"{said}; try again later.",
        pointer="/data/attributes/email",
        headers={"Retry-After": str(max(1, int(reset - time.time()) + 1))},
    )


def count_email(review: dict[str, Any]) -> None:
    """Count one stored review against its address (an order's, once for the order)."""
    if not current_app.config["RATELIMIT_ENABLED"]:
        return
    email, order = _email_and_order(review)
    if order is not None:
        item, key = _order_item(), _email_key(email, order)
        stats = _limit("get_window_stats", item, "email-order", key)
        _limit("hit", item, "email-order", key)
        if stats is not True and stats.remaining < item.amount:
            return  # not the order's first
    for item in parse_many(current_app.config["WIDGET_EMAIL_LIMIT"]):
        _limit("hit", item, "email", _email_key(email))


def _email_and_order(review: dict[str, Any]) -> tuple[str, str | None]:
    order = ((review["data"].get("relationships") or {}).get("order") or {}).get("data") or {}
    return review["data"]["attributes"]["email"], order.get("id")


def _order_item() -> RateLimitItem:
    """Reviews one address may send for one order: a product's each, and the shop's."""
    return RateLimitItemPerDay(current_app.config["WIDGET_MAX_ORDER_PRODUCTS"] + 1)


def _limit(method: str, item: RateLimitItem, *identifiers: str) -> Any:
    """A call to the web limits' strategy under this deployment's key prefix. When the
    storage fails (Redis down), the answer is True ("allowed") and the log says so:
    reviews are still taken, as flask-limiter's own limits fall back to memory."""
    try:
        return getattr(limiter.limiter, method)(
            item, current_app.config["RATELIMIT_KEY_PREFIX"], *identifiers)
    except Exception as error:  # each storage raises its own driver's errors
        log.warning("limits storage failed (%s): %s not counted", type(error).__name__,
                    identifiers[0])
        return True


def fingerprint(review: dict[str, Any]) -> str:
    """Same author email, product and text: the same review, however often it is sent."""
    attributes = review["data"]["attributes"]
    product = attributes.get("product") or {}
    return outbox.fingerprint(attributes["email"], attributes["review_type"],
                             product.get("integration_key", ""),
                             product.get("external_id", ""), attributes["content"])
