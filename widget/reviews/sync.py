"""Keeps the mirror in step with Klaviyo, within the reads' share of the budget.

- With KLAVIYO_PRIVATE_KEY: `GET /api/reviews`, every status, emails and the catalog item.
  Klaviyo's get_reviews has no `updated` filter, so an incremental sync reads the reviews
  sorted by `-updated` and stops at the first page that reaches the last `updated` seen
  (less an overlap, for clocks and writes in flight). A full pass reads by `created`.
- Without it: `GET /client/reviews` (published reviews only, no emails), which filters on
  `updated` itself. A review unpublished since is not returned at all, so only the next full
  pass drops it.
- Every REVIEWS_SYNC_SECONDS an incremental sync; every REVIEWS_FULL_SYNC_HOURS a full pass,
  which also drops what Klaviyo no longer returns.
- Each page takes a read slot from the shared pacer (deliveries first, reads at most
  REVIEWS_READ_SHARE of each window) and hands its RateLimit-* headers back.
- One syncer at a time across every process: a lease row in the database (reviews_sync),
  taken with one conditional UPDATE and renewed page by page. The `worker` role runs it in
  scale-out (`flask send`), a thread of the web process in the embedded mode.
- Reviews found in Klaviyo that this service delivered (same email, type, product and text)
  get their Klaviyo id on the outbox row, so the two link each other.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import Flask, current_app

from widget.background import Loop
from widget.delivery.outbox import Outbox, utcnow
from widget.delivery.pacing import READ, Pacer, wait_for_slot
from widget.klaviyo import KlaviyoClient, KlaviyoError, KlaviyoRateLimited, next_page
from widget.reviews.store import Mirror, klaviyo_time

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # Klaviyo's most
# An incremental sync reads back this far before the last `updated` it saw.
OVERLAP = timedelta(minutes=5)
# The lease outlives the wait for one page's slot (at most a minute's window) and a call.
LEASE_SECONDS = 150.0
# How long a page waits for a read slot before the sync gives up until its next run.
SLOT_PATIENCE = 90.0
# Klaviyo sends Retry-After with a 429; this is for when it does not.
RETRY_AFTER_THROTTLED = 5.0


@dataclass
class Pass:
    """What one run did."""

    full: bool
    calls: int = 0
    reviews: int = 0
    dropped: int = 0
    error: str | None = None
    seen_updated: list[Any] = field(default_factory=list)


class Syncer(Loop):
    """One sync loop: wait, take the lease, read what changed, write it to the mirror."""

    thread_name = "reviews-sync"

    def __init__(self, config: Mapping[str, Any], mirror: Mirror, outbox: Outbox,
                 pacer: Pacer,
                 client_factory: Callable[[Mapping[str, Any]], KlaviyoClient] = KlaviyoClient):
        super().__init__()
        self.config = config
        self.mirror = mirror
        self.outbox = outbox
        self.pacer = pacer
        self.client_factory = client_factory
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.slot_patience = SLOT_PATIENCE

    def run(self) -> None:
        """Sync every REVIEWS_SYNC_SECONDS until stopped."""
        log.info("reviews sync started every %gs", self.config["REVIEWS_SYNC_SECONDS"])
        while not self.stopping.is_set():
            try:
                self.sync_once()
            except Exception:  # the loop must outlive a lost database or a bad answer
                log.exception("reviews sync failed")
            self.wake.wait(self.config["REVIEWS_SYNC_SECONDS"])
            self.wake.clear()

    def sync_once(self, full: bool | None = None) -> Pass | None:
        """One run: a full pass when due (or asked), else an incremental one. None when
        another process holds the lease, or there is no key to read with."""
        if not (self.config["KLAVIYO_PRIVATE_KEY"] or self.config["KLAVIYO_PUBLIC_KEY"]):
            return None
        if not self.mirror.take_lease(self.holder, LEASE_SECONDS):
            return None
        try:
            return self._sync(full)
        finally:
            self.mirror.release_lease(self.holder)

    def _sync(self, full: bool | None) -> Pass:
        source = "private" if self.config["KLAVIYO_PRIVATE_KEY"] else "public"
        state = self.mirror.state()
        if state.source != source:  # the two endpoints see different reviews: start again
            if state.source is not None:
                log.warning("reviews mirror: the source changed from %s to %s; starting "
                            "again", state.source, source)
            self.mirror.clear()
            self.mirror.record(source=source)
            state = self.mirror.state()
        hours = self.config["REVIEWS_FULL_SYNC_HOURS"]
        if full is None:
            full = (state.last_full_at is None or state.watermark is None
                    or utcnow() - state.last_full_at >= timedelta(hours=hours))
        started = utcnow()
        run = Pass(full=full)
        client = self.client_factory(self.config)
        try:
            self._read(client, source, state.watermark, run)
        except KlaviyoError as error:
            run.error = f"{type(error).__name__}: {error.detail}"
        finally:
            client.close()
        values: dict[str, Any] = {"last_calls": run.calls}
        if run.seen_updated:
            newest = max(run.seen_updated)
            values["watermark"] = max(newest, state.watermark) if state.watermark else newest
        if run.error is None:
            if full:
                run.dropped = self.mirror.drop_unseen(started)
                values["last_full_at"] = started
            values |= {"last_sync_at": utcnow(), "last_error": None}
            log.info("reviews sync (%s, %s): %d reviews in %d calls, %d dropped",
                     "full" if full else "incremental", source, run.reviews, run.calls,
                     run.dropped)
        else:
            values |= {"last_error": run.error, "last_error_at": utcnow()}
            log.warning("reviews sync (%s) stopped after %d calls: %s",
                        "full" if full else "incremental", run.calls, run.error)
        self.mirror.record(**values)
        return run

    def _read(self, client: KlaviyoClient, source: str, watermark: Any, run: Pass) -> None:
        since = watermark - OVERLAP if watermark is not None and not run.full else None
        params = self._first_page(source, since)
        while params is not None:
            slot = wait_for_slot(self.pacer, READ, self.slot_patience, self.stopping)
            if self.stopping.is_set():  # an unfinished full pass must drop nothing
                raise KlaviyoError("stopped before the sync was done")
            if not slot.granted:
                raise KlaviyoError("no read slot in Klaviyo's budget within "
                                   f"{self.slot_patience:g}s (deliveries come first)")
            self.mirror.take_lease(self.holder, LEASE_SECONDS)
            slot = self.pacer.leaving(slot)  # after a durable write: it may leave late
            if not slot.granted:
                continue  # paused meanwhile, or the slot went stale: wait for another
            try:
                document = (client.list_reviews(params) if source == "private"
                            else client.list_client_reviews(params))
            except KlaviyoRateLimited as error:
                self.pacer.pause(error.retry_after or RETRY_AFTER_THROTTLED)
                raise
            finally:
                self.pacer.observe(slot, client.last_reading)
                run.calls += 1
            page = document.get("data") or []
            self.mirror.upsert(page)
            self.outbox.link_klaviyo_ids(page)
            run.reviews += len(page)
            updated = [klaviyo_time((r.get("attributes") or {}).get("updated")) for r in page]
            run.seen_updated += [u for u in updated if u is not None]
            if source == "private" and since is not None and updated and \
                    min(u for u in updated if u is not None) < since:
                return  # sorted by -updated: the rest is older than what we have
            params = next_page(document, params)

    @staticmethod
    def _first_page(source: str, since: Any) -> dict[str, str]:
        """The first page's query. A full pass (no `since`) reads by `created`, which no
        edit changes: sorted by `updated`, a review edited during the pass would move to a
        page already read, go unseen, and be dropped at its end."""
        size = str(PAGE_SIZE)
        if since is None:
            params = {"sort": "created", "page[size]": size}
            if source == "private":
                params["filter"] = 'equals(status,"all")'
            return params
        if source == "private":
            return {"filter": 'equals(status,"all")', "sort": "-updated", "page[size]": size}
        return {"filter": f"greater-or-equal(updated,{since.isoformat()}+00:00)",
                "sort": "updated", "page[size]": size}


def init_app(app: Flask) -> None:
    """This process's syncer; its thread runs beside the sender thread (WIDGET_SENDER=thread),
    otherwise in the `worker` (`flask send`)."""
    from widget.delivery.sender import _in_cli_command

    syncer = Syncer(app.config, app.extensions["mirror"], app.extensions["outbox"],
                    app.extensions["pacer"])
    app.extensions["syncer"] = syncer
    if app.config["WIDGET_SENDER"] == "thread" and app.config["REVIEWS_SYNC_SECONDS"] > 0 \
            and not _in_cli_command():
        syncer.start()


def current() -> Syncer:
    return current_app.extensions["syncer"]
