"""The pacer: a ceiling in moving windows, and under it the budget Klaviyo's headers report,
spread over what remains of the window; reads take a bounded share; a lost record holds."""

from __future__ import annotations

import time

from widget.delivery.pacing import READ, SEND, Pacer
from widget.klaviyo import RateLimitReading

# A ceiling that never binds in the tests of the view (they run on a clock of their own).
NO_CEILING = "1000/second;100000/minute"


class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def reading(clock, limit=150, remaining=149, reset=60):
    return RateLimitReading(limit, remaining, reset, clock.now)


def grants_until(pacer, clock, end, kind=SEND):
    """Ask as a sender would (sleeping each wait) until `end`; the times of the grants."""
    times = []
    while clock.now < end:
        slot = pacer.try_acquire(kind)
        if slot.granted:
            times.append(clock.now)
        else:
            clock.now += slot.wait
    return times


def test_pacer_grants_at_most_the_burst_then_says_how_long_to_wait():
    pacer = Pacer("memory://", "8/second;140/minute")
    slots = [pacer.try_acquire() for _ in range(10)]
    assert [slot.granted for slot in slots] == [True] * 8 + [False] * 2
    assert all(0 < slot.wait <= 1.0 for slot in slots[8:])
    assert [slot.seq for slot in slots[:8]] == list(range(1, 9))


def test_minute_window_is_respected_without_spending_second_slots():
    pacer = Pacer("memory://", "100/second;3/minute")
    assert all(pacer.try_acquire().granted for _ in range(3))
    assert 59 < pacer.try_acquire().wait <= 60


def test_pause_stops_every_grant_until_it_has_passed():
    pacer = Pacer("memory://", "8/second;140/minute")
    pacer.pause(1)
    assert 0 < pacer.try_acquire().wait <= 2
    pacer.pause(0.1)  # a shorter pause never shortens a longer one
    assert pacer.pause_remaining() > 0.5
    deadline = time.monotonic() + 3
    while not pacer.try_acquire().granted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pacer.pause_remaining() == 0


def test_reset_forgets_slots_view_and_pause():
    clock = Clock()
    pacer = Pacer("memory://", "1/second;1/minute", clock=clock)
    pacer.observe(pacer.try_acquire(), reading(clock, remaining=0))
    pacer.pause(30)
    pacer.reset()
    assert pacer.try_acquire().granted
    assert pacer.view() is None


def test_what_klaviyo_says_is_left_is_spread_over_what_remains_of_the_window():
    clock = Clock()
    pacer = Pacer("memory://", NO_CEILING, clock=clock)
    pacer.observe(pacer.try_acquire(), reading(clock, remaining=30, reset=60))
    window_end = clock.now + 60
    times = grants_until(pacer, clock, window_end)
    assert len(times) == 30
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert min(gaps) > 1.9 and max(gaps) < 2.1  # 60 s / 30.5, evenly
    assert window_end - times[-1] < 2.1


def test_a_fresh_window_is_filled_evenly_and_the_next_one_too():
    clock = Clock(60_000.0)  # at a window's start
    pacer = Pacer("memory://", NO_CEILING, clock=clock)
    pacer.observe(pacer.try_acquire(), reading(clock, remaining=149, reset=60))
    times = grants_until(pacer, clock, 60_000.0 + 180)
    per_window = [sum(1 for t in times if start <= t < start + 60)
                  for start in (60_000.0, 60_060.0, 60_120.0)]
    assert per_window[1:] == [150, 150]  # the first one began with our own call
    assert per_window[0] == 149


def test_calls_granted_after_the_answered_one_are_taken_off_what_it_reports():
    clock = Clock()
    pacer = Pacer("memory://", NO_CEILING, clock=clock)
    first = pacer.try_acquire()
    clock.now += 1
    later = [pacer.try_acquire() for _ in range(3)]  # no view yet: the ceiling alone
    assert all(slot.granted for slot in later)
    pacer.observe(first, reading(clock, remaining=5, reset=30))  # said before the 3 went
    assert pacer.view()["remaining"] == 2
    times = grants_until(pacer, clock, clock.now + 29.9)
    assert len(times) == 2


def test_an_answer_from_an_ended_window_changes_nothing():
    clock = Clock()
    pacer = Pacer("memory://", NO_CEILING, clock=clock)
    old = pacer.try_acquire()
    clock.now += 5
    new = pacer.try_acquire()
    pacer.observe(new, RateLimitReading(150, 140, 55, clock.now))
    pacer.observe(old, RateLimitReading(150, 3, 1, clock.now - 70))  # a minute too late
    assert pacer.view()["remaining"] == 140


def test_never_faster_than_twice_the_windows_average_rate():
    clock = Clock()
    pacer = Pacer("memory://", NO_CEILING, clock=clock)
    # Tier S (60/min): the whole minute left with 10 s to go.
    pacer.observe(pacer.try_acquire(), reading(clock, limit=60, remaining=59, reset=10))
    times = grants_until(pacer, clock, clock.now + 9.9)
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.5 - 1e-9  # 2 per second: under tier S's burst of 3
    assert len(times) in (19, 20)


def test_reads_take_at_most_their_share_of_each_window_and_sends_the_rest():
    clock = Clock(120_000.0)
    pacer = Pacer("memory://", NO_CEILING, clock=clock, read_share=0.2)
    pacer.observe(pacer.try_acquire(), reading(clock, remaining=149, reset=60))
    reads, sends = [], []
    while clock.now < 120_060.0:
        read, send = pacer.try_acquire(READ), None
        if read.granted:
            reads.append(clock.now)
        else:
            send = pacer.try_acquire(SEND)
            if send.granted:
                sends.append(clock.now)
        if not read.granted and not (send and send.granted):
            clock.now += min(read.wait, send.wait if send else read.wait)
    assert len(reads) == 30  # 20% of 150
    assert len(sends) == 149 - 30


def test_a_lost_record_holds_every_call_for_the_longest_window():
    clock = Clock()
    pacer = Pacer("memory://", NO_CEILING, clock=clock)
    before = pacer.try_acquire()
    assert before.granted
    pacer.budget.clear()  # the storage restarted empty, without an error
    slot = pacer.try_acquire()
    assert not slot.granted and 59.9 < slot.wait <= 60
    assert not pacer.leaving(before).granted
    clock.now += 60
    assert pacer.try_acquire().granted


def test_a_new_process_holds_on_an_empty_record_only_when_calls_were_made_lately():
    assert Pacer("memory://", NO_CEILING).try_acquire().granted
    held = Pacer("memory://", NO_CEILING, hold_if_empty=True).try_acquire()
    assert 59 < held.wait <= 60


def test_the_reads_share_holds_while_answers_refine_the_windows_end():
    clock = Clock(180_000.4)
    pacer = Pacer("memory://", NO_CEILING, clock=clock, read_share=0.2)
    slot = pacer.try_acquire(READ)
    pacer.observe(slot, reading(clock, remaining=149, reset=60))  # ends at 180_060.4 or before
    reads = 0
    while clock.now < 180_059.0:
        slot = pacer.try_acquire(READ)
        if slot.granted:
            reads += 1
            # Each answer says the window ends a little earlier: whole seconds, rounded up.
            pacer.observe(slot, reading(clock, remaining=100, reset=180_060 - clock.now + 0.5))
        else:
            clock.now += slot.wait
    assert reads == 29  # 30 with the first


def test_the_longest_window_keeps_one_call_of_room_for_the_networks_jitter():
    pacer = Pacer("memory://", "1000 per 2 seconds;150/minute")
    assert sum(pacer.try_acquire().granted for _ in range(200)) == 149
