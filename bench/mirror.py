"""The mirror: what a full pass over 10,000 reviews costs in Klaviyo calls, and the moderation
pages that read it, at capacity and at 80% of it.

    .venv/bin/python bench/mirror.py [--quick] [--markdown] [--reviews 10000]

The fake Klaviyo holds 10,000 reviews (tests/fake_klaviyo_fixtures.py many_reviews); one
sync (widget/reviews/sync.py, in this process, on the SQLite file the service then uses)
makes the first pass and counts its calls. Then the Procfile's web line (WIDGET_SENDER=off,
so no sender nor sync runs beside the pages) serves the moderation list (the first page,
a filtered page) and the overview, each measured by wrk at capacity and then at 80% of it
(p99 aim under 50 ms). Beside it, the same line runs bench/bare_app.py, a bare Flask app in
a process of its own answering the bytes captured from each of our pages (it checks no
login: wrk sends both the same Basic credentials): our list aims at half of its
requests/s. The fake records every call: the pages must make none.
"""

from __future__ import annotations

import argparse
import base64
import sys
import tempfile
import time
from pathlib import Path

import requests
from capacity import LOAD_SHARE, P99_AIM_MS, server
from common import dump, wrk

from tests.fake_klaviyo import FakeKlaviyo
from tests.fake_klaviyo_fixtures import many_reviews
from tests.fake_klaviyo_reads import PRIVATE_KEY
from widget import create_app

AUTH = {"Authorization": "Basic " + base64.b64encode(b"moderator:bench").decode()}
PAGES = {
    "list": "/moderation/",
    "list, pending with photos": "/moderation/?status=pending&media=with",
    "overview": "/moderation/overview",
}
SNAPSHOTS = {"list": "list", "list, pending with photos": "filtered", "overview": "overview"}
AIMS = {"list": 0.50}  # share of the bare app's requests/s


def measure(reviews: int = 10_000, seconds: int = 10, quick: bool = False) -> dict:
    if quick:
        reviews, seconds = 2_000, 3
    with tempfile.TemporaryDirectory() as tmp, FakeKlaviyo() as fake:
        fake.reads.reviews = many_reviews(reviews)
        settings = {
            "DATABASE_URL": f"sqlite:///{tmp}/outbox.db",
            "KLAVIYO_PUBLIC_KEY": fake.public_key,
            "KLAVIYO_PRIVATE_KEY": PRIVATE_KEY,
            "KLAVIYO_BASE_URL": fake.url,
            "WIDGET_SENDER": "off",
            "REVIEWS_SYNC_SECONDS": "0",
            "REVIEWS_READ_SHARE": "1",  # the pass alone, as fast as the budget allows
            "RATELIMIT_ENABLED": "false",
            "MODERATION_PASSWORD": "bench",
            "SECRET_KEY": "bench",
            "BENCH_SNAPSHOTS": tmp,
        }
        app = create_app({**settings, "REVIEWS_SYNC_SECONDS": 0, "REVIEWS_READ_SHARE": 1.0,
                          "RATELIMIT_ENABLED": False})
        started = time.monotonic()
        run = app.extensions["syncer"].sync_once(full=True)
        took = time.monotonic() - started
        mirrored = app.extensions["mirror"].count()
        app.extensions["outbox"].engine.dispose()
        figures: dict = {"reviews": reviews, "full_pass": {
            "calls": run.calls, "seconds": round(took, 1), "mirrored": mirrored,
            "error": run.error}}
        calls_before = len(fake.requests())
        service = server(settings)
        bare = server(settings, app="bare_app:app")
        try:
            for name, path in PAGES.items():
                url = service.url + path
                answer = requests.get(url, headers=AUTH, timeout=30)
                answer.raise_for_status()
                snap = Path(tmp) / SNAPSHOTS[name]
                snap.write_bytes(answer.content)
                snap.with_name(snap.name + ".type").write_text(answer.headers["Content-Type"])
                bare_url = f"{bare.url}/{SNAPSHOTS[name]}"
                wrk(bare_url, seconds=2, headers=AUTH)  # warm both up
                wrk(url, seconds=2, headers=AUTH)
                bare_run = wrk(bare_url, seconds=seconds, headers=AUTH)
                full = wrk(url, seconds=seconds, headers=AUTH)
                rate = max(1, int(full["rps"] * LOAD_SHARE))
                paced = wrk(url, seconds=seconds, rate=rate, headers=AUTH)
                figures[name] = {"path": path, "bytes": len(answer.content), "bare": bare_run,
                                 "capacity": full, "at_80_percent": paced,
                                 "ratio": round(full["rps"] / bare_run["rps"], 3)}
                print(name, dump(figures[name]), file=sys.stderr)
        finally:
            service.stop()
            bare.stop()
        figures["klaviyo_calls_by_the_pages"] = len(fake.requests()) - calls_before
    return figures


def aims(figures: dict) -> list[tuple[str, str, bool]]:
    """(aim, what was measured, met) for the summary table."""
    rows = []
    for name, aim in AIMS.items():
        ratio = figures[name]["ratio"]
        rows.append((f"Moderation {name} (mirror of {figures['reviews']:,}) at least "
                     f"{aim:.0%} of a bare Flask app in its own process serving the same "
                     "bytes", f"{ratio:.2f}", ratio >= aim))
    for name in PAGES:
        p99 = figures[name]["at_80_percent"]["p99_ms"]
        rows.append((f"p99 under {P99_AIM_MS:.0f} ms at 80% of capacity: moderation {name}, "
                     f"mirror of {figures['reviews']:,}", f"{p99:.1f} ms", p99 < P99_AIM_MS))
    calls = figures["full_pass"]["calls"]
    rows.append((f"A full pass over {figures['reviews']:,} reviews: one call per 100",
                 f"{calls} calls", calls <= -(-figures["reviews"] // 100)))
    rows.append(("Moderation pages make no Klaviyo call",
                 f"{figures['klaviyo_calls_by_the_pages']} calls",
                 figures["klaviyo_calls_by_the_pages"] == 0))
    return rows


def markdown(figures: dict) -> str:
    rows = []
    for name in PAGES:
        f = figures[name]
        full, paced = f["capacity"], f["at_80_percent"]
        aim = AIMS.get(name)
        verdict = (f"{'met' if f['ratio'] >= aim else '**not met**'} (aim {aim:.0%})"
                   if aim else "no aim")
        rows.append(f"| {name} (`{f['path']}`) | {f['bytes']:,} | {f['bare']['rps']:,.0f} | "
                    f"{full['rps']:,.0f} | **{f['ratio']:.2f}** {verdict} | "
                    f"{full['p50_ms']:.1f} / {full['p99_ms']:.1f} | {paced['rps']:,.0f} | "
                    f"{paced['p50_ms']:.1f} / **{paced['p99_ms']:.1f}** "
                    f"{'met' if paced['p99_ms'] < P99_AIM_MS else '**not met**'} | "
                    f"{int(full['non_2xx'] + paced['non_2xx'])} |")
    p = figures["full_pass"]
    return "\n".join([
        "## The mirror: a full pass, and the moderation pages that read it",
        "",
        f"The fake Klaviyo holds {figures['reviews']:,} reviews; one full pass of the sync "
        f"(`REVIEWS_READ_SHARE=1` here, to time the pass alone) mirrors them into the SQLite "
        f"file; then the Procfile's `web:` line serves the moderation pages from it, each "
        f"measured by wrk at capacity and at 80% of it (16 connections). The baseline is "
        f"`bench/bare_app.py` under the same line in a process of its own, answering the "
        f"bytes captured from each page (no login check; wrk sends both the same Basic "
        f"credentials), measured just before ours.",
        "",
        "```sh",
        ".venv/bin/python bench/mirror.py --markdown",
        "```",
        "",
        f"A full pass: **{p['calls']} calls** to Klaviyo for {p['mirrored']:,} reviews "
        f"({p['seconds']} s, paced; a page is 100 reviews). The pages made "
        f"**{figures['klaviyo_calls_by_the_pages']}** calls.",
        "",
        "| page | bytes | bare app req/s | ours req/s | ratio | p50 / p99 ms | at 80%: req/s "
        "| p50 / p99 ms (aim < 50) | non-2xx |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 reviews, 3 s runs")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--reviews", type=int, default=10_000)
    args = parser.parse_args()
    figures = measure(args.reviews, quick=args.quick)
    print(markdown(figures) if args.markdown else dump(figures))


if __name__ == "__main__":
    main()
