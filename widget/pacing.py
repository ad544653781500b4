"""The budget of calls to Klaviyo, shared by every process through RATELIMIT_STORAGE_URI.

Klaviyo counts 10/s and 150/min per account in fixed windows, reads included, on arrival.
Moving windows bound every interval of our calls wherever Klaviyo's window edges fall. The
default SENDER_RATE_LIMITS, "8 per 2 seconds;140/minute", keeps any one second at 8 even
when network delays bunch calls together (up to a second of jitter), and any minute at 140;
the steady rate, 140/min, is the same as with 8/s. A 429 pauses every process sharing the
storage until its Retry-After has passed.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

PAUSE_KEY = "klaviyo-pause-until"


class Pacer:
    """Hands out permission for one call at a time, or says how long to wait."""

    def __init__(self, storage_uri: str, rate_limits: str, account: str = "klaviyo") -> None:
        self.storage: Storage = storage_from_string(storage_uri)
        self.limiter = MovingWindowRateLimiter(self.storage)
        # Hit the short windows first: a short-window slot spent in vain costs nothing,
        # a minute slot spent in vain costs throughput.
        self.items: list[RateLimitItem] = sorted(
            parse_many(rate_limits), key=lambda item: item.get_expiry()
        )
        self.account = account

    def pause_remaining(self) -> float:
        """Seconds until Klaviyo's last Retry-After has passed (0 when not paused)."""
        return max(0.0, self.storage.get(PAUSE_KEY) - time.time())

    def pause(self, seconds: float) -> None:
        """Stop every process's calls for `seconds` (rounded up to whole seconds)."""
        until = math.ceil(time.time() + seconds)
        if until > self.storage.get(PAUSE_KEY):
            self.storage.clear(PAUSE_KEY)
            self.storage.incr(PAUSE_KEY, expiry=math.ceil(seconds) + 1, amount=until)

    def try_acquire(self) -> float:
        """Take one call's slot: 0.0 when granted, else the seconds to wait before asking again."""
        wait = self.pause_remaining()
        if wait > 0:
            return wait
        for item in reversed(self.items):  # look at the long windows without spending
            if not self.limiter.test(item, self.account):
                return self._until_free(item)
        for item in self.items:
            if not self.limiter.hit(item, self.account):
                return self._until_free(item)
        return 0.0

    def _until_free(self, item: RateLimitItem) -> float:
        reset = self.limiter.get_window_stats(item, self.account).reset_time
        return max(0.01, reset - time.time())

    def reset(self) -> None:
        """Forget every slot and pause (tests and the CLI use this)."""
        for item in self.items:
            self.limiter.clear(item, self.account)
        self.storage.clear(PAUSE_KEY)
