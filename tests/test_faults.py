"""The fault suite: no accepted review is ever lost, and Klaviyo's limits hold, under faults.

A burst of 500 submissions goes to the real service (gunicorn as in the Procfile) while the
fake Klaviyo answers 503 for a while, then 429 with Retry-After: 3, then hangs past the read
timeout, then refuses connections; one web process and one sender are killed with SIGKILL
mid-burst (during the hang, so a row is left mid-send) and restarted. Run in scale-out mode
(Postgres, Redis, 2 web processes, 2 `send` workers) and on the embedded defaults (SQLite,
one process with its sender thread).

Scaled limits, to finish in under a minute per mode: every limit is multiplied by 5 (the
fake counts 50/s and 750/min in fixed windows; our ceiling is "50 per 2 seconds;750/minute"
and the pace follows the fake's RateLimit-* headers), so the bounds checked are 5 x 10 per
second and 5 x 150 per minute. The unscaled pace is checked in
tests/delivery/test_pace_targets.py and measured in bench/delivery.py.

With the private key set, the fake creates the reviews whose answers it holds back (a
Klaviyo that acted and then did not answer), and every unanswered send is looked up before it
is sent again: no review may arrive twice. Without it, delivery is at least once: a review
may arrive twice only where its row is flagged.

"No request during a Retry-After": with one sender, none arrives at all while a pause runs.
With two, a request the other sender had already let go when the 429 reached us can still
arrive a moment later; what is counted is requests that arrived more than GRACE seconds
after the 429 was answered, i.e. sent when the pause was known (sent_during_pause).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from contextlib import ExitStack

import pytest
import requests

from tests.fake_klaviyo import FakeKlaviyo
from tests.fake_klaviyo_reads import PRIVATE_KEY
from tests.processes import gunicorn, send_worker
from tests.reviews import review_body
from tests.services import postgres_database, redis_prefix
from widget.delivery.outbox import Outbox, connect

SCALE = 5
SUBMISSIONS = 500
SUBMIT_PER_SECOND = 40  # the burst lasts about 12 s, across every fault phase
GRACE = 0.25


def content(i):
    return f"Fault review {i}"


class Burst:
    """Client threads posting every submission until it gets a 202 (with an Idempotency-Key,
    so a retry after a cut connection never stores it twice)."""

    def __init__(self, webs):
        self.webs = webs  # a list the test replaces entries of on restart
        self.accepted: dict[int, str] = {}
        self.statuses: Counter = Counter()
        self.todo: queue.Queue = queue.Queue()
        self.lock = threading.Lock()

    def post(self, i, attempt):
        web = self.webs[(i + attempt) % len(self.webs)]
        body = review_body(content=content(i), email=f"shopper{i}@example.com")
        try:
            response = requests.post(web.url + "/client/reviews", json=body, timeout=10,
                                     headers={"Idempotency-Key": f"fault-{i}"})
        except requests.RequestException:
            with self.lock:
                self.statuses["no answer"] += 1
            return None
        with self.lock:
            self.statuses[response.status_code] += 1
        return response.json()["data"]["id"] if response.status_code == 202 else None

    def worker(self):
        while (i := self.todo.get()) is not None:
            attempt = 0
            while (review_id := self.post(i, attempt)) is None and attempt < 200:
                attempt += 1
                time.sleep(0.1)
            if review_id is not None:
                with self.lock:
                    self.accepted[i] = review_id

    def run(self, clients=8):
        threads = [threading.Thread(target=self.worker) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for i in range(SUBMISSIONS):
            self.todo.put(i)
            time.sleep(1 / SUBMIT_PER_SECOND)
        for _ in threads:
            self.todo.put(None)
        return threads


def wait_all_delivered(store, ids, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.counts()["delivered"] >= len(ids):
            break
        time.sleep(0.5)
    return [review_id for review_id in ids if store.get(review_id).state != "delivered"]


def env_for(mode, private_key, fake, stack, tmp_path):
    env = {
        "KLAVIYO_PUBLIC_KEY": "PUBKEY",
        "KLAVIYO_PRIVATE_KEY": PRIVATE_KEY if private_key else "",
        "SENDER_RECONCILE_SECONDS": "10",
        "KLAVIYO_BASE_URL": fake.url,
        "KLAVIYO_CONNECT_TIMEOUT": "1",
        "KLAVIYO_READ_TIMEOUT": "1",
        "SENDER_RATE_LIMITS": f"{10 * SCALE} per 2 seconds;{150 * SCALE}/minute",
        "SENDER_POLL_SECONDS": "0.05",
        "SENDER_BACKOFF_BASE_SECONDS": "0.2",
        "SENDER_BACKOFF_MAX_SECONDS": "2",
        "SENDER_RECLAIM_SECONDS": "3",
        "RATELIMIT_ENABLED": "false",  # one client IP posts everything; the pace stays
        "WIDGET_OPEN_API": "true",
        "WIDGET_TRUSTED_PROXIES": "0",
        "WIDGET_EMAIL_LIMIT": "100000/hour",
        "SECRET_KEY": "fault-suite",
    }
    if mode == "scale-out":
        url = stack.enter_context(postgres_database())
        storage, prefix = stack.enter_context(redis_prefix())
        env |= {"DATABASE_URL": url, "RATELIMIT_STORAGE_URI": storage,
                "RATELIMIT_KEY_PREFIX": prefix, "WIDGET_SENDER": "off",
                "WIDGET_WEB_PROCESSES": "2"}
    else:
        env |= {"DATABASE_URL": f"sqlite:///{tmp_path / 'outbox.db'}", "WIDGET_SENDER": "thread"}
    return env


@pytest.mark.slow
@pytest.mark.timeout(360)
@pytest.mark.parametrize(("mode", "private_key"), [
    ("scale-out", True), ("embedded", True), ("embedded", False),
], ids=["scale-out-with-key", "embedded-with-key", "embedded-without-key"])
def test_every_accepted_review_is_delivered_within_limits_through_every_fault(
        mode, private_key, tmp_path):
    with ExitStack() as stack:
        fake = stack.enter_context(FakeKlaviyo(per_second=10 * SCALE, per_minute=150 * SCALE))
        env = env_for(mode, private_key, fake, stack, tmp_path)
        logs = iter(tmp_path / f"service{n}.log" for n in range(100))
        webs = [gunicorn(env, log_path=next(logs)).wait_ready()
                for _ in range(2 if mode == "scale-out" else 1)]
        senders = [send_worker(env, log_path=next(logs))
                   for _ in range(2 if mode == "scale-out" else 0)]
        stack.callback(lambda: [service.stop() for service in webs + senders])
        store = Outbox(connect(env["DATABASE_URL"]))
        stack.callback(store.engine.dispose)

        burst = Burst(webs)
        started = time.monotonic()
        burst_threads: list[threading.Thread] = []
        feeder = threading.Thread(target=lambda: burst_threads.extend(burst.run()))
        feeder.start()

        def at(seconds):
            time.sleep(max(0.0, started + seconds - time.monotonic()))

        at(1.0)
        fake.fail_with(503)
        at(4.0)
        fake.clear()
        fake.throttle(retry_after=3, count=1)
        at(9.0)  # after the 429's pause, so that a sender is mid-send when it is killed
        hung_from = time.time()
        fake.hang(create=private_key)
        deadline = time.monotonic() + 5
        while not any(r.at >= hung_from for r in fake.requests()) \
                and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # mid-burst, mid-send (read timeout 1 s): a web and a sender die
        webs[0].kill()
        if senders:
            senders[0].kill()
        time.sleep(1.5)
        fake.clear()
        time.sleep(0.5)
        webs[0] = gunicorn(env, log_path=next(logs)).wait_ready()
        if senders:
            senders[0] = send_worker(env, log_path=next(logs))
        time.sleep(1.0)
        fake.refuse()
        time.sleep(2.5)
        fake.accept()

        feeder.join()
        for thread in burst_threads:
            thread.join(60)
        assert len(burst.accepted) == SUBMISSIONS, burst.statuses
        assert burst.statuses[500] == 0
        missing = wait_all_delivered(store, list(burst.accepted.values()), timeout=180)
        assert missing == []

        arrived = Counter(r["data"]["attributes"]["content"] for r in fake.reviews())
        assert set(arrived) == {content(i) for i in range(SUBMISSIONS)}
        doubted = store.doubted_deliveries(SUBMISSIONS)
        flagged = [row for row in doubted if row["possible_duplicate"]]
        found = [row for row in doubted if row["klaviyo_review_id"]]
        if private_key:
            assert max(arrived.values()) == 1, [c for c, n in arrived.items() if n > 1]
            assert found, "the hang and the SIGKILL must leave sends to look up"
            assert flagged == []
        else:
            for i, review_id in burst.accepted.items():
                if arrived[content(i)] > 1:  # a duplicate only where one was flagged possible
                    assert store.get(review_id).possible_duplicate, content(i)
            assert flagged, "the hang and the SIGKILL must leave rows flagged"
        assert fake.peak(1) <= 10 * SCALE
        assert fake.peak(60) <= 150 * SCALE
        assert fake.throttled_at, "the 429 phase never happened"
        assert fake.sent_during_pause(GRACE) == []
        if mode == "embedded":
            assert fake.during_pause == []
        statuses = Counter(r.status for r in fake.requests("/client/reviews"))
        print(f"{mode} key={private_key}: {time.monotonic() - started:.0f}s, fake saw "
              f"{dict(statuses)}, lookups {len(fake.requests('/api/reviews'))}, "
              f"duplicates {sum(n - 1 for n in arrived.values())} (flagged: {len(flagged)}, "
              f"found: {len(found)}), "
              f"during pause (any) {len(fake.during_pause)}, peaks {fake.peak(1)}/s "
              f"{fake.peak(60)}/min, client saw {dict(burst.statuses)}")
