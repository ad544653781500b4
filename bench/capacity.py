"""Server capacity: our routes against bare Flask routes serving the same bytes, same run.

    .venv/bin/python bench/capacity.py [--seconds 10] [--quick] [--markdown]

gunicorn runs the Procfile's own web line (gevent, one process, 1,000 connections) with
bench/bench_app.py as the app: the service plus its baselines. wrk (one thread, 16
connections) finds each route's capacity; a second wrk run, paced at 80% of our route's
capacity, gives the latency a loaded but not saturated server shows.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
import tempfile
import uuid
from pathlib import Path

from common import dump, wrk

from tests.fake_klaviyo import FakeKlaviyo
from tests.fake_klaviyo_reads import PRIVATE_KEY
from tests.processes import Service, free_port, procfile_command
from tests.reviews import review_body

FORM_PATH = "/embed?product_id=7549950034135&product_name=Linen%20shirt"
PHOTO_BYTES = 300_000
AIMS = {"form": 0.70, "text": 0.50}  # share of the bare route's requests/s
P99_AIM_MS = 50.0
LOAD_SHARE = 0.8
PACED_RUNS = 3


def server(env: dict[str, str], app: str = "bench_app:app") -> Service:
    """The Procfile's web line with `app` in place of the service (by default bench_app: the
    service plus its baselines; "bare_app:app" is the bare baseline, in a process of its own).
    """
    command = procfile_command("web").replace("gunicorn app:app",
                                              f"gunicorn {app} --pythonpath bench")
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PORT": str(port), **env}
    return Service(["bash", "-c", "exec " + command], env, port).wait_ready()


def photo_jpeg(target: int = PHOTO_BYTES) -> bytes:
    """A 2048x1536 photo-like JPEG (what the form sends after downscaling) of about
    `target` bytes."""
    from PIL import Image, ImageDraw, ImageFilter

    size = (2048, 1536)
    grain = Image.effect_noise((512, 384), 40).resize(size, Image.Resampling.BICUBIC)
    image = Image.merge("RGB", (Image.linear_gradient("L").resize(size), grain,
                                Image.radial_gradient("L").resize(size)))
    draw = ImageDraw.Draw(image)
    for x in range(0, size[0], 96):
        draw.line((x, 0, size[0] - x, size[1]), fill=(x % 255, 90, 200), width=7)
    image = image.filter(ImageFilter.SMOOTH)
    best = b""
    for quality in range(95, 20, -5):
        out = io.BytesIO()
        image.save(out, "JPEG", quality=quality)
        best = out.getvalue()
        if len(best) <= target:
            break
    return best


def unique_bodies(photo: bytes | None) -> list[str]:
    """A review body split where wrk puts its request counter, with a mark of its own for
    each wrk run (every run counts from 1 again): every submission is a new shopper's new
    review, so the repeat check never short-cuts the durable insert (or, for the same
    shopper and text with another photo, answers 409)."""
    extra = {}
    if photo is not None:
        extra["images"] = ["data:image/jpeg;base64," + base64.b64encode(photo).decode()]
    run = uuid.uuid4().hex[:12]
    body = review_body(email=f"shopper-{run}-@N@@example.com",
                       content=f"Lovely shirt, true to size. Review {run} number @N@.", **extra)
    return json.dumps(body).split("@N@")


def measure(seconds: int = 10, quick: bool = False) -> dict:
    if quick:
        seconds = 3
    photo = photo_jpeg()
    with tempfile.TemporaryDirectory() as tmp, FakeKlaviyo() as fake:
        env = {
            "DATABASE_URL": f"sqlite:///{tmp}/outbox.db",
            "RATELIMIT_ENABLED": "false",  # one client address: the per-IP limit would refuse
            "WIDGET_SENDER": "off",  # acceptance is measured here; delivery in delivery.py
            "WIDGET_OPEN_API": "true",
            "KLAVIYO_PUBLIC_KEY": fake.public_key,
            "KLAVIYO_PRIVATE_KEY": PRIVATE_KEY,
            "KLAVIYO_BASE_URL": fake.url,
            "MODERATION_PASSWORD": "bench",
            "SECRET_KEY": "bench",
            "BENCH_SNAPSHOTS": tmp,
            # Tens of thousands of rows pile up unsent here; the ceiling's 503 would be
            # cheaper than a real acceptance and flatter the figures.
            "WIDGET_BACKLOG_LIMIT": "100000000",
        }
        service = server(env)
        try:
            auth = "Basic " + base64.b64encode(b"moderator:bench").decode()
            snapshot(service.url, FORM_PATH, Path(tmp) / "form", {})
            snapshot(service.url, "/moderation/", Path(tmp) / "moderation",
                     {"Authorization": auth})
            routes = {
                "form": (dict(path=FORM_PATH), dict(path="/bare/page/form")),
                "text": (dict(path="/client/reviews", photo=None),
                         dict(path="/bare/json", photo=None)),
                "photo": (dict(path="/client/reviews", photo=photo),
                          dict(path="/bare/json", photo=photo)),
                "moderation": (dict(path="/moderation/", headers={"Authorization": auth}),
                               dict(path="/bare/page/moderation")),
            }
            figures = {"seconds": seconds, "photo_bytes": len(photo)}
            for name, (ours, bare) in routes.items():
                figures[name] = compare(service.url, ours, bare, seconds)
                print(name, dump(figures[name]), file=sys.stderr)
        finally:
            service.stop()
    return figures


def snapshot(base: str, path: str, into: Path, headers: dict[str, str]) -> None:
    """Save one answer of ours for the bare route to serve byte for byte."""
    import requests

    response = requests.get(base + path, headers=headers, timeout=10)
    response.raise_for_status()
    into.write_bytes(response.content)
    into.with_name(into.name + ".type").write_text(response.headers["Content-Type"])


def compare(base: str, ours: dict, bare: dict, seconds: int) -> dict:
    wrk(base + bare["path"], seconds=2, **_options(bare))  # warm both up
    wrk(base + ours["path"], seconds=2, **_options(ours))
    bare_run = wrk(base + bare["path"], seconds=seconds, **_options(bare))
    our_run = wrk(base + ours["path"], seconds=seconds, **_options(ours))
    rate = max(1, int(our_run["rps"] * LOAD_SHARE))
    # Three paced runs, the middle one by p99 reported: at 80% load a single stall of the
    # machine (another process taking the core for 20 ms) queues requests for 100 ms, and
    # lands in one run of three, not in all (the three are kept in the figures).
    paced = sorted((wrk(base + ours["path"], seconds=seconds, rate=rate, **_options(ours))
                    for _ in range(PACED_RUNS)), key=lambda run: run["p99_ms"])
    return {"bare": bare_run, "ours": our_run, "ours_at_80_percent": paced[len(paced) // 2],
            "p99_ms_of_each_paced_run": [run["p99_ms"] for run in paced],
            "ratio": round(our_run["rps"] / bare_run["rps"], 3)}


def _options(route: dict) -> dict:
    """wrk's options for one run of a route; a posting route gets bodies of its own."""
    parts = unique_bodies(route["photo"]) if "photo" in route else None
    return {"parts": parts, "headers": route.get("headers")}


def aims(figures: dict) -> list[tuple[str, str, bool]]:
    """(aim, what was measured, met) for the summary table."""
    rows = [
        ("Form page at least 70% of the bare route's requests/s",
         f"{figures['form']['ratio']:.2f}", figures["form"]["ratio"] >= AIMS["form"]),
        ("Text submit (durable write) at least 50% of the bare route",
         f"{figures['text']['ratio']:.2f}", figures["text"]["ratio"] >= AIMS["text"]),
    ]
    for name, label in (("form", "form page"), ("text", "text submit"),
                        ("photo", "submit with a photo"), ("moderation", "moderation list")):
        p99 = figures[name]["ours_at_80_percent"]["p99_ms"]
        rows.append((f"p99 under {P99_AIM_MS:.0f} ms at 80% of capacity: {label}",
                     f"{p99:.1f} ms", p99 < P99_AIM_MS))
    return rows


def markdown(figures: dict) -> str:
    names = {"form": "`GET /embed` (the form page)",
             "text": "`POST /client/reviews`, text only",
             "photo": f"`POST /client/reviews`, one {figures['photo_bytes'] // 1000} KB photo",
             "moderation": "`GET /moderation/` (an empty mirror: bench/mirror.py fills one)"}
    rows = []
    for name, label in names.items():
        f = figures[name]
        ours, bare, loaded = f["ours"], f["bare"], f["ours_at_80_percent"]
        aim = AIMS.get(name)
        verdict = (f"{'met' if f['ratio'] >= aim else '**not met**'} (aim {aim:.0%})"
                   if aim else "no aim")
        p99 = loaded["p99_ms"]
        rows.append(
            f"| {label} | {bare['rps']:,.0f} | {ours['rps']:,.0f} | **{f['ratio']:.2f}** "
            f"{verdict} | {ours['p50_ms']:.1f} / {ours['p99_ms']:.1f} | "
            f"{loaded['rps']:,.0f} | {loaded['p50_ms']:.1f} / **{p99:.1f}** "
            f"{'met' if p99 < P99_AIM_MS else '**not met**'} "
            f"({' · '.join(f'{v:.0f}' for v in f['p99_ms_of_each_paced_run'])}) | "
            f"{int(ours['non_2xx'] + ours['errors'] + loaded['non_2xx'] + loaded['errors'])} |")
    return "\n".join([
        "## Server capacity: our routes against bare Flask routes",
        "",
        "gunicorn runs the Procfile's own `web:` line (gevent worker, one process, 1,000 "
        "connections, access log on) with `bench/bench_app.py` as the app: the service plus "
        "bare Flask routes in the same process. `POST /bare/json` parses the same JSON and "
        "answers the same 202 without storing it; `GET /bare/page/<name>` answers the bytes "
        "of one of our pages captured at the start, with the same content type. wrk (one "
        f"thread, 16 connections, {figures['seconds']} s per run, on loopback, the same 2 "
        "cores) gives each route's capacity; then our route again, paced at 80% of its "
        "capacity (wrk's `delay()` on a clock of its own), three times, for the latency under "
        "load: the table gives the middle run by p99, and the p99 of all three in brackets "
        "(at 80% load one stall of the machine queues requests for 100 ms and lands in one "
        "run, not in all). Every "
        "submission is a different shopper's review (wrk's Lua numbers them), so each one is "
        "a durable insert (SQLite, WAL, `synchronous=FULL`); web limits are off "
        "(`RATELIMIT_ENABLED=false`: wrk is one client address).",
        "",
        "```sh",
        ".venv/bin/python bench/capacity.py            # needs wrk (apt-get install -y wrk)",
        "```",
        "",
        "| route | bare req/s | ours req/s | ratio | ours p50 / p99 ms at capacity "
        "| req/s at 80% | p50 / p99 ms at 80% (aim < 50) | errors |",
        "|---|---|---|---|---|---|---|---|",
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
