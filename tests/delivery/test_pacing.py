"""The pacer keeps every fixed window of Klaviyo's under our moving-window limits."""

from __future__ import annotations

import time

from widget.delivery.pacing import Pacer


def test_pacer_grants_at_most_the_burst_then_says_how_long_to_wait():
    pacer = Pacer("memory://", "8/second;140/minute")
    grants = [pacer.try_acquire() for _ in range(10)]
    assert grants[:8] == [0.0] * 8
    assert all(0 < wait <= 1.0 for wait in grants[8:])


def test_minute_window_is_respected_without_spending_second_slots():
    pacer = Pacer("memory://", "100/second;3/minute")
    assert [pacer.try_acquire() for _ in range(3)] == [0.0] * 3
    wait = pacer.try_acquire()
    assert 59 < wait <= 60


def test_pause_stops_every_grant_until_it_has_passed():
    pacer = Pacer("memory://", "8/second;140/minute")
    pacer.pause(1)
    assert 0 < pacer.try_acquire() <= 2
    pacer.pause(0.1)  # a shorter pause never shortens a longer one
    assert pacer.pause_remaining() > 0.5
    deadline = time.monotonic() + 3
    while pacer.try_acquire() > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pacer.pause_remaining() == 0


def test_reset_forgets_slots_and_pause():
    pacer = Pacer("memory://", "1/second;1/minute")
    pacer.try_acquire()
    pacer.pause(30)
    pacer.reset()
    assert pacer.try_acquire() == 0.0
