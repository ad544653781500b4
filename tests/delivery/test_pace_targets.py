"""The pace against Klaviyo's real windows: the budget its headers report is filled, shared
with reads and other integrations, and never exceeded, even when Redis restarts empty.

Five drains (tests/drains.py) run at once for two of the fake's minutes, on the default
SENDER_RATE_LIMITS (nobody tells the service the account's tier):

- **M**: tier M (10/s, 150/min): at least 98% of 150 in each minute, no 429;
- **S**: tier S (3/s, 60/min): at least 57 in the minute after the first, at most one 429 a
  minute;
- **other**: tier M while another integration spends a third of the budget: at least 90% of
  what it leaves, at most three 429s in the two minutes;
- **reads**: tier M while a reader asks for every read slot it can get: reads keep to their
  share (20%), deliveries get the rest;
- **restart**: tier M, two senders sharing a private Redis that is killed and started again
  empty (well under a second) 20 s in: no span of 60 s carries more than 150 calls;
- **sync**: tier M, 500 submissions queued while the mirror's sync makes full passes over
  5,000 reviews: the drain drops by no more than the reads' share.

The minutes are real: the module takes a little over two minutes, whatever it checks.
"""

from __future__ import annotations

import pytest

from tests import drains as scenarios

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

MINUTES = 2


@pytest.fixture(scope="module")
def drains(tmp_path_factory):
    return scenarios.run({"M": {}, "S": {"tier": "S", "rows": 200}, "other": {},
                          "reads": {}, "restart": {},
                          "sync": {"rows": 500, "klaviyo_reviews": 5000}},
                         MINUTES, tmp_path_factory.mktemp("pace"), restart_at=20.0)


def test_tier_m_gets_98_percent_of_its_minute_and_no_429(drains):
    m = drains["M"]
    counts = m.per_minute(MINUTES)
    assert all(0.98 * 150 <= n <= 150 for n in counts), counts
    assert m.throttled_per_minute(MINUTES) == [0, 0]
    assert m.fake.max_in_span(1.0) <= 10
    assert m.fake.max_in_span(60.0) <= 150  # sliding too, not only Klaviyo's fixed windows


def test_tier_s_found_from_the_headers_gets_57_a_minute_after_the_first(drains):
    s = drains["S"]
    counts = s.per_minute(MINUTES)
    assert 57 <= counts[1] <= 60, counts
    assert max(s.throttled_per_minute(MINUTES)) <= 1


def test_with_another_integration_spending_a_third_we_get_90_percent_of_what_it_leaves(drains):
    other = drains["other"]
    ours, theirs = other.per_minute(MINUTES), other.other_per_minute(MINUTES)
    for window in range(MINUTES):
        assert 0.9 * (150 - theirs[window]) <= ours[window], (ours, theirs)
    assert min(theirs) >= 45  # it did spend a third
    assert sum(other.throttled_per_minute(MINUTES)) <= 3


def test_reads_keep_to_their_share_and_deliveries_get_the_rest(drains):
    reads = drains["reads"]
    creates = reads.per_minute(MINUTES, "/client/reviews")
    gets = reads.per_minute(MINUTES, "/api/reviews")
    for window in range(MINUTES):
        assert 25 <= gets[window] <= 30, gets
        assert creates[window] >= 0.98 * 150 - 30, creates
    assert sum(reads.throttled_per_minute(MINUTES)) == 0


def test_a_redis_restarted_empty_mid_drain_never_lets_a_minute_carry_more_than_150(drains):
    restart = drains["restart"]
    began, ended = restart.restart
    assert ended - began < 1.0
    assert restart.fake.max_in_span(60.0) <= 150
    assert sum(restart.throttled_per_minute(MINUTES)) == 0
    after = [r.at for r in restart.fake.requests() if r.at > ended + 1]
    assert after, "the drain never resumed"
    assert min(after) >= began + 59  # held for the longest window


def test_a_full_sync_of_5000_reviews_costs_the_drain_no_more_than_the_reads_share(drains):
    sync, alone = drains["sync"], drains["M"]
    creates = sync.per_minute(MINUTES, "/client/reviews")
    gets = sync.per_minute(MINUTES, "/api/reviews")
    for window in range(MINUTES):
        # The share is of Klaviyo's window (20% of 150), give or take the spread's rounding.
        assert creates[window] >= alone.per_minute(MINUTES)[window] - 0.2 * 150 - 2, creates
        assert gets[window] <= 30, gets
    assert sum(gets) >= 50  # a whole pass of 5,000 reviews, 100 a page, and more
    # The 5,000, and the reviews the drain created in the fake since (pending ones).
    assert sync.app.extensions["mirror"].count() >= 5000
    assert sum(sync.throttled_per_minute(MINUTES)) == 0
