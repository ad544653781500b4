"""The pacer's shared state: one small record per Klaviyo account, read and changed atomically.

A `memory://` storage keeps it in this process (its windows die with the process); a Redis
storage keeps it in a hash, changed by optimistic transactions (WATCH/MULTI), so every
process sharing RATELIMIT_STORAGE_URI sees one view of Klaviyo's budget. The record holds
floats only:

- `epoch`: a random marker written once. A Redis that restarted empty (or was flushed) has
  lost it, however fast redis-py reconnected: that is how a lost budget is noticed.
- `pause_until`, `hold_until`: no call before then (a 429's Retry-After; a lost budget).
- `seq`, `last_grant`: how many slots were granted, and when the last one was.
- `limit`, `remaining`, `reset_at`, `observed_seq`: Klaviyo's steady window as its last
  answer's RateLimit-* headers described it, and which grant that answer was for.
- `reads`, `reads_window`: reads granted in the window that ends at `reads_window`.
- `late:<seq>:<granted at>`: a late call's (granted unpaced, or gone long after its slot)
  grant or leaving, then its answer; it counts in the longest window until that window has
  passed since (widget/delivery/pacing.py). Calls on time leave no mark.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from threading import Lock
from typing import Any, TypeVar

import redis

from widget.config import ConfigError

T = TypeVar("T")
State = dict[str, float]
# fn(state) -> (the new state, or None to leave it as it is; the answer)
Change = Callable[[State], tuple[State | None, T]]

# Optimistic transactions that lose a race are tried again; a handful of senders and
# moderators never collide this often.
MAX_TRIES = 50


class MemoryBudget:
    """The record in this process."""

    def __init__(self) -> None:
        self._state: State = {}
        self._lock = Lock()

    def update(self, change: Change[T]) -> T:
        with self._lock:
            new, answer = change(dict(self._state))
            if new is not None:
                self._state = new
            return answer

    def read(self) -> State:
        with self._lock:
            return dict(self._state)

    def clear(self) -> None:
        with self._lock:
            self._state = {}

    def ping(self) -> bool:
        return True


class RedisBudget:
    """The record in a Redis hash shared by every process."""

    def __init__(self, uri: str, key: str, options: Mapping[str, Any]) -> None:
        self.client = redis.Redis.from_url(uri, **options)
        self.key = key

    def update(self, change: Change[T]) -> T:
        for _ in range(MAX_TRIES):
            with self.client.pipeline() as pipe:
                try:
                    pipe.watch(self.key)
                    state = _decode(pipe.hgetall(self.key))
                    new, answer = change(dict(state))
                    if new is None:
                        pipe.unwatch()
                        return answer
                    pipe.multi()
                    pipe.delete(self.key)
                    if new:
                        pipe.hset(self.key, mapping={k: repr(v) for k, v in new.items()})
                    pipe.execute()
                    return answer
                except redis.WatchError:
                    continue
        raise redis.RedisError(f"the pacing record changed under {MAX_TRIES} tries in a row")

    def read(self) -> State:
        return _decode(self.client.hgetall(self.key))

    def clear(self) -> None:
        self.client.delete(self.key)

    def ping(self) -> bool:
        return bool(self.client.ping())


def _decode(raw: Mapping[bytes, bytes]) -> State:
    return {key.decode(): float(value) for key, value in raw.items()}


def budget_for(uri: str, key: str, options: Mapping[str, Any]) -> MemoryBudget | RedisBudget:
    """The record's home for RATELIMIT_STORAGE_URI: this process, or Redis."""
    if uri.startswith("memory://"):
        return MemoryBudget()
    if uri.startswith(("redis://", "rediss://", "unix://")):
        return RedisBudget(uri, key, options)
    raise ConfigError("the sender's pace needs RATELIMIT_STORAGE_URI to be memory:// or a "
                     "Redis URL (redis://, rediss://)")
