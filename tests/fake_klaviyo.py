"""A fake Klaviyo: a real HTTP server on loopback, held to the facts in DESIGN.md.

- `POST /client/reviews?company_id=...` answers 202 with an empty body, checks the revision
  header, the media type, the 5 MB cap and the ReviewCreateDTO shape, and records the body.
- Every endpoint shares one account budget in fixed windows (10/s, 150/min by default);
  over it, 429 with `Retry-After` in whole seconds.
- Errors are JSON:API `{"errors": [{"id", "status", "code", "title", "detail", "source"}]}`.
- Switches inject failures: `fail_with(503)`, `throttle(retry_after=3)`, `slow(2.0)`,
  `hang()`, `refuse()` / `accept()`.

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
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, request
from werkzeug.serving import BaseWSGIServer, make_server

MAX_BODY = 5 * 1024 * 1024
REVISION = "2026-07-15"
JSONAPI = "application/vnd.api+json"
REVIEW_TYPES = {"question", "rating", "review", "store"}
INCENTIVES = {"coupon_or_discount", "employee_review", "free_product", "loyalty_points",
              "other", "paid_promotion", "sweepstakes_entry"}


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


@dataclass
class Windows:
    """Fixed windows aligned to the clock, as Klaviyo counts them."""

    per_second: int = 10
    per_minute: int = 150
    seconds: Counter = field(default_factory=Counter)
    minutes: Counter = field(default_factory=Counter)

    def admit(self, now: float) -> int | None:
        """Count the request, or return the whole seconds until it could be admitted."""
        second, minute = int(now), int(now // 60)
        if self.minutes[minute] >= self.per_minute:
            return math.ceil((minute + 1) * 60 - now)
        if self.seconds[second] >= self.per_second:
            return math.ceil(second + 1 - now)
        self.seconds[second] += 1
        self.minutes[minute] += 1
        return None


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
                 public_key: str = "PUBKEY") -> None:
        self.port = port
        self.public_key = public_key
        self.windows = Windows(per_second, per_minute)
        self.switches = Switches()
        self.received: list[Received] = []
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

    def hang(self) -> None:
        """Accept requests and never answer (until `clear()` or `stop()`)."""
        self.release.clear()
        self.switches.hang = True

    def refuse(self) -> None:
        """Stop listening: connections are refused until `accept()`."""
        self.stop()

    def accept(self) -> None:
        self.release.clear()
        self.start()

    def clear(self) -> None:
        """Back to normal behaviour."""
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
        with self.lock:
            counts = Counter(int(r.at // window_seconds) for r in self.received)
        return max(counts.values(), default=0)

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
            return response

        @app.post("/client/reviews")
        def create_client_review() -> Response:
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
            retry_after = self.windows.admit(now)
        if retry_after is not None:
            return self._throttled(now, retry_after)
        return None

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
