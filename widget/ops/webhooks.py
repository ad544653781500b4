"""Sends the events of widget/delivery/events.py to WIDGET_WEBHOOK_URL, beside the sender.

A loop of its own (a thread where the sender runs: the web process, or the `worker` role),
so a receiver that is slow or down delays nothing but its own events: never a submission,
never a delivery. Each event is POSTed once claimed, signed (`X-Widget-Signature:
sha256=<hex HMAC-SHA256 of the body>` with WIDGET_WEBHOOK_SECRET), and deleted once the
receiver answers 2xx; anything else is tried again with backoff (SENDER_BACKOFF_*), for
MAX_AGE, then dropped with a log line. Delivery is at least once: a process killed mid-send
leaves its event to be sent again after LEASE. The loop also watches for a stuck queue.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import Flask, current_app
from sqlalchemy.exc import SQLAlchemyError

from widget.background import Loop
from widget.delivery.events import EventQueue
from widget.delivery.outbox import utcnow
from widget.delivery.sender import _in_cli_command, backoff

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Widget-Signature"
# Seconds for each POST: a receiver has this long to answer.
CONNECT_TIMEOUT, READ_TIMEOUT = 3.05, 5.0
# A claimed event is sent again after this long if its sender never said how it went.
LEASE = timedelta(seconds=60)
# An event not received by then is dropped: a receiver gone that long wants no history.
MAX_AGE = timedelta(hours=72)
# How often the loop checks whether the queue is stuck.
STUCK_CHECK_SECONDS = 5.0
STARS = "★★★★★"


def signature(secret: str, body: bytes) -> str:
    """The X-Widget-Signature value of `body`."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def slack_text(event: Mapping[str, Any]) -> str:
    """One Slack message line for an event (`&`, `<`, `>` escaped as Slack asks)."""
    kind = event["type"]
    if kind == "queue.stuck":
        text = (f"Review queue stuck: the oldest of {event['waiting']} waiting reviews has "
                f"waited {event['oldest_queued_seconds'] // 60} minutes (submission "
                f"{event['id']})")
    else:
        what = {"review.accepted": "New review", "review.delivered": "Review delivered to "
                "Klaviyo", "review.dead": "Review not delivered"}.get(kind, kind)
        rating = event.get("rating")
        stars = f" {STARS[:rating]}" if isinstance(rating, int) and 1 <= rating <= 5 else ""
        product = event.get("product") or {}
        on = (f" on {product.get('integration_key')} product {product.get('external_id')}"
              if product else "")
        text = f"{what}{stars} ({event.get('review_type')}{on}): “{event.get('excerpt')}”"
        if kind == "review.dead":
            text += f" Reason: {event.get('reason')}"
        text += f" (submission {event['id']})"
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Notifier(Loop):
    """One loop: watch for a stuck queue, then send the oldest due event."""

    thread_name = "webhook-sender"

    def __init__(self, config: Mapping[str, Any], queue: EventQueue) -> None:
        super().__init__()
        self.config = config
        self.queue = queue
        self.url: str = config["WIDGET_WEBHOOK_URL"]
        self._last_stuck_check = -STUCK_CHECK_SECONDS

    @property
    def host(self) -> str:
        """Where events go, for logs: the host only (a Slack URL's path is its secret)."""
        return urlsplit(self.url).hostname or "?"

    def run(self) -> None:
        session = requests.Session()  # this thread's own
        log.info("webhook sender started host=%s format=%s", self.host,
                 self.config["WIDGET_WEBHOOK_FORMAT"])
        try:
            while not self.stopping.is_set():
                try:
                    wait = self.step(session)
                except Exception:  # the loop outlives a lost database or an odd event
                    log.exception("webhook step failed")
                    wait = self.config["SENDER_POLL_SECONDS"] * 4
                if wait > 0:
                    self.stopping.wait(wait)
        finally:
            session.close()

    def step(self, session: requests.Session) -> float:
        """Send at most one event; return how long to sleep before the next step."""
        self._watch_stuck()
        event = self.queue.claim(LEASE)
        if event is None:
            return self.config["SENDER_POLL_SECONDS"]
        if utcnow() - event.created_at > MAX_AGE:
            log.error("webhook event %d dropped: not received within %s (%d attempts)",
                      event.id, MAX_AGE, event.attempts)
            self.queue.sent(event.id)
            return 0.0
        payload = json.loads(event.payload)
        error = self.post(session, payload)
        if error is None:
            self.queue.sent(event.id)
            log.info("webhook event=%s id=%d attempt=%d outcome=sent", payload["type"],
                     event.id, event.attempts)
            return 0.0
        wait = backoff(self.config, event.attempts)
        self.queue.retry_at(event.id, utcnow() + timedelta(seconds=wait), error)
        log.warning("webhook event=%s id=%d attempt=%d outcome=failed error=%s wait=%.1fs",
                    payload["type"], event.id, event.attempts, error, wait)
        return 0.0

    def post(self, session: requests.Session, payload: Mapping[str, Any]) -> str | None:
        """POST one event; None when the receiver took it, else what went wrong."""
        if self.config["WIDGET_WEBHOOK_FORMAT"] == "slack":
            body = json.dumps({"text": slack_text(payload)}, ensure_ascii=False)
        else:
            body = json.dumps(payload, ensure_ascii=False)
        data = body.encode("utf-8")
        headers = {"Content-Type": "application/json", "User-Agent": "klaviyo-review-widget",
                   "X-Widget-Event": payload["type"]}
        secret = self.config["WIDGET_WEBHOOK_SECRET"]
        if secret:
            headers[SIGNATURE_HEADER] = signature(secret, data)
        started = time.monotonic()
        try:
            response = session.post(self.url, data=data, headers=headers,
                                    timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                                    allow_redirects=False)
        except requests.RequestException as error:
            return f"no answer ({type(error).__name__})"
        response.close()
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code} after {time.monotonic() - started:.2f}s"

    def _watch_stuck(self) -> None:
        now = time.monotonic()
        if now - self._last_stuck_check < STUCK_CHECK_SECONDS:
            return
        self._last_stuck_check = now
        minutes = self.config["WIDGET_STUCK_MINUTES"]
        try:
            if self.queue.watch_stuck(timedelta(minutes=minutes)):
                log.warning("queue stuck: a review has waited more than %g minutes", minutes)
        except SQLAlchemyError as error:
            log.warning("cannot check the queue for a stuck review: %s", type(error).__name__)


def init_app(app: Flask) -> None:
    """The event queue (read by /readyz and /metrics), and with WIDGET_WEBHOOK_URL set, the
    loop that sends it; it runs beside the sender (here with WIDGET_SENDER=thread, in
    `flask send` otherwise)."""
    queue = EventQueue(app.extensions["outbox"].engine)
    app.extensions["webhook_events"] = queue
    if not app.config["WIDGET_WEBHOOK_URL"]:
        return
    if not app.config["WIDGET_WEBHOOK_SECRET"] and app.config["WIDGET_WEBHOOK_FORMAT"] == "json":
        log.warning("WIDGET_WEBHOOK_SECRET is not set: webhook events go out unsigned")
    notifier = Notifier(app.config, queue)
    app.extensions["notifier"] = notifier
    if app.config["WIDGET_SENDER"] == "thread" and not _in_cli_command():
        notifier.start()


def current() -> Notifier | None:
    """This process's webhook loop (None without WIDGET_WEBHOOK_URL)."""
    return current_app.extensions.get("notifier")
