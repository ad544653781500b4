"""The budget of calls to Klaviyo, paced by what Klaviyo reports and shared by every process.

Klaviyo counts every review call of an account (reads included, other integrations' too) in
fixed windows: a burst window of a second and a steady window of a minute (10/s and 150/min
at tier M, 3/s and 60/min at S; this service is not told the tier). Every answer but a 429
carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` for the steady window,
and Klaviyo recommends pacing by them. So:

- **The view.** Every answer's headers (creates, reads and lookups alike) update one view of
  the steady window in the shared record (widget/delivery/budget.py): how many calls are
  left and when the window ends. Calls granted after the call an answer was for are not in
  its count yet, so they are taken off what it says is left.
- **The spread.** What is left is spread evenly over what remains of the window: the next
  call comes (window end - last call) / (left + 1/2) after the last one, so a window's last
  call falls half a gap before its end and calls stay evenly spaced across windows. Never
  faster than twice the window's average rate, which keeps under every tier's burst limit
  (Klaviyo's bursts allow 3 to 6 times the steady average).
- **The ceiling.** SENDER_RATE_LIMITS (default Klaviyo's tier M, "10 per 2 seconds;150/
  minute") is kept in moving windows as well, whatever the view says; it is the whole pace
  when no answer carried the headers yet. "10 per 2 seconds" keeps any one second under 10
  even when network delays bunch calls together. The windows count a call from its slot,
  Klaviyo when it arrives, and a sender claims its row in between (a durable write: seconds
  on a busy disk). So a call granted before any answer paced the calls, or that leaves more
  than half the spread's least gap after its slot (0.1 s at 150/minute; any call when the
  longest window holds fewer than 20), is marked in the record (`late:`, at its grant or as
  it leaves: Pacer.leaving) and counts until the longest window has passed since its answer
  (since it left, should none come); one not gone within half that window is put back, so
  that its mark is in while its slot still counts. Calls on time write nothing more, and the
  longest window keeps one call of room for them (149 of 150): of the calls Klaviyo counts
  in any 60 s, the last one granted counted all the others but those on time from slots
  within a least gap before its own window (half a gap to leave, half the network's jitter),
  and paced grants are at least that gap apart: one at most.
- **Writes before reads.** Reads (moderation, the mirror's sync) take at most
  REVIEWS_READ_SHARE of each steady window; lookups of unanswered sends are deliveries' own
  calls (they stand in for a send) and are not limited by the share.
- **A 429** pauses every process until its Retry-After has passed.
- **A lost budget.** When the storage cannot be reached no process can know what the others
  have spent, so none calls Klaviyo (the log says so once). When it answers again, or when it
  answered all along but restarted empty (redis-py reconnects on its own; the record's
  `epoch` is gone), nobody calls until the longest window has passed since that was noticed,
  so that the calls made before still count. A new process finding no record holds too when
  the outbox shows calls within that window.
- A per-process budget (memory://) dies with its process; a new process seeds its moving
  windows with the calls the outbox shows in the last longest window.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from flask import Flask, current_app
from limits import RateLimitItem, parse, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from limits.util import WindowStats

from widget.delivery.budget import State, budget_for
from widget.delivery.outbox import utcnow
from widget.klaviyo import RateLimitReading

log = logging.getLogger(__name__)

SEND = "send"
READ = "read"
# How often a sender asks an unreachable storage again (seconds).
STORAGE_RETRY_SECONDS = 1.0
# Never faster than this many times the steady window's average rate (see the docstring).
MAX_RATE_OVER_AVERAGE = 2.0
# A longest window of at least this many calls keeps one of them as room (see the docstring).
JITTER_ROOM_FROM = 20
# A call that leaves later than this share of the spread's least gap after its slot is late
# (see the docstring): the rest of the gap is the network's jitter.
LATE_SHARE_OF_GAP = 0.5
# A call not gone within this share of the longest window after its slot is put back: a late
# call's mark must be in the record while its slot still counts in the window.
STALE_SHARE_OF_WINDOW = 0.5
LATE = "late:"  # the record's marks of late calls: late:<seq>:<slot's time> = left, answered


@dataclass(frozen=True)
class Slot:
    """The pacer's answer: granted (wait 0) as grant number `seq`, or wait `wait` seconds.
    `at` is when it was granted (real time, at or before its windows' stamps); `late`, that
    its call is marked in the record (granted unpaced, or left late: see the docstring)."""

    wait: float
    seq: int = 0
    at: float = 0.0
    late: bool = False

    @property
    def granted(self) -> bool:
        return self.wait <= 0

    @property
    def mark(self) -> str:
        """Its call's mark in the record, when it is late."""
        return f"{LATE}{self.seq}:{self.at!r}"


class Pacer:
    """Hands out permission for one call at a time, or says how long to wait."""

    def __init__(self, storage_uri: str, rate_limits: str, account: str = "klaviyo",
                 key_prefix: str = "widget",
                 storage_options: Mapping[str, Any] | None = None,
                 read_share: float = 0.2, hold_if_empty: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        options = dict(storage_options or {}) if storage_uri.startswith(("redis", "rediss")) \
            else {}
        self.storage: Storage = storage_from_string(storage_uri, **options)
        self.limiter = MovingWindowRateLimiter(self.storage)
        # Hit the short windows first: a short-window slot spent in vain costs nothing,
        # a minute slot spent in vain costs throughput.
        self.items: list[RateLimitItem] = sorted(
            parse_many(rate_limits), key=lambda item: item.get_expiry()
        )
        longest = self.items[-1]
        room = longest.amount >= JITTER_ROOM_FROM
        if room:  # one call of room for a call on time (see the docstring)
            self.items[-1] = parse(f"{longest.amount - 1} per {longest.get_expiry()} seconds")
        # The spread's least gap between two grants, and when a call is late (see the
        # docstring); without room every call is (none may be missing from the count), and
        # the grants need no gap. When a slot is stale.
        gap = longest.get_expiry() / (MAX_RATE_OVER_AVERAGE * longest.amount)
        self._least_gap = gap if room else 0.0
        self._late_after = LATE_SHARE_OF_GAP * gap if room else -math.inf
        self._stale_after = STALE_SHARE_OF_WINDOW * longest.get_expiry()
        self.account = f"{key_prefix}:{account}"
        self.budget = budget_for(storage_uri, f"{key_prefix}:{account}-budget", options)
        self.read_share = read_share
        self.clock = clock  # the view's clock (tests pass their own); windows use real time
        # A record missing at our first look is a lost budget only if calls were made lately.
        self._hold_if_empty = hold_if_empty
        self._epoch: float | None = None
        # A 429 seen by this process holds it even when the storage could not record it.
        self._local_pause_until = 0.0
        self._outage_since: float | None = None
        self._lock = threading.Lock()

    @property
    def longest_window(self) -> float:
        """Seconds of the longest window (60 for 150/minute): Klaviyo's steady window."""
        return longest_window(self.items)

    # -- taking a slot ---------------------------------------------------------------------
    def try_acquire(self, kind: str = SEND) -> Slot:
        """Take one call's slot (`kind` SEND or READ), or say how long to wait."""
        try:
            slot = self._try_acquire(kind)
        except Exception as error:  # redis errors, limits' StorageError: never call blind
            self._storage_failed(error)
            return Slot(STORAGE_RETRY_SECONDS)
        if self._outage_since is not None:
            self._storage_recovered()
        return slot

    def _try_acquire(self, kind: str) -> Slot:
        local_pause = self._local_pause_until - self.clock()
        if local_pause > 0:
            return Slot(local_pause)
        longest = self.items[-1]
        stats = self.limiter.get_window_stats(longest, self.account)
        if stats.remaining < 1:  # look at the long windows without spending
            return Slot(self._until_free(longest))
        for item in reversed(self.items[:-1]):
            if not self.limiter.test(item, self.account):
                return Slot(self._until_free(item))
        at = time.time()
        slot, marks = self.budget.update(
            lambda state: self._decide(state, self.clock(), kind, at, stats))
        if not slot.granted:
            return slot
        for item in self.items:
            if not self.limiter.hit(item, self.account):
                return Slot(self._until_free(item))  # the spread's slot is spent in vain
        if marks:  # another grant may have taken, since our first look, the late calls' room
            remaining = self.limiter.get_window_stats(longest, self.account).remaining
            now = time.time()
            if remaining < len(uncounted := self._uncounted(marks, now)):
                return Slot(max(0.01, min(uncounted) - now))  # spent in vain too
        return slot

    def _decide(self, state: State, now: float, kind: str, at: float, stats: WindowStats
                ) -> tuple[State | None, tuple[Slot, list[tuple[float, float]]]]:
        """One grant or wait, on the shared record (run atomically by the budget); with the
        late calls that still count (real time `at`; the longest window's `stats` just
        before)."""
        before = dict(state)
        self._check_epoch(state, now)
        marks = self._late_calls(state, at)
        wait = max(state.get("pause_until", 0.0), state.get("hold_until", 0.0)) - now
        uncounted = self._uncounted(marks, at)
        if wait <= 0 and stats.remaining - len(uncounted) < 1:
            wait = max(0.01, min([stats.reset_time, *uncounted]) - at)
        paced = "reset_at" in state
        if wait <= 0 and paced:
            wait = self._spread_wait(state, now, kind)
        if wait > 0:  # the record changes only when the epoch, the window or the marks did
            return (state if state != before else None), (Slot(wait), [])
        seq = int(state.get("seq", 0.0)) + 1
        state["seq"], state["last_grant"] = float(seq), now
        if kind == READ:
            state["reads"] = state.get("reads", 0.0) + 1
        slot = Slot(0.0, seq, at, late=not paced)
        if slot.late:  # unpaced calls may bunch: all of them count until after their answer
            state[slot.mark] = at
        return state, (slot, marks)

    def _late_calls(self, state: State, at: float) -> list[tuple[float, float]]:
        """The late calls that count at real time `at`: their slot's time, and when they stop
        counting. Marks of calls that count no more are dropped from `state`."""
        window, marks = self.longest_window, []
        for key in [key for key in state if key.startswith(LATE)]:
            ends = state[key] + window
            if ends <= at:
                del state[key]
            else:
                marks.append((float(key.rsplit(":", 1)[1]), ends))
        return marks

    def _uncounted(self, marks: list[tuple[float, float]], at: float) -> list[float]:
        """When each late call whose slot may have left the longest window by real time `at`
        stops counting (a slot's stamp is at or after its time)."""
        window = self.longest_window
        return [ends for slot_at, ends in marks if slot_at + window <= at < ends]

    def _check_epoch(self, state: State, now: float) -> None:
        """Notice a record that was lost (a Redis restarted empty), and hold."""
        epoch = state.get("epoch")
        if epoch is None:
            state["epoch"] = float(random.getrandbits(52) or 1)
            if self._epoch is not None or self._hold_if_empty:
                state["hold_until"] = max(state.get("hold_until", 0.0),
                                          now + self.longest_window)
                log.warning("the pacing storage lost its record of Klaviyo's budget (a "
                            "restart?): no calls to Klaviyo for %.0fs, until the calls made "
                            "before are out of every window", self.longest_window)
            self._epoch = state["epoch"]
            return
        if self._epoch is not None and epoch != self._epoch:
            log.warning("the pacing storage was found empty by another process: holding "
                        "calls for %.1fs", state.get("hold_until", now) - now)
        self._epoch = epoch

    def _spread_wait(self, state: State, now: float, kind: str) -> float:
        """Seconds until the view lets the next call go (0: now). Rolls an ended window."""
        window = self.longest_window
        if now >= state["reset_at"]:  # a new window: all of it is left, as far as we know
            state["reset_at"] += window * (math.floor((now - state["reset_at"]) / window) + 1)
            state["remaining"] = state["limit"]
            state["observed_seq"] = state.get("seq", 0.0)
        limit, reset_at = state["limit"], state["reset_at"]
        if kind == READ:
            # The window's end is refined by later answers: the same window within half.
            if abs(state.get("reads_window", 0.0) - reset_at) > window / 2:
                state["reads"] = 0.0
            state["reads_window"] = reset_at
            if state.get("reads", 0.0) >= math.floor(self.read_share * limit):
                return reset_at - now
        left = _left(state)
        if left < 1:
            return reset_at - now
        last = state.get("last_grant", 0.0)
        gap = max((reset_at - last) / (left + 0.5), window / (MAX_RATE_OVER_AVERAGE * limit),
                  self._least_gap)  # a higher tier than the ceiling's: still a gap apart
        return last + gap - now

    # -- what Klaviyo said -----------------------------------------------------------------
    def observe(self, slot: Slot, reading: RateLimitReading | None) -> None:
        """Take an answer's RateLimit-* headers into the shared view (None: it had none); a
        late call counts until the longest window has passed since this answer."""
        if not slot.seq or (reading is None and not slot.late):
            return
        answered = time.time()

        def change(state: State) -> tuple[State | None, None]:
            viewed = self._observed(state, slot.seq, reading) if reading is not None else None
            if not slot.late:
                return viewed, None
            state = viewed if viewed is not None else state
            state[slot.mark] = max(state.get(slot.mark, 0.0), answered)
            return state, None
        try:
            self.budget.update(change)
        except Exception as error:
            self._storage_failed(error)

    def _observed(self, state: State, seq: int, reading: RateLimitReading) -> State | None:
        window = self.longest_window
        reset_at, granted = reading.reset_at, state.get("seq", float(seq))
        fresh = {"limit": float(reading.limit), "remaining": float(reading.remaining),
                 "reset_at": reset_at, "observed_seq": float(seq)}
        if "reset_at" not in state:  # the first view: reads made before count in it
            return state | fresh | {"reads_window": reset_at}
        if reset_at > state["reset_at"] + window / 2:
            return state | fresh  # a window we had not rolled into yet
        if reset_at < state["reset_at"] - window / 2:
            return None  # an answer from a window that has ended
        left_now = _left(state)
        left_then = reading.remaining - (granted - seq)
        if seq > state["observed_seq"] or left_then < left_now:
            state |= fresh
        # RateLimit-Reset is whole seconds, rounded up: the earliest end is the truest.
        state["reset_at"] = min(state["reset_at"], reset_at)
        return state

    def view(self) -> dict[str, float] | None:
        """Klaviyo's steady window as last seen (limit, remaining, reset in seconds)."""
        try:
            state = self.budget.read()
        except Exception:
            return None
        if "reset_at" not in state:
            return None
        return {"limit": state["limit"],
                "remaining": _left(state),
                "reset_in": max(0.0, state["reset_at"] - self.clock())}

    # -- pauses and holds ------------------------------------------------------------------
    def pause(self, seconds: float) -> None:
        """Stop every process's calls for `seconds` (rounded up to whole seconds)."""
        until = float(math.ceil(self.clock() + seconds))
        self._local_pause_until = max(self._local_pause_until, until)

        def longer(state: State) -> tuple[State | None, None]:
            if until <= state.get("pause_until", 0.0):
                return None, None
            return state | {"pause_until": until}, None
        try:
            self.budget.update(longer)
        except Exception as error:  # the storage is down: try_acquire holds every call anyway
            self._storage_failed(error)

    def pause_remaining(self) -> float:
        """Seconds until Klaviyo's last Retry-After has passed (0 when not paused)."""
        shared = self.budget.read().get("pause_until", 0.0)
        return max(0.0, max(shared, self._local_pause_until) - self.clock())

    def leaving(self, slot: Slot) -> Slot:
        """The last look just before a call leaves on `slot`: the slot, marked in the record
        if the call leaves late (see the docstring; on time, the record is only read); or,
        when it may not leave (paused, held, the storage failing, the slot gone stale), how
        long to wait before taking another."""
        now = time.time()
        late = now - slot.at > self._late_after
        try:
            if late:
                held = self.budget.update(lambda state: self._leave_late(state, slot, now))
            else:
                held = self._held_for(self.budget.read())
        except Exception as error:
            self._storage_failed(error)
            return Slot(STORAGE_RETRY_SECONDS)
        if held > 0:
            return Slot(held)
        return replace(slot, late=True) if late else slot

    def _leave_late(self, state: State, slot: Slot, now: float) -> tuple[State | None, float]:
        """Mark a call that leaves late (run atomically by the budget), unless it may not go:
        then seconds to wait."""
        held = self._held_for(state)
        if held <= 0 and now - slot.at > self._stale_after:
            held = 0.01  # too late for its mark: a new slot
        if held > 0:
            return None, held
        state[slot.mark] = max(state.get(slot.mark, 0.0), now)
        return state, 0.0

    def _held_for(self, state: State) -> float:
        """Seconds no call may go for, by the record (0 or less: none): a pause, a hold, or
        a record lost since this process last looked (its epoch changed)."""
        until = max(state.get("pause_until", 0.0), state.get("hold_until", 0.0),
                    self._local_pause_until)
        held = until - self.clock()
        return held if state.get("epoch") == self._epoch else max(held, 0.01)

    def _storage_failed(self, error: Exception) -> None:
        with self._lock:
            if self._outage_since is None:
                self._outage_since = self.clock()
                log.error("pacing storage unreachable (%s): no calls to Klaviyo until it "
                          "answers again, so that no process can exceed Klaviyo's limits",
                          type(error).__name__)

    def _storage_recovered(self) -> None:
        with self._lock:
            since, self._outage_since = self._outage_since, None
        if since is not None:
            log.warning("pacing storage answers again after %.1fs", self.clock() - since)

    # -- the rest --------------------------------------------------------------------------
    def seed(self, calls: int) -> None:
        """Count `calls` made lately by a process that died, as if made now (later than they
        were: they leave the windows late, never early). For a per-process (memory://)
        budget, whose windows die with the process; a restart must not start from zero."""
        for item in self.items:
            for _ in range(min(calls, item.amount)):
                self.limiter.hit(item, self.account)

    def storage_ok(self) -> bool:
        """The storage answers (for /readyz)."""
        try:
            return bool(self.storage.check()) and self.budget.ping()
        except Exception:
            return False

    def _until_free(self, item: RateLimitItem) -> float:
        reset = self.limiter.get_window_stats(item, self.account).reset_time
        return max(0.01, reset - time.time())

    def reset(self) -> None:
        """Forget every slot, view and pause (tests and the CLI use this)."""
        for item in self.items:
            self.limiter.clear(item, self.account)
        self.budget.clear()
        self._epoch = None
        self._local_pause_until = 0.0


def _left(state: State) -> float:
    """Calls left in the view's window: what the answer said, less the grants made since."""
    return state["remaining"] - (state.get("seq", 0.0) - state["observed_seq"])


def longest_window(rate_limits: str | list[RateLimitItem]) -> float:
    """Seconds of the longest of these windows."""
    items = parse_many(rate_limits) if isinstance(rate_limits, str) else rate_limits
    return float(max(item.get_expiry() for item in items))


def wait_for_slot(pacer: Pacer, kind: str, patience: float,
                  stop: threading.Event | None = None) -> Slot:
    """A granted slot within `patience` seconds, or the last wait when none came in time
    (or `stop` was set)."""
    deadline = time.monotonic() + patience
    while not (slot := pacer.try_acquire(kind)).granted:
        if time.monotonic() + slot.wait > deadline:
            return slot
        if stop is None:
            time.sleep(slot.wait)
        elif stop.wait(slot.wait):
            return slot
    return slot


def init_app(app: Flask) -> None:
    """This process's pacer. A per-process (memory://) budget starts from the calls the
    outbox shows in the last longest window, so a restart cannot start a fresh minute on
    top of a spent one; a shared one holds when it has lost its record and the outbox shows
    such calls."""
    config = app.config
    memory = config["RATELIMIT_STORAGE_URI"].startswith("memory://")
    since = utcnow() - timedelta(seconds=longest_window(config["SENDER_RATE_LIMITS"]))
    recent_calls = app.extensions["outbox"].touched_since(since)
    pacer = Pacer(config["RATELIMIT_STORAGE_URI"], config["SENDER_RATE_LIMITS"],
                  key_prefix=config["RATELIMIT_KEY_PREFIX"],
                  storage_options=config["RATELIMIT_STORAGE_OPTIONS"],
                  read_share=config["REVIEWS_READ_SHARE"],
                  hold_if_empty=not memory and recent_calls > 0)
    if memory:
        pacer.seed(recent_calls)
    app.extensions["pacer"] = pacer


def current() -> Pacer:
    return current_app.extensions["pacer"]
