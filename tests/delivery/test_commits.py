"""Group commit: concurrent submissions share a transaction, and each gets its own answer."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from widget.delivery.commits import GroupCommit


def run_together(count, submit):
    results, errors = {}, {}
    start = threading.Barrier(count)

    def one(i):
        start.wait()
        try:
            results[i] = submit(i)
        except Exception as error:  # collected for the assertions
            errors[i] = error

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results, errors


def slow_doubler(batches):
    def write(batch):
        batches.append([pending.item for pending in batch])
        time.sleep(0.02)  # a commit waiting on the disk: the others queue meanwhile
        for pending in batch:
            pending.finish(pending.item * 2)
    return write


def test_callers_that_arrive_together_share_batches_and_get_their_own_results():
    batches = []
    commits = GroupCommit(slow_doubler(batches))
    results, errors = run_together(20, commits.submit)
    assert errors == {}
    assert results == {i: i * 2 for i in range(20)}
    assert sorted(item for batch in batches for item in batch) == list(range(20))
    assert len(batches) < 20
    assert (commits.batches, commits.items) == (len(batches), 20)


def test_no_batch_is_larger_than_the_limit_and_every_caller_is_served():
    batches = []
    commits = GroupCommit(slow_doubler(batches), max_batch=3)
    results, errors = run_together(10, commits.submit)
    assert errors == {} and len(results) == 10
    assert max(len(batch) for batch in batches) <= 3


def test_a_failed_batch_fails_its_callers_and_the_next_batch_is_written():
    calls = []

    def write(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise OSError("disk full")
        for pending in batch:
            pending.finish("stored")

    commits = GroupCommit(write)
    with pytest.raises(OSError, match="disk full"):
        commits.submit("first")
    assert commits.submit("second") == "stored"


def test_an_item_the_writer_forgets_is_an_error_not_a_hang():
    commits = GroupCommit(lambda batch: None)
    with pytest.raises(RuntimeError, match="unfinished"):
        commits.submit("lost")


def test_greenlets_that_are_ready_together_share_one_commit_under_gevent():
    # The Procfile's web role: greenlets only switch when one waits, so the leader must
    # give the others a turn before it writes.
    script = """
from gevent import monkey
monkey.patch_all()
import gevent
from widget.delivery.commits import GroupCommit
batches = []
def write(batch):
    batches.append(len(batch))
    for pending in batch:
        pending.finish(pending.item)
commits = GroupCommit(write)
jobs = [gevent.spawn(commits.submit, i) for i in range(10)]
gevent.joinall(jobs, timeout=10)
assert sorted(job.value for job in jobs) == list(range(10)), [job.value for job in jobs]
print(batches)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[10]"
