"""Server capacity: our routes against bare Flask routes serving the same bytes, same run.

    .venv/bin/python bench/capacity.py [--seconds 6] [--quick] [--markdown]

gunicorn runs the Procfile's own web line (gevent, one process, 1,000 connections) with
bench/bench_app.py as the app: the service plus in-process baselines (bare routes inside our
app, paying our hooks). A second gunicorn, the same line, runs bench/bare_app.py, a bare
Flask app of its own that imports nothing of ours: the baseline the aims are measured
against. wrk (one thread, 16 connections) finds each route's capacity (the bare app, the
in-process route, then ours, in three alternating rounds: each ratio is the median round's);
then our route again, paced at 80% of its capacity, gives the latency a loaded but not
saturated server shows.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import statistics
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
# Each variant's capacity runs in this many turns, alternating (A B C A B C ...).
ROUNDS = 3
PACED_RUNS = 3
PACED_SECONDS = 10


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


def service_env(tmp: str, fake: FakeKlaviyo) -> dict[str, str]:
    """The service's environment in every submission bench (here, bench/peer.py,
    bench/profile.py): a SQLite outbox in `tmp`, web limits and the sender off."""
    return {
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


AUTH = {"Authorization": "Basic " + base64.b64encode(b"moderator:bench").decode()}


def measure(seconds: int = 6, quick: bool = False) -> dict:
    paced_seconds = PACED_SECONDS
    if quick:
        seconds = paced_seconds = 2
    photo = photo_jpeg()
    with tempfile.TemporaryDirectory() as tmp, FakeKlaviyo() as fake:
        env = service_env(tmp, fake)
        service = server(env)
        bare = server(env, app="bare_app:app")
        try:
            snapshot(service.url, FORM_PATH, Path(tmp) / "form", {})
            snapshot(service.url, "/moderation/", Path(tmp) / "moderation", AUTH)
            # (ours, in-process bare route, bare app in its own process)
            routes = {
                "form": (dict(path=FORM_PATH), dict(path="/bare/page/form"),
                         dict(path="/form")),
                "text": (dict(path="/client/reviews", photo=None),
                         dict(path="/bare/json", photo=None), dict(path="/json", photo=None)),
                "photo": (dict(path="/client/reviews", photo=photo),
                          dict(path="/bare/json", photo=photo),
                          dict(path="/json", photo=photo)),
                "moderation": (dict(path="/moderation/", headers=AUTH),
                               dict(path="/bare/page/moderation"),
                               dict(path="/moderation")),
            }
            figures = {"seconds": seconds, "photo_bytes": len(photo),
                       "text_answers": same_answer(service.url, bare.url)}
            for name, (ours, in_process, own) in routes.items():
                figures[name] = compare(service.url, ours, in_process, seconds,
                                        bare.url, own, paced_seconds=paced_seconds)
                print(name, dump(figures[name]), file=sys.stderr)
        finally:
            service.stop()
            bare.stop()
    return figures


def same_answer(ours: str, bare: str) -> dict:
    """One text submission to each: the bare app's answer must be ours byte for byte but
    for the id (same status, content type, length and document shape)."""
    import requests

    body = "0".join(unique_bodies(None)).encode()  # shopper number 0: wrk's count from 1
    headers = {"Content-Type": "application/json"}
    answers = [requests.post(url + path, data=body, headers=headers, timeout=10)
               for url, path in ((ours, "/client/reviews"), (bare, "/json"))]
    shapes = []
    for answer in answers:
        document = answer.json()
        document["data"]["id"] = "-" * len(document["data"]["id"])
        shapes.append({"status": answer.status_code, "bytes": len(answer.content),
                       "content_type": answer.headers.get("Content-Type"),
                       "document": json.dumps(document, sort_keys=True)})
    if shapes[0] != shapes[1]:
        raise RuntimeError(f"the bare app answers otherwise than ours: {shapes}")
    return {key: shapes[0][key] for key in ("status", "bytes", "content_type")}


def snapshot(base: str, path: str, into: Path, headers: dict[str, str]) -> None:
    """Save one answer of ours for the bare route to serve byte for byte."""
    import requests

    response = requests.get(base + path, headers=headers, timeout=10)
    response.raise_for_status()
    into.write_bytes(response.content)
    into.with_name(into.name + ".type").write_text(response.headers["Content-Type"])


def compare(base: str, ours: dict, bare: dict, seconds: int, own_base: str | None = None,
            own: dict | None = None, rounds: int = ROUNDS,
            paced_seconds: int = PACED_SECONDS) -> dict:
    """Capacity of the bare app in its own process (`own` on `own_base`; the ratio's
    baseline), of the in-process bare route (`bare` on `base`), and of ours (`ours` on
    `base`), in `rounds` turns (A B C A B C ...): each ratio is one round's, and the figure
    is the median round's, so a drift of the machine between two runs lands in one round's
    ratio, not in the figure. Then ours paced at 80% of its median capacity."""
    runs = [("bare_in_process", base, bare)]
    if own is not None:
        runs.insert(0, ("bare", own_base, own))
    runs.append(("ours", base, ours))
    for _, url, route in runs:  # warm every one up
        wrk(url + route["path"], seconds=2, **_options(route))
    turns = [{key: wrk(url + route["path"], seconds=seconds, **_options(route))
              for key, url, route in runs} for _ in range(rounds)]
    in_process = _shares(turns, "bare_in_process")
    ratios = _shares(turns, "bare") if own is not None else in_process
    result: dict = dict(turns[sorted(range(rounds), key=ratios.__getitem__)[rounds // 2]])
    rate = max(1, int(statistics.median(turn["ours"]["rps"] for turn in turns) * LOAD_SHARE))
    # Three paced runs, the middle one by p99 reported: at 80% load a single stall of the
    # machine (another process taking the core for 20 ms) queues requests for 100 ms, and
    # lands in one run of three, not in all (the three are kept in the figures).
    paced = sorted((wrk(base + ours["path"], seconds=paced_seconds, rate=rate,
                        **_options(ours)) for _ in range(PACED_RUNS)),
                   key=lambda run: run["p99_ms"])
    result.update({
        "rounds": turns,
        "ours_at_80_percent": paced[len(paced) // 2],
        "p99_ms_of_each_paced_run": [run["p99_ms"] for run in paced],
        "ratio_in_process": round(statistics.median(in_process), 3),
        "ratio_in_process_of_each_round": [round(r, 3) for r in in_process]})
    if own is not None:
        result["ratio"] = round(statistics.median(ratios), 3)
        result["ratio_of_each_round"] = [round(r, 3) for r in ratios]
    return result


def _shares(turns: list[dict], baseline: str) -> list[float]:
    """Ours as a share of `baseline`, one figure per round."""
    return [turn["ours"]["rps"] / turn[baseline]["rps"] for turn in turns]


def _options(route: dict) -> dict:
    """wrk's options for one run of a route; a posting route gets bodies of its own."""
    parts = unique_bodies(route["photo"]) if "photo" in route else None
    return {"parts": parts, "headers": route.get("headers")}


def aims(figures: dict) -> list[tuple[str, str, bool]]:
    """(aim, what was measured, met) for the summary table."""
    rows = [
        ("Form page at least 70% of a bare Flask app in its own process serving the same "
         "bytes", _ratios(figures["form"]), figures["form"]["ratio"] >= AIMS["form"]),
        ("Text submit (durable write) at least 50% of a bare Flask app in its own process "
         "parsing the same JSON", _ratios(figures["text"]),
         figures["text"]["ratio"] >= AIMS["text"]),
    ]
    for name, label in (("form", "form page"), ("text", "text submit"),
                        ("photo", "submit with a photo"), ("moderation", "moderation list")):
        p99 = figures[name]["ours_at_80_percent"]["p99_ms"]
        rows.append((f"p99 under {P99_AIM_MS:.0f} ms at 80% of capacity: {label}",
                     f"{p99:.1f} ms", p99 < P99_AIM_MS))
    return rows


def _each(ratios: list[float]) -> str:
    return " · ".join(f"{ratio:.2f}" for ratio in ratios)


def _ratios(f: dict) -> str:
    return f"{f['ratio']:.2f} (in-process route: {f['ratio_in_process']:.2f})"


def markdown(figures: dict) -> str:
    names = {"form": "`GET /embed` (the form page)",
             "text": "`POST /client/reviews`, text only",
             "photo": f"`POST /client/reviews`, one {figures['photo_bytes'] // 1000} KB photo",
             "moderation": "`GET /moderation/` (an empty mirror: bench/mirror.py fills one)"}
    rows = []
    for name, label in names.items():
        f = figures[name]
        ours, bare, inside, loaded = (f["ours"], f["bare"], f["bare_in_process"],
                                      f["ours_at_80_percent"])
        aim = AIMS.get(name)
        verdict = (f"{'met' if f['ratio'] >= aim else '**not met**'} (aim {aim:.0%})"
                   if aim else "no aim")
        p99 = loaded["p99_ms"]
        rows.append(
            f"| {label} | {bare['rps']:,.0f} | {inside['rps']:,.0f} | {ours['rps']:,.0f} | "
            f"**{f['ratio']:.2f}** {verdict} ({_each(f['ratio_of_each_round'])}) | "
            f"{f['ratio_in_process']:.2f} ({_each(f['ratio_in_process_of_each_round'])}) | "
            f"{ours['p50_ms']:.1f} / {ours['p99_ms']:.1f} | "
            f"{loaded['rps']:,.0f} | {loaded['p50_ms']:.1f} / **{p99:.1f}** "
            f"{'met' if p99 < P99_AIM_MS else '**not met**'} "
            f"({' · '.join(f'{v:.0f}' for v in f['p99_ms_of_each_paced_run'])}) | "
            f"{int(ours['non_2xx'] + ours['errors'] + loaded['non_2xx'] + loaded['errors'])} |")
    answer = figures["text_answers"]
    return "\n".join([
        "## Server capacity: our routes against bare Flask apps",
        "",
        "gunicorn runs the Procfile's own `web:` line (gevent worker, one process, 1,000 "
        "connections, access log on) twice, in two processes: `app:app` with bare routes "
        "added (`bench/bench_app.py`), and `bench/bare_app.py`, a bare Flask app of its own "
        "that imports nothing of ours: the baseline of the ratio. Its `POST /json` reads the "
        "body, decodes it and parses it with the same `json.loads` as ours, and answers "
        "our 202 document through Flask's `jsonify` (ours writes the same bytes with "
        f"orjson; checked: {answer['status']}, "
        f"`{answer['content_type']}`, {answer['bytes']} bytes from both, the same but for "
        "the id); its `GET /<name>` answers the bytes of one of our pages captured at the "
        "start, with the same content type. The in-process ratio (the same bare views "
        "inside our app, paying our hooks and middlewares too) is kept beside it. wrk (one "
        f"thread, 16 connections, {figures['seconds']} s per run, on loopback, the same 2 "
        f"cores) gives each route's capacity, in {ROUNDS} rounds that alternate (bare app, "
        "in-process route, ours; again): each ratio is the median of the rounds' ratios "
        "(each round's in brackets) and the req/s are the median round's, so a drift of "
        "the machine between two runs moves one round, not the figure. Then our route "
        f"again, paced at 80% of its median capacity (wrk's `delay()` on a clock of its own, "
        f"{PACED_SECONDS} s a run), three times, for the latency under "
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
        "| route | bare app req/s (own process) | bare route in our app req/s | ours req/s "
        "| ratio to the bare app | ratio to the in-process route "
        "| ours p50 / p99 ms at capacity "
        "| req/s at 80% | p50 / p99 ms at 80% (aim < 50) | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
    ])


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    figures = measure(args.seconds, args.quick)
    print(markdown(figures) if args.markdown else dump(figures))
    return figures


if __name__ == "__main__":
    main()
