"""Our submit route against a bare Flask JSON route in the same gunicorn run (requests/s).

    .venv/bin/python bench/submit.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import dump, gunicorn, wrk  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.reviews import review_body  # noqa: E402


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    body = json.dumps(review_body()).encode()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "DATABASE_URL": f"sqlite:///{tmp}/outbox.db",
            "RATELIMIT_ENABLED": "false",
            "WIDGET_SENDER": "off",  # measure acceptance, not delivery
            "WIDGET_OPEN_API": "true",
            "KLAVIYO_PUBLIC_KEY": "PUBKEY",
            "SECRET_KEY": "bench",
        }
        server = gunicorn(env)
        try:
            wrk(server.url + "/bare", body, seconds=2, connections=args.connections)  # warm up
            bare = wrk(server.url + "/bare", body, args.seconds, args.connections)
            ours = wrk(server.url + "/client/reviews", body, args.seconds, args.connections)
        finally:
            server.stop()
    figures = {"bare_json_route": bare, "submit_route": ours,
               "ratio_rps": round(ours["rps"] / bare["rps"], 3)}
    print(dump(figures))
    return figures


if __name__ == "__main__":
    main()
