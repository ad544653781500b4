"""A small in-process cache of recent Klaviyo reads, so a reload costs no rate-limit slot.

When an answer expires while many requests want it, one of them reads it again and the
others wait for that read (single flight), instead of each taking a slot of the rate limit.

Per process on purpose: it holds reviews (personal data) only for seconds and only in memory.
With several processes a reload may miss once per process, which the shared pacer absorbs.
The form keeps its blank pages in one too (`widget.intake.form.blank_form`, never expiring:
they change only with the code and the settings).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

# Enough for every page a few moderators click through in the cache time; bounds memory.
MAX_ENTRIES = 256


class ReadCache:
    """Answers kept for `seconds` (0 keeps nothing), oldest dropped beyond MAX_ENTRIES."""

    def __init__(self, seconds: float, max_entries: int = MAX_ENTRIES) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._flights: dict[Hashable, Flight] = {}

    def fetch(self, key: Hashable, load: Callable[[], Any]) -> Any:
        """The kept answer, else `load()`'s; concurrent misses of one key share one load
        (its answer, or its error)."""
        value = self.get(key)
        if value is not None:
            return value
        with self._lock:
            flight = self._flights.get(key)
            leading = flight is None
            if leading:
                flight = self._flights[key] = Flight()
        if not leading:
            return flight.outcome()
        try:
            flight.value = load()
            self.put(key, flight.value)
            return flight.value
        except BaseException as error:
            flight.error = error
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()

    def get(self, key: Hashable) -> Any | None:
        """The kept answer, or None when there is none or it is older than `seconds`."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            stored_at, value = entry
            if time.monotonic() - stored_at >= self.seconds:
                del self._entries[key]
                return None
            return value

    def put(self, key: Hashable, value: Any) -> None:
        if self.seconds <= 0:
            return
        with self._lock:
            self._entries[key] = (time.monotonic(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class Flight:
    """One load under way; the requests that wait for it read its outcome."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def outcome(self) -> Any:
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.value
