"""The moderation read cache: fresh answers are reused, and one expired answer is read once."""

from __future__ import annotations

import threading
import time

import pytest

from widget.cache import ReadCache


def fetch_together(cache, count, load):
    answers, errors = [], []
    start = threading.Barrier(count)

    def one():
        start.wait()
        try:
            answers.append(cache.fetch("list", load))
        except Exception as error:  # collected for the assertions
            errors.append(error)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return answers, errors


def test_requests_that_miss_together_share_one_read():
    calls = []

    def load():
        calls.append(1)
        time.sleep(0.05)  # Klaviyo answering
        return {"data": []}

    answers, errors = fetch_together(ReadCache(30), 12, load)
    assert errors == [] and answers == [{"data": []}] * 12
    assert len(calls) == 1


def test_a_failed_read_fails_everyone_waiting_for_it_and_is_not_kept():
    calls = []

    def load():
        calls.append(1)
        time.sleep(0.05)
        raise TimeoutError("Klaviyo did not answer")

    cache = ReadCache(30)
    answers, errors = fetch_together(cache, 5, load)
    assert answers == [] and len(errors) == 5 and len(calls) == 1
    assert cache.fetch("list", lambda: "read again") == "read again"


def test_a_fresh_answer_is_reused_and_an_expired_one_is_read_again():
    cache = ReadCache(0.05)
    assert cache.fetch("list", lambda: 1) == 1
    assert cache.fetch("list", lambda: pytest.fail("read while fresh")) == 1
    time.sleep(0.06)
    assert cache.fetch("list", lambda: 2) == 2
