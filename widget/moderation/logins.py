"""Failed moderation logins, counted per client address and overall in the web limits' storage.

Only a refused request that carried credentials counts: a browser's first visit carries
none, and its 401 is what makes the browser show the login prompt. While a limit is used up
the address (or, for the overall limit, everyone) gets 429 whatever it sends, the right
password included, so a guess made during a lock learns nothing.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import RateLimiter

from widget.config import ConfigError
from widget.extensions import limiter

log = logging.getLogger(__name__)

# Seconds between attempts to reach a shared storage that failed; meanwhile failures are
# counted in this process, so a Redis outage neither opens the door nor costs each page a
# socket timeout per limit.
STORAGE_RETRY_SECONDS = 30.0
EVERYONE = "*"  # the overall limit's key; no client address looks like it


def parse(setting: str, value: str) -> list[RateLimitItem]:
    """The limits of one setting, or a ConfigError that names it (checked at boot)."""
    try:
        items = parse_many(value)
    except ValueError:
        items = []
    if not items:
        raise ConfigError(f"{setting} must be limits such as '10/minute;50/hour', not {value!r}")
    return items


class LoginThrottle:
    """Per-address and overall limits on failed logins; `enabled` False counts nothing."""

    def __init__(self, per_address: list[RateLimitItem], overall: list[RateLimitItem],
                 key_prefix: str, enabled: bool) -> None:
        self.per_address = per_address
        self.overall = overall
        self.key_prefix = key_prefix
        self.enabled = enabled
        self._fallback: RateLimiter | None = None
        self._shared_down_until = 0.0

    def retry_after(self, address: str) -> int | None:
        """Whole seconds until `address` may try again; None while it is not locked."""
        if not self.enabled:
            return None
        now = time.time()
        waits = [stats.reset_time - now for item, key in self._limits(address)
                 if (stats := self._call("get_window_stats", item, key)).remaining <= 0]
        return max(1, math.ceil(max(waits))) if waits else None

    def failed(self, address: str) -> list[str]:
        """Count one refused login; describe each lock this one started (one per key and
        window, however many requests the lock then refuses)."""
        if not self.enabled:
            return []
        started = []
        for item, key in self._limits(address):
            # Only the hit that took the last try reports, however many arrive together.
            took_last = self._call("hit", item, key)
            stats = self._call("get_window_stats", item, key)
            if took_last and stats.remaining <= 0:
                who = "everyone" if key == EVERYONE else key
                seconds = max(1, math.ceil(stats.reset_time - time.time()))
                started.append(f"logins locked for {who} ({item}) for {seconds} s")
        return started

    def _limits(self, address: str) -> list[tuple[RateLimitItem, str]]:
        return ([(item, address) for item in self.per_address]
                + [(item, EVERYONE) for item in self.overall])

    def _call(self, method: str, item: RateLimitItem, key: str) -> Any:
        identifiers = (self.key_prefix, "moderation-login", key)
        if time.monotonic() >= self._shared_down_until:
            try:
                return getattr(limiter.limiter, method)(item, *identifiers)
            except Exception as error:  # each storage raises its own driver's errors
                log.warning("moderation login limits: storage unreachable (%s); counting in "
                            "this process for %.0f s", type(error).__name__,
                            STORAGE_RETRY_SECONDS)
                self._shared_down_until = time.monotonic() + STORAGE_RETRY_SECONDS
        call: Callable[..., Any] = getattr(self._memory(), method)
        return call(item, *identifiers)

    def _memory(self) -> RateLimiter:
        if self._fallback is None:
            self._fallback = type(limiter.limiter)(MemoryStorage())
        return self._fallback
