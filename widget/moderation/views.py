"""The moderation pages: Klaviyo's reviews (from the mirror) and the local delivery queue.

Read-only, behind HTTP Basic (failed logins limited per address and overall: logins.py),
never cached or framed, no script at all. The list, the overview and the CSV export read the
mirror (widget/reviews) and cost no call to Klaviyo. The detail page reads its review and
events live: that read takes a slot from the pacer that submissions use (one budget,
150/min) and is cached for MODERATION_CACHE_SECONDS.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from collections.abc import Callable, Hashable
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    make_response,
    render_template,
    request,
    stream_with_context,
)
from flask_limiter.util import get_remote_address
from markupsafe import Markup
from marshmallow import ValidationError
from werkzeug.datastructures import Authorization

from widget.cache import ReadCache
from widget.delivery import outbox
from widget.delivery.pacing import READ, Pacer, Slot, wait_for_slot
from widget.klaviyo import (
    KlaviyoClient,
    KlaviyoError,
    KlaviyoKeyMissing,
    KlaviyoRateLimited,
    KlaviyoTimeout,
    KlaviyoUnavailable,
)
from widget.moderation import export, logins, overview
from widget.moderation.display import HELPERS, extra_attributes
from widget.moderation.listing import count_matches, every_match, read_page
from widget.moderation.logins import LoginThrottle
from widget.moderation.query import ListQuery, ReviewPath
from widget.reviews import display
from widget.reviews import store as mirror

bp = Blueprint("moderation", __name__, url_prefix="/moderation")
log = logging.getLogger(__name__)

# No script, no framing, nothing from elsewhere but review photos (Klaviyo serves them from
# its CDN over https, or we sent them as data: URIs); <img> never runs script.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' https: data:; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
REALM = 'Basic realm="Review moderation", charset="UTF-8"'
# Klaviyo sends Retry-After with a 429; these are for when it does not say.
RETRY_AFTER_THROTTLED = 5
RETRY_AFTER_TROUBLE = 30
OUTBOX_ROWS_SHOWN = 100
# How long a process reuses the mirror's sync state (the pages' "synced ... ago").
SYNC_STATE_SECONDS = 1.0
# One for every request: building a schema copies its fields (70 µs, a few percent of the
# list page); a load keeps no state on it.
LIST_QUERY = ListQuery()


class Busy(Exception):
    """No slot in the shared Klaviyo budget within MODERATION_WAIT_SECONDS."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"no Klaviyo slot for {wait:.1f}s")
        self.wait = wait


def init_app(app: Flask) -> None:
    """Build the pages' per-app state (read cache, login limits) and register the routes."""
    config = app.config
    app.extensions["moderation_cache"] = ReadCache(config["MODERATION_CACHE_SECONDS"])
    app.extensions["moderation_sync_state"] = ReadCache(SYNC_STATE_SECONDS)
    app.extensions["moderation_logins"] = LoginThrottle(
        logins.parse("MODERATION_LOGIN_LIMIT", config["MODERATION_LOGIN_LIMIT"]),
        logins.parse("MODERATION_LOGIN_GLOBAL_LIMIT", config["MODERATION_LOGIN_GLOBAL_LIMIT"]),
        key_prefix=config["RATELIMIT_KEY_PREFIX"], enabled=config["RATELIMIT_ENABLED"])
    app.register_blueprint(bp)


def read_cache() -> ReadCache:
    """This app's cache of Klaviyo reads."""
    return current_app.extensions["moderation_cache"]


def login_throttle() -> LoginThrottle:
    """This app's limits on failed logins."""
    return current_app.extensions["moderation_logins"]


# -- access -------------------------------------------------------------------------------
@bp.before_request
def require_moderator() -> Response | None:
    """403 "closed" while no password is set; 429 while the address or everyone is locked
    out by failed logins; 401 without the right credentials."""
    config = current_app.config
    if not config["MODERATION_PASSWORD"]:
        return page("moderation/closed.html", 403)
    throttle, address = login_throttle(), get_remote_address()
    # Checked before the credentials, so a locked guesser learns nothing from its guesses.
    retry_after = throttle.retry_after(address)
    if retry_after is not None:
        return page("moderation/locked.html", 429, {"Retry-After": str(retry_after)},
                    retry_after=retry_after)
    if not is_moderator(request.authorization, config["MODERATION_USERNAME"],
                        config["MODERATION_PASSWORD"]):
        # Only a request that sent credentials is a failed login; never log what it sent.
        if request.headers.get("Authorization"):
            locks = throttle.failed(address)
            if locks:
                log.warning("moderation login refused path=%s; %s", request.path,
                            "; ".join(locks))
            else:
                log.info("moderation login refused path=%s", request.path)
        return page("moderation/login.html", 401, {"WWW-Authenticate": REALM})
    return None


def _same(given: str | None, expected: str) -> bool:
    # Digests have one length, so the time taken says nothing about either value.
    return hmac.compare_digest(hashlib.sha256((given or "").encode()).digest(),
                               hashlib.sha256(expected.encode()).digest())


def is_moderator(auth: Authorization | None, username: str, password: str) -> bool:
    if auth is None or auth.type != "basic":
        return False
    return _same(auth.username, username) & _same(auth.password, password)


@bp.after_request
def private_page(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


# -- pages --------------------------------------------------------------------------------
@bp.get("/", strict_slashes=False)
def index() -> Response:
    """The list. Its filters, count, rows and page links depend only on the query and the
    mirror, so they are rendered once per query and mirror generation and kept (with the
    display's pages, widget/reviews/display.py): a view looked at again costs a lookup.
    Only the mirror's freshness is rendered on each request."""
    body = display.current().page(("moderation", request.query_string), list_body)
    return page("moderation/index.html", body=body, **sync_state())


def list_body() -> Markup:
    listing = LIST_QUERY.load(request.args)  # a ValidationError is a 400 page, never kept
    engine = mirror.current().engine
    found = read_page(engine, listing)
    return list_html(listing=listing, form=listing.query(), errors={},
                     reviews=found.reviews, total=count_matches(engine, listing),
                     next_query=listing.query(found.next) if found.next else None,
                     prev_query=listing.query(found.prev) if found.prev else None)


def list_html(**context: Any) -> Markup:
    return Markup(render_template("moderation/_list.html", **HELPERS, **context))


@bp.get("/reviews.csv")
def reviews_csv() -> Response:
    listing = LIST_QUERY.load(request.args)
    batches = every_match(mirror.current().engine, listing)
    return Response(stream_with_context(export.chunks(batches)),
                    mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="reviews.csv"'})


@bp.get("/overview")
def overview_page() -> Response:
    now = outbox.utcnow()
    figures = display.current().page(("overview", overview.monday_of(now)),
                                     lambda: overview.figures(mirror.current().engine, now))
    return page("moderation/overview.html", figures=figures,
                queue=overview.queue_health(outbox.current()), **sync_state())


@bp.get("/reviews/<review_id>")
def review(review_id: str) -> Response:
    review_id = ReviewPath().load({"id": review_id})["id"]
    document = read(("review", review_id),
                    lambda client: client.get_review(review_id, include_events=True))
    data = document.get("data") or {}
    events = [item for item in document.get("included") or [] if item.get("type") == "event"]
    return page("moderation/review.html", review=data, events=events,
                extra=extra_attributes(data.get("attributes") or {}),
                submission=outbox.current().by_klaviyo_id(review_id))


@bp.get("/outbox")
def outbox_page() -> Response:
    store = outbox.current()
    return page("moderation/outbox.html", counts=store.counts(), limit=OUTBOX_ROWS_SHOWN,
                waiting=store.rows(("queued", "sending"), OUTBOX_ROWS_SHOWN),
                dead=store.rows(("dead",), OUTBOX_ROWS_SHOWN),
                doubted=store.doubted_deliveries(OUTBOX_ROWS_SHOWN), now=outbox.utcnow())


@bp.get("/<path:rest>")
def unknown(rest: str) -> Response:
    abort(404)  # after the login check, so unknown URLs say nothing to strangers


# -- reading from Klaviyo -----------------------------------------------------------------
def read(key: Hashable, call: Callable[[KlaviyoClient], dict[str, Any]]) -> dict[str, Any]:
    """One call to Klaviyo, answered from the cache while it is fresh, else paced."""
    return read_cache().fetch(key, lambda: load(key, call))


def load(key: Hashable, call: Callable[[KlaviyoClient], dict[str, Any]]) -> dict[str, Any]:
    """Klaviyo's answer, read within the shared pace."""
    config = current_app.config
    if not config["KLAVIYO_PRIVATE_KEY"]:
        raise KlaviyoKeyMissing("KLAVIYO_PRIVATE_KEY is not set")
    pacer = current_app.extensions["pacer"]
    slot = take_slot(pacer, config["MODERATION_WAIT_SECONDS"])
    client = KlaviyoClient(config)  # one per request: sessions are not shared by threads
    started = time.monotonic()
    try:
        document = call(client)
    except KlaviyoRateLimited as error:
        pacer.pause(error.retry_after or RETRY_AFTER_THROTTLED)  # the sender waits too
        raise
    finally:
        pacer.observe(slot, client.last_reading)
        client.close()
    log.info("moderation read %s took=%.3fs", key[0] if isinstance(key, tuple) else key,
             time.monotonic() - started)
    return document


def take_slot(pacer: Pacer, patience: float) -> Slot:
    """A read's slot within `patience` seconds (reads take a bounded share of the budget,
    behind deliveries); Busy when none comes in time."""
    slot = wait_for_slot(pacer, READ, patience)
    if not slot.granted:
        raise Busy(slot.wait)
    return slot


# -- when things go wrong -----------------------------------------------------------------
def trouble(error: KlaviyoError) -> tuple[str, int, int | None]:
    """(what happened, our status, seconds until a retry may help) for a failed read."""
    if isinstance(error, KlaviyoKeyMissing):
        return "no_key", 503, None
    if isinstance(error, KlaviyoRateLimited):
        return "throttled", 503, math.ceil(error.retry_after or RETRY_AFTER_THROTTLED)
    if isinstance(error, KlaviyoTimeout):
        return "timeout", 504, RETRY_AFTER_TROUBLE
    if isinstance(error, KlaviyoUnavailable):
        kind = "down" if error.status else "unreachable"
        return kind, 503, math.ceil(error.retry_after or RETRY_AFTER_TROUBLE)
    kinds = {401: ("key_refused", 502), 403: ("scope", 502), 404: ("not_found", 404)}
    kind, status = kinds.get(error.status or 0, ("refused", 502))
    return kind, status, None


@bp.errorhandler(KlaviyoError)
def klaviyo_failed(error: KlaviyoError) -> Response:
    kind, status, retry_after = trouble(error)
    log.warning("moderation read failed kind=%s status=%s", kind, error.status or "-")
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    return page("moderation/trouble.html", status, headers, kind=kind, error=error,
                retry_after=retry_after)


@bp.errorhandler(Busy)
def busy(error: Busy) -> Response:
    retry_after = max(1, math.ceil(error.wait))
    return page("moderation/trouble.html", 503, {"Retry-After": str(retry_after)}, kind="busy",
                error=None, retry_after=retry_after)


@bp.errorhandler(ValidationError)
def invalid(error: ValidationError) -> Response:
    if request.endpoint == "moderation.review":
        return page("moderation/trouble.html", 404, kind="not_found", error=None,
                    retry_after=None)
    body = list_html(listing=None, form=request.args, errors=error.messages, reviews=[],
                     total=None, next_query=None, prev_query=None)
    return page("moderation/index.html", 400, body=body, **sync_state())


def sync_state() -> dict[str, Any]:
    """What the list and the overview say about the mirror's freshness: its state is read
    at most once a second per process ("synced 12 minutes ago" a second late is still
    true), and at once after this process's sync wrote it."""
    store = mirror.current()
    state = current_app.extensions["moderation_sync_state"].fetch(
        ("sync", store.local_records), store.state)
    return {"sync": state, "now": outbox.utcnow(),
            "sync_seconds": current_app.config["REVIEWS_SYNC_SECONDS"]}


def page(template: str, status: int = 200, headers: dict[str, str] | None = None,
         **context: Any) -> Response:
    response = make_response(render_template(template, **HELPERS, **context), status)
    response.headers.update(headers or {})
    return response
