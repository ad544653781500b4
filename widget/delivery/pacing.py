"""The budget of calls to Klaviyo, shared by every process through RATELIMIT_STORAGE_URI.

Klaviyo counts 10/s and 150/min per account in fixed windows, reads included, on arrival.
Moving windows bound every interval of our calls wherever Klaviyo's window edges fall. The
default SENDER_RATE_LIMITS, "8 per 2 seconds;140/minute", keeps any one second at 8 even
when network delays bunch calls together (up to a second of jitter), and any minute at 140;
the steady rate, 140/min, is the same as with 8/s. A 429 pauses every process sharing the
storage until its Retry-After has passed.

A per-process budget (memory://) dies with its process; a new process seeds it with the
calls the outbox shows in the last longest window, so a crash and restart cannot start a
fresh minute on top of a spent one.

When the storage cannot be reached (Redis down), no process can know what the others have
spent, so none calls Klaviyo: `try_acquire` answers "wait" and the log says so once. When it
answers again and our windows are empty (a Redis restarted without its data), calls resume
only once the longest window has passed since the outage began, so the calls made just before
it still count.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import Flask, current_app
from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from widget.delivery.outbox import utcnow

log = logging.getLogger(__name__)

# How often a sender asks an unreachable storage again (seconds).
STORAGE_RETRY_SECONDS = 1.0


class Pacer:
    """Hands out permission for one call at a time, or says how long to wait."""

    def __init__(self, storage_uri: str, rate_limits: str, account: str = "klaviyo",
                 key_prefix: str = "widget",
                 storage_options: Mapping[str, Any] | None = None) -> None:
        options = dict(storage_options or {}) if storage_uri.startswith(("redis", "rediss")) \
            else {}
        self.storage: Storage = storage_from_string(storage_uri, **options)
        self.limiter = MovingWindowRateLimiter(self.storage)
        # Hit the short windows first: a short-window slot spent in vain costs nothing,
        # a minute slot spent in vain costs throughput.
        self.items: list[RateLimitItem] = sorted(
            parse_many(rate_limits), key=lambda item: item.get_expiry()
        )
        self.account = f"{key_prefix}:{account}"
        self.pause_key = f"{key_prefix}:{account}-pause-until"
        # A 429 seen by this process holds it even when the storage could not record it.
        self._local_pause_until = 0.0
        self._outage_since: float | None = None
        self._hold_until = 0.0
        self._lock = threading.Lock()

    def pause_remaining(self) -> float:
        """Seconds until Klaviyo's last Retry-After has passed (0 when not paused)."""
        shared = self.storage.get(self.pause_key)
        return max(0.0, max(shared, self._local_pause_until) - time.time())

    def pause(self, seconds: float) -> None:
        """Stop every process's calls for `seconds` (rounded up to whole seconds)."""
        until = math.ceil(time.time() + seconds)
        self._local_pause_until = max(self._local_pause_until, until)
        try:
            if until > self.storage.get(self.pause_key):
                self.storage.clear(self.pause_key)
                self.storage.incr(self.pause_key, expiry=math.ceil(seconds) + 1, amount=until)
        except Exception as error:  # the storage is down: try_acquire holds every call anyway
            self._storage_failed(error)

    def try_acquire(self) -> float:
        """Take one call's slot: 0.0 when granted, else the seconds to wait before asking again."""
        try:
            wait = self._try_acquire()
        except Exception as error:  # redis errors, limits' StorageError: never call blind
            self._storage_failed(error)
            return STORAGE_RETRY_SECONDS
        return wait

    def _try_acquire(self) -> float:
        wait = self.pause_remaining()
        if self._outage_since is not None:
            self._storage_recovered()
        hold = self._hold_until - time.time()
        if hold > 0:
            return hold
        if wait > 0:
            return wait
        for item in reversed(self.items):  # look at the long windows without spending
            if not self.limiter.test(item, self.account):
                return self._until_free(item)
        for item in self.items:
            if not self.limiter.hit(item, self.account):
                return self._until_free(item)
        return 0.0

    def _storage_failed(self, error: Exception) -> None:
        with self._lock:
            if self._outage_since is None:
                self._outage_since = time.time()
                log.error("pacing storage unreachable (%s): no calls to Klaviyo until it "
                          "answers again, so that no process can exceed Klaviyo's limits",
                          type(error).__name__)

    def _storage_recovered(self) -> None:
        with self._lock:
            since, self._outage_since = self._outage_since, None
        if since is None:
            return
        longest = self.items[-1]
        stats = self.limiter.get_window_stats(longest, self.account)
        if stats.remaining >= longest.amount:  # our windows are gone with the old storage
            self._hold_until = since + longest.get_expiry()
        log.warning("pacing storage answers again after %.1fs%s", time.time() - since,
                    f"; calls resume in {self._hold_until - time.time():.1f}s, when the "
                    "calls made before the outage are out of every window"
                    if self._hold_until > time.time() else "")

    @property
    def longest_window(self) -> float:
        """Seconds of the longest window (60 for 140/minute)."""
        return float(self.items[-1].get_expiry())

    def seed(self, calls: int) -> None:
        """Count `calls` made lately by a process that died, as if made now (later than they
        were: they leave the windows late, never early). For a per-process (memory://)
        budget, whose windows die with the process; a restart must not start from zero."""
        for item in self.items:
            for _ in range(min(calls, item.amount)):
                self.limiter.hit(item, self.account)

    def may_call_now(self) -> bool:
        """A last look just before a call: False while paused or when the storage fails."""
        try:
            return self.pause_remaining() == 0 and self._hold_until <= time.time()
        except Exception as error:
            self._storage_failed(error)
            return False

    def storage_ok(self) -> bool:
        """The storage answers (for /readyz)."""
        try:
            return bool(self.storage.check())
        except Exception:
            return False

    def _until_free(self, item: RateLimitItem) -> float:
        reset = self.limiter.get_window_stats(item, self.account).reset_time
        return max(0.01, reset - time.time())

    def reset(self) -> None:
        """Forget every slot and pause (tests and the CLI use this)."""
        for item in self.items:
            self.limiter.clear(item, self.account)
        self.storage.clear(self.pause_key)
        self._local_pause_until = 0.0
        self._hold_until = 0.0


def init_app(app: Flask) -> None:
    """This process's pacer. A per-process (memory://) budget starts from the calls the
    outbox shows in the last longest window, so a restart cannot start a fresh minute on
    top of a spent one."""
    config = app.config
    pacer = Pacer(config["RATELIMIT_STORAGE_URI"], config["SENDER_RATE_LIMITS"],
                  key_prefix=config["RATELIMIT_KEY_PREFIX"],
                  storage_options=config["RATELIMIT_STORAGE_OPTIONS"])
    if config["RATELIMIT_STORAGE_URI"].startswith("memory://"):
        since = utcnow() - timedelta(seconds=pacer.longest_window)
        pacer.seed(app.extensions["outbox"].touched_since(since))
    app.extensions["pacer"] = pacer


def current() -> Pacer:
    return current_app.extensions["pacer"]
