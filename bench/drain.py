"""Drain rate of a backlog against the fake Klaviyo's fixed windows (10/s, 150/min).

    .venv/bin/python bench/drain.py [--rows 600] [--senders 1] [--redis redis://...] [--scale 1]

The backlog is put in the outbox first, then the sender(s) start with the production pace
(SENDER_RATE_LIMITS, default "8 per 2 seconds;140/minute"). Reported: the drain rate as a
share of Klaviyo's steady budget (150/min), the peaks the fake saw, and its 429s.
`--senders 2 --redis URL` runs two senders sharing the pace through Redis, as two worker
processes would. `--scale K` multiplies every limit (ours and the fake's) by K to finish K
times sooner; the share is then of the scaled budget, and the output says so.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fake_klaviyo import FakeKlaviyo  # noqa: E402
from tests.reviews import review_body  # noqa: E402
from widget import create_app  # noqa: E402
from widget.pacing import Pacer  # noqa: E402
from widget.sender import Sender  # noqa: E402

DEFAULT_PACE = "8 per 2 seconds;140/minute"


def scaled_pace(scale: int) -> str:
    return f"{8 * scale} per 2 seconds;{140 * scale}/minute"


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--senders", type=int, default=1)
    parser.add_argument("--redis", default=None, help="RATELIMIT_STORAGE_URI (needed for 2+)")
    parser.add_argument("--scale", type=int, default=1)
    args = parser.parse_args()
    if args.senders > 1 and not args.redis:
        sys.exit("two or more senders share their pace through Redis: give --redis URL")
    per_second, per_minute = 10 * args.scale, 150 * args.scale
    pace = DEFAULT_PACE if args.scale == 1 else scaled_pace(args.scale)
    prefix = f"bench-drain-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp, \
            FakeKlaviyo(per_second=per_second, per_minute=per_minute) as fake:
        app = create_app({
            "DATABASE_URL": f"sqlite:///{tmp}/outbox.db",
            "KLAVIYO_PUBLIC_KEY": "PUBKEY",
            "KLAVIYO_BASE_URL": fake.url,
            "WIDGET_SENDER": "off",
            "SENDER_RATE_LIMITS": pace,
            "RATELIMIT_STORAGE_URI": args.redis or "memory://",
            "RATELIMIT_KEY_PREFIX": prefix,
            "SECRET_KEY": "bench",
        })
        store = app.extensions["outbox"]
        for i in range(args.rows):
            store.put(json.dumps(review_body(content=f"Backlog review {i}")).encode())
        senders = [app.extensions["sender"]] + [
            Sender(app.config, store, Pacer(app.config["RATELIMIT_STORAGE_URI"], pace,
                                            key_prefix=prefix,
                                            storage_options=app.config[
                                                "RATELIMIT_STORAGE_OPTIONS"]))
            for _ in range(args.senders - 1)
        ]
        started = time.time()
        for sender in senders:
            sender.start()
        while store.counts()["delivered"] < args.rows and time.time() - started < 3600:
            time.sleep(0.25)
        for sender in senders:
            sender.stop()
        store.engine.dispose()
        sent = fake.requests("/client/reviews")
    if args.redis:
        import redis

        client = redis.Redis.from_url(args.redis)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
    delivered = [r for r in sent if r.status == 202]
    first, last = sent[0].at, delivered[-1].at
    elapsed = last - first
    # Steady rate: the gaps between sends, excluding the first burst (it rides on a budget
    # that a long-running service would have spent already): whole minutes after the first.
    minutes = Counter(int((r.at - first) // 60) for r in delivered)
    full = [minutes[m] for m in sorted(minutes) if (m + 1) * 60 <= elapsed]
    rate = (len(delivered) - 1) / elapsed * 60 if elapsed > 0 else 0.0
    figures = {
        "rows": args.rows,
        "senders": args.senders,
        "storage": "redis" if args.redis else "memory://",
        "pace": pace,
        "fake_windows": f"{per_second}/s, {per_minute}/min (fixed)",
        "scaled_by": args.scale,
        "delivered": len(delivered),
        "requests": len(sent),
        "throttled_429": sum(1 for r in sent if r.status == 429),
        "elapsed_s": round(elapsed, 1),
        "rate_per_min": round(rate, 1),
        "share_of_budget": round(rate / per_minute, 3),
        "per_minute_counts": [minutes[m] for m in sorted(minutes)],
        "full_minute_share": round(sum(full) / len(full) / per_minute, 3) if full else None,
        "peak_per_second": fake.peak(1),
        "peak_per_minute_fixed": fake.peak(60),
    }
    print(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
