"""Drains against the fake Klaviyo in real time, for the pace tests and bench/delivery.py.

Each scenario has a fake Klaviyo (its windows start when it does), an outbox with a backlog
and senders of its own, on the default SENDER_RATE_LIMITS: nobody tells the service the
account's tier. Scenarios run at once (they are bound by the pace, not the machine):

- `M`: tier M (10/s, 150/min);
- `S`: tier S (3/s, 60/min);
- `other`: tier M while another integration spends a third of the budget (50/min);
- `reads`: tier M while a reader asks for every read slot it can get;
- `restart`: tier M, two senders sharing a private Redis that is killed and started again
  empty (well under a second) `restart_at` seconds in;
- `sync`: tier M while the mirror's sync makes full passes over 5,000 reviews, one after
  the other.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tests.fake_klaviyo import FakeKlaviyo
from tests.fake_klaviyo_fixtures import many_reviews
from tests.reviews import review_body
from tests.services import RedisServer
from widget import create_app
from widget.delivery.pacing import READ, Pacer, wait_for_slot
from widget.delivery.sender import Sender
from widget.klaviyo import KlaviyoClient, KlaviyoError

TIERS = {"M": (10, 150), "S": (3, 60)}


class Drain:
    """One scenario: a fake, an app with a backlog, its senders (and a reader if asked)."""

    def __init__(self, stack: ExitStack, folder: Path, name: str, tier: str = "M",
                 rows: int = 400, senders: int = 1, klaviyo_reviews: int = 0,
                 **overrides: Any) -> None:
        self.name = name
        per_second, self.limit = TIERS[tier]
        self.fake = stack.enter_context(FakeKlaviyo(per_second=per_second,
                                                    per_minute=self.limit, origin=time.time()))
        self.app = create_app({
            "DATABASE_URL": f"sqlite:///{folder / name}.db",
            "KLAVIYO_PUBLIC_KEY": self.fake.public_key,
            "KLAVIYO_PRIVATE_KEY": "pk_test_private_key_never_shown",
            "KLAVIYO_BASE_URL": self.fake.url,
            "WIDGET_SENDER": "off",
            "SENDER_POLL_SECONDS": 0.05,
            "RATELIMIT_ENABLED": False,
            "SECRET_KEY": "drain",
            # A full pass after another (a tiny REVIEWS_FULL_SYNC_HOURS), where asked.
            "REVIEWS_SYNC_SECONDS": 0.1,
            "REVIEWS_FULL_SYNC_HOURS": 1e-6,
            **overrides,
        })
        stack.callback(self.app.extensions["outbox"].engine.dispose)
        if klaviyo_reviews:
            self.fake.reads.reviews = many_reviews(klaviyo_reviews)
        self.syncer = self.app.extensions["syncer"]
        store = self.app.extensions["outbox"]
        for i in range(rows):
            store.put(json.dumps(review_body(content=f"{name} review {i}",
                                             email=f"{name}{i}@example.com")).encode())
        config = self.app.config
        self.senders = [self.app.extensions["sender"]] + [
            Sender(config, store, Pacer(config["RATELIMIT_STORAGE_URI"],
                                        config["SENDER_RATE_LIMITS"],
                                        key_prefix=config["RATELIMIT_KEY_PREFIX"],
                                        storage_options=config["RATELIMIT_STORAGE_OPTIONS"]))
            for _ in range(senders - 1)
        ]
        self.reader: threading.Thread | None = None
        self.stopping = threading.Event()
        self.restart: tuple[float, float] | None = None

    def start(self, reader: bool = False, sync: bool = False) -> None:
        for sender in self.senders:
            sender.start()
        if sync:
            self.syncer.start()
        if reader:
            self.reader = threading.Thread(target=self._read_all_it_can, daemon=True)
            self.reader.start()

    def stop(self) -> None:
        self.stopping.set()
        for sender in self.senders:
            sender.stop()
        self.syncer.stop()
        if self.reader is not None:
            self.reader.join(5)

    def _read_all_it_can(self) -> None:
        """A moderator (or the mirror) asking for every read slot it can get."""
        pacer, client = self.app.extensions["pacer"], KlaviyoClient(self.app.config)
        while not self.stopping.is_set():
            slot = wait_for_slot(pacer, READ, 1.0)
            if not slot.granted:
                continue
            try:
                client.list_reviews({"page[size]": "1"})
            except KlaviyoError:
                pass
            finally:
                pacer.observe(slot, client.last_reading)
        client.close()

    # -- what happened -------------------------------------------------------------------
    def per_minute(self, minutes: int, path: str | None = None) -> list[int]:
        """Our requests (to `path`, or all) in each of the fake's minute windows."""
        counts = [0] * minutes
        for request in self.fake.requests(path):
            window = int((request.at - self.fake.origin) // 60)
            if 0 <= window < minutes:
                counts[window] += 1
        return counts

    def throttled_per_minute(self, minutes: int) -> list[int]:
        counts = [0] * minutes
        for request in self.fake.requests():
            window = int((request.at - self.fake.origin) // 60)
            if request.status == 429 and 0 <= window < minutes:
                counts[window] += 1
        return counts

    def other_per_minute(self, minutes: int) -> list[int]:
        theirs = self.fake.other_counts(60)
        return [theirs.get(window, 0) for window in range(minutes)]


def run(scenarios: dict[str, dict[str, Any]], minutes: int, folder: Path,
        restart_at: float = 20.0) -> dict[str, Drain]:
    """Run the named scenarios at once for `minutes` of the fakes' windows; stopped after."""
    with ExitStack() as stack:
        redis_server = None
        drains = {}
        for name, options in scenarios.items():
            options = dict(options)
            if name == "restart":
                redis_server = RedisServer().start()
                stack.callback(redis_server.kill)
                options |= {"senders": 2, "RATELIMIT_STORAGE_URI": redis_server.url,
                            "RATELIMIT_KEY_PREFIX": "drain-restart"}
            drains[name] = Drain(stack, folder, name, **options)
        if "other" in drains:
            drains["other"].fake.other_integration(drains["other"].limit // 3)
        started = time.monotonic()
        for name, drain in drains.items():
            drain.start(reader=name == "reads", sync=name == "sync")
        if redis_server is not None:
            time.sleep(max(0.0, started + restart_at - time.monotonic()))
            began = time.time()
            redis_server.kill()
            redis_server.start()  # same port, no data
            drains["restart"].restart = (began, time.time())
        time.sleep(max(0.0, started + minutes * 60 + 1 - time.monotonic()))
        for drain in drains.values():
            drain.stop()
    return drains
