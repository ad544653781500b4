"""Drains the outbox to Klaviyo at the pace Klaviyo allows, as a thread or the `send` command.

Each step is one call: a send, or (private key set) a lookup of a send whose answer was lost
(widget/delivery/reconcile.py). Outcomes are written with retries: a database that fails
just after Klaviyo answered must not leave the row to be sent twice.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import click
from flask import Flask, current_app
from sqlalchemy.exc import SQLAlchemyError

from widget.background import Loop
from widget.delivery import reconcile
from widget.delivery.events import Report
from widget.delivery.outbox import Outbox, Submission, utcnow
from widget.delivery.pacing import SEND, Pacer, Slot, wait_for_slot
from widget.klaviyo import (
    KlaviyoClient,
    KlaviyoError,
    KlaviyoKeyMissing,
    KlaviyoRateLimited,
    KlaviyoRejected,
    KlaviyoTimeout,
    KlaviyoUnavailable,
    next_page,
)

log = logging.getLogger(__name__)

# Klaviyo always sends Retry-After with a 429; this is only for a 429 without one.
DEFAULT_RETRY_AFTER = 5.0
# How often a sender looks for rows left in `sending` by a process that died.
RECLAIM_EVERY_SECONDS = 5.0
# How often the log repeats that KLAVIYO_PUBLIC_KEY is missing.
MISSING_KEY_LOG_EVERY_SECONDS = 300.0
# How often a sender deletes delivered rows older than OUTBOX_PURGE_DELIVERED_DAYS (and once
# as it starts). Several senders doing it is harmless: the second finds nothing to delete.
PURGE_EVERY_SECONDS = 3600.0
# An outcome that cannot be written is tried again after these delays (about 15 s in all,
# well inside SENDER_RECLAIM_SECONDS), then left to the reclaim.
RECORD_RETRY_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0, 4.0, 8.0)
# How long a lookup waits for a slot for its next page before trying again later.
LOOKUP_PAGE_PATIENCE = 5.0


class Sender(Loop):
    """One delivery loop: wait for a due row and a slot, send, record the outcome."""

    thread_name = "outbox-sender"

    def __init__(self, config: Mapping[str, Any], outbox: Outbox, pacer: Pacer,
                 client_factory: Callable[[Mapping[str, Any]], KlaviyoClient] = KlaviyoClient):
        super().__init__()
        self.config = config
        self.outbox = outbox
        self.pacer = pacer
        self.client_factory = client_factory
        # Each outcome is counted (and, webhooks on, announced) in its own transaction.
        self.report = Report(bool(config.get("WIDGET_WEBHOOK_URL")),
                             (config.get("KLAVIYO_PUBLIC_KEY"), config.get("KLAVIYO_PRIVATE_KEY")))
        self._last_reclaim = 0.0
        self._last_purge: float | None = None
        self._last_missing_key_log = -MISSING_KEY_LOG_EVERY_SECONDS

    def notify(self) -> None:
        """A new row was committed: look now rather than at the next poll."""
        self.wake.set()

    def run(self) -> None:
        """Loop until stopped; each thread has its own client (sessions are not shared)."""
        client = self.client_factory(self.config)
        log.info("sender started pace=%s", self.config["SENDER_RATE_LIMITS"])
        try:
            while not self.stopping.is_set():
                self.wake.clear()  # cleared first, so a notify() during step() is not lost
                try:
                    wait = self.step(client)
                except Exception:  # the loop must outlive any one bad row or a lost database
                    log.exception("sender step failed")
                    wait = self.config["SENDER_POLL_SECONDS"] * 4
                if wait > 0:
                    self.wake.wait(wait)
        finally:
            client.close()
            log.info("sender stopped")

    def step(self, client: KlaviyoClient) -> float:
        """Do at most one call (a send or a lookup); return how long to sleep before the
        next step."""
        poll = self.config["SENDER_POLL_SECONDS"]
        if not self.config["KLAVIYO_PUBLIC_KEY"]:
            self._log_missing_key()
            return poll * 4
        self._reclaim_if_due()
        self._purge_if_due()
        due_at = self.outbox.next_due_at()
        if due_at is None:
            return poll
        not_yet = (due_at - utcnow()).total_seconds()
        if not_yet > 0:
            return min(not_yet, poll)
        slot = self.pacer.try_acquire(SEND)
        if not slot.granted:
            return slot.wait
        submission = self.outbox.claim_due()
        if submission is None:  # another sender took it; our slot is spent in vain, safely
            return 0.0
        if submission.unknown_since is not None and self.config["KLAVIYO_PRIVATE_KEY"]:
            self.reconcile(client, submission, slot)
        else:
            self.deliver(client, submission, slot)
        return 0.0

    def deliver(self, client: KlaviyoClient, submission: Submission, slot: Slot) -> None:
        """Send one claimed row and record what happened to it."""
        max_age = timedelta(hours=self.config["SENDER_MAX_AGE_HOURS"])
        if utcnow() - submission.age_from > max_age:
            reason = f"not delivered within {self.config['SENDER_MAX_AGE_HOURS']:g} hours"
            self._record(self.outbox.mark_dead, submission.id, status=None, error=reason,
                         also=self.report.outcome("expired", submission.id, submission.body,
                                                  "dead", reason=reason, status=None))
            self._log(submission, "expired", None, 0.0)
            return
        if submission.unknown_since is not None:  # no key to look it up with
            self._record(self.outbox.mark_resend, submission.id)
        slot = self.pacer.leaving(slot)
        if not slot.granted:
            self.held_back(submission)
            return
        started, sent_at = time.monotonic(), utcnow()
        try:
            status = client.create_review(submission.body.encode("utf-8"))
        except KlaviyoRateLimited as error:
            self.throttled(submission, error)
        except KlaviyoRejected as error:
            self._record(self.outbox.mark_dead, submission.id, status=error.status,
                         error=error.detail,
                         also=self.report.outcome("rejected", submission.id, submission.body,
                                                  "dead", reason=error.detail,
                                                  status=error.status))
            self._log(submission, "rejected", error.status, 0.0)
        except KlaviyoTimeout as error:
            self.unanswered(submission, error, sent_at)
        except KlaviyoError as error:
            wait = self.backoff(submission.attempts)
            if error.retry_after:
                wait = max(wait, error.retry_after)
            self._record(self.outbox.retry_at, submission.id,
                         utcnow() + timedelta(seconds=wait), status=error.status,
                         error=error.detail, also=self.report.outcome("unavailable"))
            self._log(submission, "unavailable", error.status, wait)
        else:
            self._record(self.outbox.mark_delivered, submission.id, status,
                         also=self.report.outcome("delivered", submission.id, submission.body,
                                                  "delivered"))
            self._log(submission, "delivered", status, 0.0, time.monotonic() - started)
        finally:
            self.pacer.observe(slot, client.last_reading)

    def unanswered(self, submission: Submission, error: KlaviyoError, sent_at: datetime) -> None:
        """Sent, but unanswered: Klaviyo may have created it. With the private key it is
        looked up before it is sent again; without, it is sent again and flagged."""
        if self.config["KLAVIYO_PRIVATE_KEY"]:
            wait = self.lookup_gap()
            self._record(self.outbox.mark_unknown, submission.id, sent_at,
                         utcnow() + timedelta(seconds=wait),
                         error=f"{error.detail}; looking it up in Klaviyo before sending "
                               "it again", also=self.report.outcome("timeout"))
        else:
            wait = self.backoff(submission.attempts)
            self._record(self.outbox.retry_at, submission.id,
                         utcnow() + timedelta(seconds=wait), status=None, error=error.detail,
                         possible_duplicate=True, also=self.report.outcome("timeout"))
        self._log(submission, "timeout", None, wait)

    def reconcile(self, client: KlaviyoClient, submission: Submission, slot: Slot) -> None:
        """Look an unanswered send up in Klaviyo: found, it is delivered; not found, it is
        looked for again until SENDER_RECONCILE_SECONDS have passed, then sent again."""
        slot = self.pacer.leaving(slot)
        if not slot.granted:
            self.held_back(submission)
            return
        params: dict[str, str] | None = reconcile.lookup_params(submission)
        found: list[str] = []
        try:
            for page in range(1, reconcile.MAX_PAGES + 1):
                try:
                    document = client.list_reviews(params)
                finally:
                    self.pacer.observe(slot, client.last_reading)
                ids = reconcile.matches(document, submission)
                taken = self.outbox.klaviyo_ids_taken(ids, but=submission.id)
                found = [review_id for review_id in ids if review_id not in taken]
                params = next_page(document, params)
                if found or params is None or page == reconcile.MAX_PAGES:
                    break  # past MAX_PAGES of candidates, it counts as not found
                slot = wait_for_slot(self.pacer, SEND, LOOKUP_PAGE_PATIENCE)
                if not slot.granted:
                    raise KlaviyoUnavailable("no slot for the next page of the lookup")
        except KlaviyoRateLimited as error:
            self.throttled(submission, error)
            return
        except (KlaviyoRejected, KlaviyoKeyMissing) as error:
            # The key cannot read reviews (revoked, no scope): at least once, flagged.
            log.error("cannot look up submission %s in Klaviyo (%s): sending it again",
                      submission.id, error.detail)
            self._record(self.outbox.mark_resend, submission.id)
            self._record(self.outbox.retry_at, submission.id, utcnow(), status=error.status,
                         error=f"lookup refused: {error.detail}", count_attempt=False)
            self._log(submission, "lookup-refused", error.status, 0.0)
            return
        except KlaviyoError as error:
            wait = self.backoff(submission.attempts)
            self._record(self.outbox.retry_at, submission.id,
                         utcnow() + timedelta(seconds=wait), status=error.status,
                         error=f"lookup failed: {error.detail}", count_attempt=False)
            self._log(submission, "lookup-unavailable", error.status, wait)
            return
        if found:
            self._record(self.outbox.mark_delivered, submission.id, None,
                         klaviyo_review_id=found[0],
                         note="found in Klaviyo after a send that went unanswered",
                         also=self.report.outcome("delivered", submission.id, submission.body,
                                                  "delivered", klaviyo_review_id=found[0]))
            self._log(submission, "found", None, 0.0)
            return
        waited = (utcnow() - submission.unknown_since).total_seconds()
        patience = self.config["SENDER_RECONCILE_SECONDS"]
        if waited >= patience:
            self._record(self.outbox.mark_resend, submission.id)
            self._record(self.outbox.retry_at, submission.id, utcnow(), status=None,
                         error=f"not found in Klaviyo {waited:.0f}s after a send that went "
                               "unanswered: sending it again", count_attempt=False)
            self._log(submission, "not-found", None, 0.0)
            return
        wait = min(self.lookup_gap(), patience - waited)
        self._record(self.outbox.retry_at, submission.id, utcnow() + timedelta(seconds=wait),
                     status=None, error=f"sent without an answer, not in Klaviyo yet: looking "
                                        f"again in {wait:.0f}s", count_attempt=False)
        self._log(submission, "looking", None, wait)

    def held_back(self, submission: Submission) -> None:
        """No call may go on the slot taken before the row was claimed: another sender got a
        429 (or the storage failed) meanwhile, or the claim took so long that the slot went
        stale. The row is put back untouched rather than sent during Klaviyo's Retry-After."""
        self.outbox.retry_at(submission.id, utcnow(), status=None, count_attempt=False,
                             error="held back: every sender is paused, or the slot went stale")

    def throttled(self, submission: Submission, error: KlaviyoError) -> None:
        """A 429: every sender waits for its Retry-After; the row is not to blame."""
        wait = error.retry_after if error.retry_after is not None else DEFAULT_RETRY_AFTER
        self.pacer.pause(wait)
        self._record(self.outbox.retry_at, submission.id, utcnow() + timedelta(seconds=wait),
                     status=error.status, error=error.detail, count_attempt=False,
                     also=self.report.outcome("throttled"))
        self._log(submission, "throttled", error.status, wait)

    def lookup_gap(self) -> float:
        """Seconds between lookups of an unanswered send (and before the first)."""
        return max(1.0, self.config["SENDER_RECONCILE_SECONDS"] / 8)

    def _record(self, write: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        """Write an outcome, trying again for a while when the database fails (a row left
        in `sending` would wait for the reclaim and then be looked up or sent again)."""
        delays = iter(RECORD_RETRY_DELAYS)
        while True:
            try:
                write(*args, **kwargs)
                return
            except SQLAlchemyError as error:
                delay = next(delays, None)
                if delay is None or self.stopping.is_set():
                    raise
                log.warning("recording an outcome failed (%s); trying again in %.1fs",
                            type(error).__name__, delay)
                self.stopping.wait(delay)

    def backoff(self, attempts: int) -> float:
        return backoff(self.config, attempts)

    def _reclaim_if_due(self) -> None:
        now = time.monotonic()
        stale_after = self.config["SENDER_RECLAIM_SECONDS"]
        if now - self._last_reclaim < min(RECLAIM_EVERY_SECONDS, stale_after):
            return
        self._last_reclaim = now
        count = self.outbox.reclaim_stale(timedelta(seconds=stale_after))
        if count:
            log.warning("reclaimed %d submissions left in sending by a stopped sender", count)

    def _purge_if_due(self) -> None:
        days = self.config["OUTBOX_PURGE_DELIVERED_DAYS"]
        now = time.monotonic()
        if days <= 0 or (self._last_purge is not None
                         and now - self._last_purge < PURGE_EVERY_SECONDS):
            return
        self._last_purge = now
        count = self.outbox.purge_delivered(timedelta(days=days))
        if count:
            log.info("purged %d delivered submissions older than %g days", count, days)

    def _log_missing_key(self) -> None:
        now = time.monotonic()
        if now - self._last_missing_key_log >= MISSING_KEY_LOG_EVERY_SECONDS:
            self._last_missing_key_log = now
            waiting = self.outbox.counts()["queued"]
            log.warning("KLAVIYO_PUBLIC_KEY is not set: %d submissions wait in the outbox "
                        "until it is", waiting)

    @staticmethod
    def _log(submission: Submission, outcome: str, status: int | None, wait: float,
             took: float | None = None) -> None:
        # One line per attempt; never the body or the email (personal data).
        log.info("send id=%s attempt=%d outcome=%s status=%s wait=%.2fs%s", submission.id,
                 submission.attempts, outcome, status if status is not None else "-", wait,
                 f" took={took:.3f}s" if took is not None else "")


def init_app(app: Flask) -> None:
    """This process's sender (on the outbox and the pacer); its thread runs when
    WIDGET_SENDER=thread."""
    sender = Sender(app.config, app.extensions["outbox"], app.extensions["pacer"])
    app.extensions["sender"] = sender
    if app.config["WIDGET_SENDER"] == "thread" and not _in_cli_command():
        sender.start()


def _in_cli_command() -> bool:
    """True inside `flask <command>` other than `run`: commands must not start a sender."""
    context = click.get_current_context(silent=True)
    return context is not None and context.info_name not in (None, "run")


def current() -> Sender:
    return current_app.extensions["sender"]


def backoff(config: Mapping[str, Any], attempts: int) -> float:
    """Exponential backoff with jitter: base * 2**(attempts-1), capped, times 0.5 to 1
    (SENDER_BACKOFF_BASE_SECONDS, SENDER_BACKOFF_MAX_SECONDS); the webhooks wait the same."""
    base = config["SENDER_BACKOFF_BASE_SECONDS"]
    cap = config["SENDER_BACKOFF_MAX_SECONDS"]
    return min(cap, base * 2 ** max(0, attempts - 1)) * random.uniform(0.5, 1.0)
