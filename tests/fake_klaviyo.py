"""A fake Klaviyo: a real HTTP server on loopback, held to the facts in DESIGN.md.

- `POST /client/reviews?company_id=...` answers 202 with an empty body, checks the revision
  header, the media type, the 5 MB cap and the ReviewCreateDTO shape, and records the body.
  Each create also becomes a pending review on the read side (`created`, `reads.reviews`),
  visible there `create_delay(s)` seconds after its 202 (Klaviyo creates asynchronously);
  `on_create` is called with it before the 202 goes out; `on_answer` after every answer.
- Every endpoint shares one account budget in fixed windows (10/s, 150/min by default) that
  start at `origin + k * length` (origin 0: aligned to the clock); over it, 429 with
  `Retry-After` in whole seconds and nothing else. Every admitted answer that is not a 429
  carries `RateLimit-Limit` (per minute), `RateLimit-Remaining` (left in this minute window)
  and `RateLimit-Reset` (whole seconds until it ends, rounded up).
- `other_integration(per_minute)`: another private-key integration of the account spends the
  same budget, evenly spaced; played lazily up to each admission, its calls in `other_calls`.
- Errors are JSON:API `{"errors": [{"id", "status", "code", "title", "detail", "source"}]}`.
- Switches inject failures: `fail_with(503)`, `throttle(retry_after=3)`, `slow(2.0)`,
  `hang()` (or `hang(create=True)`: create, then never answer), `answer_late(s)` (create,
  then answer after s; or `create=False`: a 504 after s), `refuse()` / `accept()`.
- Measurements of our own requests: `window_counts`, `max_in_span`, `peak`, `statuses`;
  of the other integration's: `other_counts`.

Run it by hand with `python -m tests.fake_klaviyo --port 8099`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request
from werkzeug.serving import BaseWSGIServer, make_server

if TYPE_CHECKING:
    from tests.fake_klaviyo_reads import ReadSide

MAX_BODY = 5 * 1024 * 1024
REVISION = "2026-07-15"
JSONAPI = "application/vnd.api+json"
REVIEW_TYPES = {"question", "rating", "review", "store"}
INCENTIVES = {"coupon_or_discount", "employee_review", "free_product", "loyalty_points",
              "other", "paid_promotion", "sweepstakes_entry"}
IMAGE_HOST = "https://images.fake-klaviyo.test"
log = logging.getLogger(__name__)


@dataclass
class Received:
    """One request as the fake saw it."""

    at: float
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int = 0

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Switches:
    fail_status: int | None = None
    fail_remaining: int | None = None  # None: until cleared
    throttle_retry_after: int | None = None
    throttle_remaining: int | None = None  # None: until cleared
    delay_seconds: float = 0.0
    hang: bool = False
    hang_create: bool = False  # hang(create=True): create, then hang the create's answer
    late_seconds: float | None = None
    late_create: bool = True
    late_remaining: int | None = None  # None: until cleared
    create_delay: float = 0.0


@dataclass
class Windows:
    """Fixed windows starting at `origin + k * length`, as Klaviyo counts them (origin 0:
    aligned to the clock; tests pass the start time so the first minute is a whole one)."""

    per_second: int = 10
    per_minute: int = 150
    origin: float = 0.0
    seconds: Counter = field(default_factory=Counter)
    minutes: Counter = field(default_factory=Counter)

    def index(self, now: float, length: float) -> int:
        return math.floor((now - self.origin) / length)

    def left(self, now: float, length: float) -> int:
        """Whole seconds until the window holding `now` ends, rounded up: never shows a window
        ending before it does (at least 1, as a window that holds `now` has not ended)."""
        end = self.origin + (self.index(now, length) + 1) * length
        return max(1, math.ceil(end - now))

    def admit(self, now: float) -> int | None:
        """Count the request, or return the whole seconds until it could be admitted."""
        second, minute = self.index(now, 1), self.index(now, 60)
        if self.minutes[minute] >= self.per_minute:
            return self.left(now, 60)
        if self.seconds[second] >= self.per_second:
            return self.left(now, 1)
        self.seconds[second] += 1
        self.minutes[minute] += 1
        return None

    def headers(self, now: float) -> dict[str, str]:
        """The RateLimit-* headers of an answer admitted at `now` (after it was counted)."""
        used = self.minutes[self.index(now, 60)]
        return {"RateLimit-Limit": str(self.per_minute),
                "RateLimit-Remaining": str(max(0, self.per_minute - used)),
                "RateLimit-Reset": str(self.left(now, 60))}


@dataclass
class OtherIntegration:
    """Another private-key integration of the account: `per_minute` calls a minute, evenly
    spaced from `start` (the first one a spacing after it). Played lazily, no thread."""

    per_minute: int
    start: float
    played: int = 0  # its calls already played (counted or refused)

    def due(self, now: float) -> list[float]:
        """The times of its calls due up to `now` not yet played, marked played."""
        spacing, times = 60 / self.per_minute, []
        while (at := self.start + (self.played + 1) * spacing) <= now:
            times.append(at)
            self.played += 1
        return times


def problem(status: int, code: str, title: str, detail: str, pointer: str | None = None,
            headers: dict[str, str] | None = None) -> Response:
    error: dict[str, Any] = {"id": str(uuid.uuid4()), "status": status, "code": code,
                             "title": title, "detail": detail}
    if pointer:
        error["source"] = {"pointer": pointer}
    return Response(json.dumps({"errors": [error]}), status, headers or {}, content_type=JSONAPI)


def review_errors(body: Any) -> list[tuple[str, str]]:
    """The ReviewCreateDTO rules, as (pointer, detail); empty when the body is valid."""
    errors: list[tuple[str, str]] = []
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        return [("/data", "'data' is a required object")]
    if data.get("type") != "review":
        errors.append(("/data/type", "must be 'review'"))
    attrs = data.get("attributes")
    if not isinstance(attrs, dict):
        return errors + [("/data/attributes", "'attributes' is a required object")]
    for name in ("review_type", "email", "author", "content"):
        if not isinstance(attrs.get(name), str):
            errors.append((f"/data/attributes/{name}", f"'{name}' is a required string"))
    if attrs.get("review_type") not in REVIEW_TYPES:
        errors.append(("/data/attributes/review_type", "not a valid review type"))
    rating = attrs.get("rating")
    if rating is not None and (isinstance(rating, bool) or rating not in (1, 2, 3, 4, 5)):
        errors.append(("/data/attributes/rating", "must be an integer from 1 to 5"))
    incentive = attrs.get("incentive_type")
    if incentive is not None and incentive not in INCENTIVES:
        errors.append(("/data/attributes/incentive_type", "not a valid incentive type"))
    product = attrs.get("product")
    if product is not None and not (
        isinstance(product, dict) and isinstance(product.get("external_id"), str)
        and product.get("integration_key") in ("shopify", "woocommerce")
    ):
        errors.append(("/data/attributes/product", "needs external_id and integration_key"))
    images = attrs.get("images")
    if images is not None and not (
        isinstance(images, list) and all(isinstance(i, str) for i in images)
    ):
        errors.append(("/data/attributes/images", "must be a list of strings"))
    for i, question in enumerate(attrs.get("custom_questions") or []):
        if not (isinstance(question, dict) and isinstance(question.get("id"), str)
                and isinstance(question.get("answers"), list)):
            errors.append((f"/data/attributes/custom_questions/{i}", "needs id and answers"))
    order = (data.get("relationships") or {}).get("order")
    if order is not None and not (
        isinstance(order, dict) and isinstance(order.get("data"), dict)
        and order["data"].get("type") == "order" and isinstance(order["data"].get("id"), str)
    ):
        errors.append(("/data/relationships/order/data", "needs type 'order' and an id"))
    return errors


class FakeKlaviyo:
    """Start with `start()` (or as a context manager); `url` is its base URL."""

    def __init__(self, port: int = 0, per_second: int = 10, per_minute: int = 150,
                 public_key: str = "PUBKEY", origin: float = 0.0) -> None:
        self.port = port
        self.public_key = public_key
        self.windows = Windows(per_second, per_minute, origin)
        self.switches = Switches()
        self.received: list[Received] = []
        self.created: list[dict[str, Any]] = []  # review resources created, in order
        self.on_create: Callable[[dict[str, Any]], None] | None = None
        # Called with each request as it was seen, after its answer is made (tests change
        # the fake's data between two pages of a listing with it).
        self.on_answer: Callable[[Received], None] | None = None
        self.other: OtherIntegration | None = None
        self.other_calls: list[float] = []  # the other integration's counted calls
        self.reads: ReadSide  # set by register_reads
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.pause_until = 0.0  # the end of the last Retry-After the fake gave
        self.during_pause: list[Received] = []
        self.throttled_at: list[tuple[float, float]] = []  # (answered at, pause ends at)
        self.server: BaseWSGIServer | None = None
        self.thread: threading.Thread | None = None
        self.app = self._make_app()

    # -- lifecycle --------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def origin(self) -> float:
        return self.windows.origin

    def start(self) -> FakeKlaviyo:
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self) -> FakeKlaviyo:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- switches ---------------------------------------------------------------------
    def fail_with(self, status: int = 503, count: int | None = None) -> None:
        """Answer `status` to the next `count` requests (all, until cleared, when None)."""
        self.switches.fail_status, self.switches.fail_remaining = status, count

    def throttle(self, retry_after: int = 3, count: int | None = None) -> None:
        """Answer 429 with this Retry-After to the next `count` requests (all when None)."""
        self.switches.throttle_retry_after = retry_after
        self.switches.throttle_remaining = count

    def slow(self, seconds: float) -> None:
        self.switches.delay_seconds = seconds

    def hang(self, create: bool = False) -> None:
        """Accept requests and never answer (until `clear()` or `stop()`, then 503). With
        `create`, only creates hang, after the review is created (then 202): the answer that
        is lost while the review exists; reads and invalid bodies answer as usual."""
        self.release.clear()
        if create:
            self.switches.hang_create = True
        else:
            self.switches.hang = True

    def answer_late(self, seconds: float, create: bool = True, count: int | None = None) -> None:
        """Answer the next `count` creates (all, until cleared, when None) `seconds` late:
        with `create`, the review is created at once and the 202 waits; without, the fake
        waits and answers 504, creating nothing. `clear()` or `stop()` ends the wait."""
        self.release.clear()
        sw = self.switches
        sw.late_seconds, sw.late_create, sw.late_remaining = seconds, create, count

    def create_delay(self, seconds: float) -> None:
        """Show each created review on the reads only `seconds` after its 202."""
        self.switches.create_delay = seconds

    def other_integration(self, per_minute: int | None) -> None:
        """From now on, another integration spends `per_minute` calls a minute of the same
        budget (None or 0: it stops). Not a failure switch: `clear()` leaves it on."""
        if per_minute is not None and per_minute < 0:
            raise ValueError("per_minute must be positive")
        with self.lock:
            self.other = OtherIntegration(per_minute, time.time()) if per_minute else None

    def refuse(self) -> None:
        """Stop listening: connections are refused until `accept()`."""
        self.stop()

    def accept(self) -> None:
        self.release.clear()
        self.start()

    def clear(self) -> None:
        """Back to normal behaviour (the other integration, if any, goes on)."""
        self.switches = Switches()
        self.release.set()

    # -- what it saw ------------------------------------------------------------------
    def reviews(self) -> list[dict[str, Any]]:
        """Bodies of the reviews it accepted (202), in arrival order."""
        with self.lock:
            return [r.json() for r in self.received
                    if r.path == "/client/reviews" and r.status == 202]

    def requests(self, path: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.received if path is None or r.path == path]

    def peak(self, window_seconds: int) -> int:
        """The most requests that arrived in one fixed window of that length."""
        return max(self.window_counts(window_seconds).values(), default=0)

    def window_counts(self, seconds: int = 60) -> dict[int, int]:
        """Our requests per fixed window of that length (index relative to `origin`)."""
        with self.lock:
            return self._counts([r.at for r in self.received], seconds)

    def other_counts(self, seconds: int = 60) -> dict[int, int]:
        """The other integration's counted calls per fixed window, played up to now."""
        with self.lock:
            self._play_other(time.time())
            return self._counts(self.other_calls, seconds)

    def max_in_span(self, seconds: float = 60.0) -> int:
        """The most of our requests arriving in any span [t, t + seconds): a sliding window,
        which shows a burst across a fixed window's boundary that `peak` splits in two."""
        with self.lock:
            times = sorted(r.at for r in self.received)
        best, first = 0, 0
        for last, at in enumerate(times):
            while times[first] <= at - seconds:
                first += 1
            best = max(best, last - first + 1)
        return best

    def statuses(self, path: str | None = None) -> Counter[int]:
        """Our requests' statuses (0: not answered yet)."""
        return Counter(r.status for r in self.requests(path))

    def _counts(self, times: list[float], seconds: float) -> dict[int, int]:
        return dict(sorted(Counter(self.windows.index(t, seconds) for t in times).items()))

    def sent_during_pause(self, grace: float) -> list[Received]:
        """Requests that arrived during a Retry-After more than `grace` seconds after the 429
        that started it was answered: sent by a client that could have known of the pause.
        (With several senders, one already past its last check when another receives the 429
        arrives a moment later; `during_pause` counts those too.)"""
        with self.lock:
            return [r for r in self.received
                    if any(start + grace < r.at < end for start, end in self.throttled_at)]

    def wait_for_reviews(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reviews = self.reviews()
            if len(reviews) >= count:
                return reviews
            time.sleep(0.02)
        return self.reviews()

    # -- the HTTP side ----------------------------------------------------------------
    def _make_app(self) -> Flask:
        app = Flask("fake_klaviyo")
        app.config["MAX_CONTENT_LENGTH"] = None

        @app.before_request
        def gate() -> Response | None:
            now = time.time()
            seen = Received(now, request.method, request.path, dict(request.args),
                            dict(request.headers), request.get_data())
            with self.lock:
                self.received.append(seen)
                if now < self.pause_until:
                    self.during_pause.append(seen)
            request.environ["fake.received"] = seen
            return self._injected(now)

        @app.after_request
        def record(response: Response) -> Response:
            seen = request.environ.get("fake.received")
            if seen is not None:
                seen.status = response.status_code
            limits = request.environ.get("fake.ratelimit")
            if limits is not None and response.status_code != 429:
                for name, value in limits.items():
                    response.headers[name] = value
            if self.on_answer is not None and seen is not None:
                self.on_answer(seen)
            return response

        @app.post("/client/reviews")
        def create_client_review() -> Response:
            if (wait := self._take_late(create=False)) is not None:
                self.release.wait(wait)
                return problem(504, "gateway_timeout", "Gateway timeout",
                               "The upstream did not answer in time.")
            if request.headers.get("revision") != REVISION:
                return problem(400, "invalid", "Invalid revision",
                               f"revision header must be {REVISION}")
            if request.args.get("company_id") != self.public_key:
                return problem(400, "invalid", "Invalid company_id", "unknown company_id")
            if request.mimetype != JSONAPI:
                return problem(415, "unsupported_media_type", "Unsupported media type",
                               f"Content-Type must be {JSONAPI}")
            raw = request.get_data()
            if len(raw) > MAX_BODY:
                return problem(413, "payload_too_large", "Request too large",
                               "The request body is larger than 5 MB.")
            try:
                body = json.loads(raw)
            except ValueError:
                return problem(400, "parse_error", "Malformed JSON", "body is not JSON")
            errors = review_errors(body)
            if errors:
                pointer, detail = errors[0]
                return problem(400, "invalid", "Invalid input.", detail, pointer)
            late = self._take_late(create=True)
            self._create(body)
            if self.switches.hang_create:
                self.release.wait(60)
            elif late is not None:
                self.release.wait(late)
            return Response(b"", 202)

        from tests.fake_klaviyo_reads import register_reads  # the read side (moderation)
        register_reads(app, self)
        return app

    def _injected(self, now: float) -> Response | None:
        """The switched-on failure for this request, or the rate limit, or None."""
        sw = self.switches
        if sw.hang:
            self.release.wait(60)
            return problem(503, "unavailable", "Service unavailable", "hung")
        if sw.delay_seconds:
            time.sleep(sw.delay_seconds)
        with self.lock:
            retry_after = sw.throttle_retry_after
            if retry_after is not None and sw.throttle_remaining is not None:
                sw.throttle_remaining -= 1
                if sw.throttle_remaining <= 0:
                    sw.throttle_retry_after = sw.throttle_remaining = None
            status = sw.fail_status if retry_after is None else None
            if status is not None and sw.fail_remaining is not None:
                sw.fail_remaining -= 1
                if sw.fail_remaining <= 0:
                    sw.fail_status = sw.fail_remaining = None
        if retry_after is not None:
            return self._throttled(now, retry_after)
        if status is not None:
            return problem(status, "error", "Injected failure",
                           f"the fake was told to answer {status}")
        with self.lock:
            self._play_other(now)
            retry_after = self.windows.admit(now)
            if retry_after is None:
                request.environ["fake.ratelimit"] = self.windows.headers(now)
        if retry_after is not None:
            return self._throttled(now, retry_after)
        return None

    def _play_other(self, now: float) -> None:
        """Count the other integration's calls due up to `now` (call with the lock held); one
        that finds its window full is refused to it and not counted."""
        if self.other is None:
            return
        for at in self.other.due(now):
            if self.windows.admit(at) is None:
                self.other_calls.append(at)

    def _take_late(self, create: bool) -> float | None:
        """The seconds this create's answer is to wait under `answer_late(create=...)`, or
        None; a create that takes a late answer counts down `count`."""
        with self.lock:
            sw = self.switches
            if sw.late_seconds is None or sw.late_create != create:
                return None
            seconds = sw.late_seconds
            if sw.late_remaining is not None:
                sw.late_remaining -= 1
                if sw.late_remaining <= 0:
                    sw.late_seconds = sw.late_remaining = None
            return seconds

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Make the pending review Klaviyo would make of a valid body, visible on the reads
        after `create_delay`, and mark the request 202 at once (so `reviews()` counts it
        even while its answer waits); then call `on_create`."""
        attrs = body["data"]["attributes"]
        now = time.time()
        review_id = "created-" + uuid.uuid4().hex[:12]
        stamp = datetime.fromtimestamp(now, UTC).isoformat()
        product = attrs.get("product")
        item = (f"${product['integration_key']}:::$default:::{product['external_id']}"
                if product else "$shopify:::$default:::none")
        resource: dict[str, Any] = {
            "type": "review", "id": review_id,
            "attributes": {
                "email": attrs["email"],
                "status": {"value": "pending"},
                "verified": False,
                "review_type": attrs["review_type"],
                "created": stamp,
                "updated": stamp,
                "images": [f"{IMAGE_HOST}/{review_id}/{n}.jpg"
                           for n, _ in enumerate(attrs.get("images") or [], 1)],
                "product": {"url": None, "name": None, "image_url": None,
                            "external_id": product["external_id"]} if product else None,
                "rating": attrs.get("rating"),
                "author": attrs["author"],
                "content": attrs["content"],
                "title": attrs.get("title"),
                "smart_quote": None,
                "public_reply": None,
            },
            "relationships": {"item": {"data": {"type": "catalog-item", "id": item}}},
        }
        with self.lock:
            self.created.append(resource)
            self.reads.reviews.append(resource)
            self.reads.visible_from[review_id] = now + self.switches.create_delay
            seen = request.environ.get("fake.received")
            if seen is not None:
                seen.status = 202
        if self.on_create is not None:
            try:
                self.on_create(resource)
            except Exception:  # a test's hook must not turn the create into a 500
                log.exception("on_create raised; ignored")
        return resource

    def _throttled(self, now: float, retry_after: int) -> Response:
        with self.lock:
            self.pause_until = max(self.pause_until, now + retry_after)
            self.throttled_at.append((now, now + retry_after))
        return problem(429, "throttled", "Request was throttled.",
                       f"Request was throttled. Expected available in {retry_after} seconds.",
                       headers={"Retry-After": str(retry_after)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--public-key", default="PUBKEY")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    fake = FakeKlaviyo(args.port, public_key=args.public_key).start()
    print(f"fake Klaviyo on {fake.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
