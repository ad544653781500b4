"""The display widget's pages for a product with 200 reviews, against a bare Flask app in a
process of its own serving the same bytes, under the same gunicorn line.

    .venv/bin/python bench/display.py [--seconds 10] [--quick] [--markdown]

The mirror (SQLite) holds 3,000 reviews of 8 products, 200 of them shown for the product
measured (published or featured; the others pending, rejected, questions, other products).
The Procfile's web line serves the service (`app:app`, WIDGET_SENDER=off and no sync: the
pages are measured, not the sync); a second gunicorn, the same line with bench/bare_app.py,
answers the bytes captured from our two pages. wrk (one thread, 16 connections) gives each
capacity, then our route paced at 80% of its capacity three times (the middle p99 is kept).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

import requests
from capacity import LOAD_SHARE, P99_AIM_MS, PACED_RUNS, server
from common import dump, wrk

from tests.fake_klaviyo_fixtures import many_reviews
from widget import create_app
from widget.reviews.store import PUBLIC_STATUSES

SHOWN = 200
AIM = 0.70
PRODUCT_NAME = "Linen shirt"


def mirror_of(product_reviews: int = SHOWN) -> tuple[list[dict], str]:
    """3,000 reviews; the most reviewed product keeps exactly `product_reviews` shown ones."""
    resources = many_reviews(3000, products=8, seed=15)
    counts: dict[str, int] = {}
    for r in resources:
        external = (r["attributes"]["product"] or {}).get("external_id")
        if r["attributes"]["status"]["value"] in PUBLIC_STATUSES and \
                r["attributes"]["review_type"] != "store":
            counts[external] = counts.get(external, 0) + 1
    product = max(counts, key=counts.get)
    assert counts[product] >= product_reviews, counts
    kept, shown = [], 0
    for r in resources:
        attributes = r["attributes"]
        if (attributes["product"] or {}).get("external_id") == product and \
                attributes["status"]["value"] in PUBLIC_STATUSES and \
                attributes["review_type"] in ("review", "rating"):
            if shown == product_reviews:
                continue
            shown += 1
        kept.append(r)
    return kept, product


def measure(seconds: int = 10, quick: bool = False) -> dict:
    if quick:
        seconds = 3
    with tempfile.TemporaryDirectory() as tmp:
        env = {"DATABASE_URL": f"sqlite:///{tmp}/outbox.db", "SECRET_KEY": "bench",
               "RATELIMIT_ENABLED": "false", "WIDGET_SENDER": "off",
               "REVIEWS_SYNC_SECONDS": "0", "BENCH_SNAPSHOTS": tmp}
        resources, product = mirror_of()
        app = create_app({key: value for key, value in env.items() if key != "BENCH_SNAPSHOTS"})
        app.extensions["mirror"].upsert(resources)
        app.extensions["outbox"].engine.dispose()
        query = f"product_id={product}&product_name={quote(PRODUCT_NAME)}"
        paths = {"reviews": f"/reviews?{query}", "reviews_json": f"/reviews.json?{query}"}
        ours = server(env, app="app:app")
        bare = server(env, app="bare_app:app")
        try:
            figures: dict = {"seconds": seconds, "product_reviews": SHOWN,
                             "mirror_reviews": len(resources)}
            for name, path in paths.items():
                answer = requests.get(ours.url + path, timeout=10)
                answer.raise_for_status()
                (Path(tmp) / name).write_bytes(answer.content)
                (Path(tmp) / f"{name}.type").write_text(answer.headers["Content-Type"])
                figures[name] = compare(ours.url + path, bare.url + "/" + name, seconds)
                figures[name]["bytes"] = len(answer.content)
                print(name, dump(figures[name]), file=sys.stderr)
        finally:
            ours.stop()
            bare.stop()
    return figures


def compare(ours: str, bare: str, seconds: int) -> dict:
    wrk(bare, seconds=2)  # warm both up
    wrk(ours, seconds=2)
    bare_run = wrk(bare, seconds=seconds)
    our_run = wrk(ours, seconds=seconds)
    rate = max(1, int(our_run["rps"] * LOAD_SHARE))
    paced = sorted((wrk(ours, seconds=seconds, rate=rate) for _ in range(PACED_RUNS)),
                   key=lambda run: run["p99_ms"])
    return {"bare": bare_run, "ours": our_run, "ours_at_80_percent": paced[len(paced) // 2],
            "p99_ms_of_each_paced_run": [run["p99_ms"] for run in paced],
            "ratio": round(our_run["rps"] / bare_run["rps"], 3)}


LABELS = {"reviews": "`GET /reviews` (the page storefronts frame)",
          "reviews_json": "`GET /reviews.json`"}


def aims(figures: dict) -> list[tuple[str, str, bool]]:
    rows = []
    for name, label in LABELS.items():
        f = figures[name]
        rows.append((f"{label} for a product with {SHOWN} reviews: at least "
                     f"{AIM:.0%} of a bare Flask app serving the same bytes",
                     f"{f['ratio']:.2f}", f["ratio"] >= AIM))
        p99 = f["ours_at_80_percent"]["p99_ms"]
        rows.append((f"p99 under {P99_AIM_MS:.0f} ms at 80% of capacity: {label}",
                     f"{p99:.1f} ms", p99 < P99_AIM_MS))
    return rows


def markdown(figures: dict) -> str:
    rows = []
    for name, label in LABELS.items():
        f = figures[name]
        ours, bare, loaded = f["ours"], f["bare"], f["ours_at_80_percent"]
        p99 = loaded["p99_ms"]
        rows.append(
            f"| {label} | {f['bytes']:,} | {bare['rps']:,.0f} | {ours['rps']:,.0f} | "
            f"**{f['ratio']:.2f}** {'met' if f['ratio'] >= AIM else '**not met**'} | "
            f"{ours['p50_ms']:.1f} / {ours['p99_ms']:.1f} | {loaded['rps']:,.0f} | "
            f"{loaded['p50_ms']:.1f} / **{p99:.1f}** "
            f"{'met' if p99 < P99_AIM_MS else '**not met**'} "
            f"({' · '.join(f'{v:.0f}' for v in f['p99_ms_of_each_paced_run'])}) | "
            f"{int(ours['non_2xx'] + ours['errors'] + loaded['non_2xx'] + loaded['errors'])} |")
    return "\n".join([
        "## The display widget against a bare Flask app",
        "",
        __doc__.split("\n\n", 2)[2].strip().replace("\n", " "),
        "",
        "```sh",
        ".venv/bin/python bench/display.py            # needs wrk (apt-get install -y wrk)",
        "```",
        "",
        "| route | bytes | bare req/s | ours req/s | ratio (aim 70%) | ours p50 / p99 ms at "
        "capacity | req/s at 80% | p50 / p99 ms at 80% (aim < 50) | errors |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
    ])


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    figures = measure(args.seconds, args.quick)
    print(markdown(figures) if args.markdown else dump(figures))
    return figures


if __name__ == "__main__":
    main()
