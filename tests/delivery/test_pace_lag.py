"""The ceiling counts calls as Klaviyo sees them, when they arrive: a call that leaves long
after its slot (the sender claims its row, a durable write, between the two) is marked as it
leaves and counts for a whole longest window after its answer, so the calls granted as its
slot leaves the window cannot join it. Calls that leave on time write nothing more.

Real time on a window of 2 s (the moving windows keep real time): a few seconds a test.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace

import pytest

from tests.reviews import review_body
from tests.services import RedisServer
from widget.delivery.pacing import Pacer
from widget.delivery.sender import Sender
from widget.klaviyo import RateLimitReading

LIMIT, WINDOW = 20, 2.0  # the longest window keeps one of its 20 as room, as 150/minute does
RATE_LIMITS = f"1000 per 1 second;{LIMIT} per {WINDOW:.0f} seconds"
# The default pace (Klaviyo's tier M): a slot every 0.2 s at the fastest, late after 0.1 s.
DEFAULT = "10 per 2 seconds;150/minute"
LATE_AFTER = 0.1
LATE = "late:"  # the record's marks of late calls (widget/delivery/budget.py)


@pytest.fixture(params=["memory", "redis"])
def storage_uri(request):
    if request.param == "memory":
        yield "memory://"
        return
    server = RedisServer().start()
    yield server.url
    server.kill()


def never_binds():
    """A view that never binds (a higher tier): the spread's fastest pace and the ceiling
    do the work."""
    return RateLimitReading(1000, 999, 60, time.time())


def granted(pacer):
    """A slot, waiting for it as a sender would."""
    while not (slot := pacer.try_acquire()).granted:
        time.sleep(slot.wait)
    return slot


def marks(pacer):
    return {key: value for key, value in pacer.budget.read().items() if key.startswith(LATE)}


def paced(pacer, reading=never_binds):
    """A pacer whose view is in force: its first call (granted unpaced, so marked) answered."""
    pacer.observe(granted(pacer), reading())
    return pacer


def most_in_a_window(arrivals):
    """The most calls arriving in any span [t, t + WINDOW): what Klaviyo may count."""
    arrivals, first, best = sorted(arrivals), 0, 0
    for last, at in enumerate(arrivals):
        while arrivals[first] <= at - WINDOW:
            first += 1
        best = max(best, last - first + 1)
    return best


class Klaviyo:
    """A client that notes when each send arrives, answered at once."""

    def __init__(self, arrivals):
        self.arrivals, self.last_reading = arrivals, None

    def create_review(self, body):
        self.arrivals.append(time.time())
        self.last_reading = never_binds()
        return 202

    def close(self):
        pass


class SlowClaims:
    """The outbox, its first `slow` claims taking `seconds` (a durable write on a busy disk)."""

    def __init__(self, outbox, slow, seconds):
        self.outbox, self.slow, self.seconds = outbox, slow, seconds
        self.lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self.outbox, name)

    def claim_due(self):
        with self.lock:
            slow, self.slow = self.slow > 0, self.slow - 1
        if slow:
            time.sleep(self.seconds)
        return self.outbox.claim_due()


def test_calls_that_leave_late_still_count_a_whole_window_after_they_went(make_app,
                                                                          storage_uri):
    app = make_app(SENDER_RATE_LIMITS=RATE_LIMITS)
    for i in range(80):
        app.extensions["outbox"].put(json.dumps(review_body(content=f"Review {i}")).encode())
    # Two senders (two processes when the budget is in Redis), whose first claims take half
    # a second: the calls of two slots granted back to back leave late.
    outbox = SlowClaims(app.extensions["outbox"], slow=2, seconds=0.5)
    pacers = [Pacer(storage_uri, RATE_LIMITS, key_prefix="lag")]
    pacers.append(pacers[0] if storage_uri == "memory://"
                  else Pacer(storage_uri, RATE_LIMITS, key_prefix="lag"))
    arrivals = []
    senders = [Sender(app.config, outbox, pacer, lambda config: Klaviyo(arrivals))
               for pacer in pacers]
    first = granted(pacers[0])
    arrivals.append(time.time())
    pacers[0].observe(first, never_binds())
    for sender in senders:
        sender.start()
    time.sleep(0.5 + 2 * WINDOW)  # then the calls that go as soon as they are granted
    for sender in senders:
        sender.stop()
    assert LIMIT - 1 <= most_in_a_window(arrivals) <= LIMIT  # the ceiling, reached
    assert len(arrivals) >= 2 * (LIMIT - 1)  # and refilled


def test_a_call_that_leaves_on_time_adds_nothing_to_the_record(storage_uri):
    pacer = paced(Pacer(storage_uri, DEFAULT, key_prefix="lag"))
    before = pacer.budget.read()
    slot = granted(pacer)
    leaving = pacer.leaving(slot)
    assert leaving == slot and not leaving.late
    time.sleep(2 * LATE_AFTER)  # answered later than that after its slot: it left on time
    pacer.observe(leaving, never_binds())
    pacer.observe(leaving, None)
    assert set(pacer.budget.read()) == set(before)  # the same fields: no mark


def test_answers_a_third_of_a_second_after_sends_on_time_leave_no_marks(storage_uri):
    # Klaviyo's tier M as production sees it: the default pace, answers in 0.2 to 0.5 s.
    def tier_m():
        return RateLimitReading(150, 149, 60, time.time())
    pacer = paced(Pacer(storage_uri, DEFAULT, key_prefix="lag"), tier_m)
    before = marks(pacer)
    for _ in range(4):
        slot = pacer.leaving(granted(pacer))
        assert slot.granted and not slot.late
        time.sleep(0.3)
        pacer.observe(slot, tier_m())
    assert pacer.budget.read()["seq"] == 5 and marks(pacer) == before


def test_a_late_call_is_marked_as_it_leaves_and_counts_a_window_after_its_answer(
        storage_uri):
    pacer = paced(Pacer(storage_uri, DEFAULT, key_prefix="lag"))
    before = marks(pacer)
    slot = granted(pacer)
    time.sleep(2 * LATE_AFTER)  # its row's claim
    leaving = pacer.leaving(slot)
    left = time.time()
    assert leaving.granted and leaving.late
    # Should the process die before the answer, the call counts a window after it left.
    [(key, value)] = [item for item in marks(pacer).items() if item[0] not in before]
    assert key == f"{LATE}{slot.seq}:{slot.at!r}" and slot.at + 2 * LATE_AFTER < value <= left
    time.sleep(0.1)
    pacer.observe(leaving, None)  # no headers (a timeout): counted from its answer all the same
    assert left + 0.1 <= marks(pacer)[key] <= time.time()


def test_calls_granted_before_any_answer_paced_them_are_marked_with_their_grant(storage_uri):
    pacer = Pacer(storage_uri, DEFAULT, key_prefix="lag")
    slot = pacer.try_acquire()
    assert slot.late and marks(pacer) == {slot.mark: slot.at}
    assert pacer.leaving(slot) == slot  # on time: nothing more
    pacer.observe(slot, never_binds())
    assert marks(pacer)[slot.mark] > slot.at


def test_a_late_call_that_would_mark_itself_after_its_slot_left_the_window_may_not_go(
        storage_uri):
    pacer = paced(Pacer(storage_uri, DEFAULT, key_prefix="lag"))
    before = marks(pacer)
    stale = replace(granted(pacer), at=time.time() - 31)  # its row's claim took half a minute
    assert not pacer.leaving(stale).granted
    assert marks(pacer) == before
