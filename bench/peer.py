"""A peer: our text submission against Isso 0.14's comment creation, in the same run, A B A B.

    .venv/bin/python bench/peer.py [--seconds 10] [--rounds 2] [--quick] [--markdown]

Isso (https://isso-comments.de) is a self-hosted comment server, Flask's neighbour (Werkzeug,
SQLite): the nearest peer to a review widget that stores what a shopper posts. Its release
0.14.0 is an sdist on PyPI; it is downloaded (`pip download`) and built into a virtual
environment of its own under ~/.cache/widget-bench/isso-0.14 (WIDGET_BENCH_CACHE moves it),
never in the repository and never in our venv, with the same gunicorn release as ours.
It runs as its documentation's deployment page says for gunicorn (`gunicorn -b host:port -w
4 --preload isso.run`, ISSO_SETTINGS naming its config), but without `--preload`: the app
built in gunicorn's master starts Isso's purge thread there, and a worker forked while that
thread held `isso.lock` waits on it forever at its first comment (the first post timed out
in 4 of 14 starts here). Four sync worker processes on our 2 cores, where ours is the
Procfile's web line (one gevent process). Its config: Isso's defaults but moderation on (a
new comment waits, as a review does: 202), the guard off (its per-address rate limit would
refuse wrk's one address, as ours would: ours runs with RATELIMIT_ENABLED=false), the SQLite
database in a temporary folder. Ours: the service (`app:app`) with bench/capacity.py's
environment (web limits and the sender off, the open API).

wrk (one thread, 16 connections) posts to each in turn, ours then Isso's, `--rounds` times:
every request a new author's new text (wrk's Lua numbers them). Isso's `POST /new?uri=/x`
gets `{"text", "author", "email", "title"}` (the title spares it fetching the page to name
the thread); ours gets the review the other benches send. Then each is paced at 80% of its
own capacity for the latency under load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from importlib import metadata
from pathlib import Path

import requests
from capacity import LOAD_SHARE, P99_AIM_MS, server, service_env, unique_bodies
from common import dump, wrk

from tests.fake_klaviyo import FakeKlaviyo
from tests.processes import Service, free_port

ISSO_VERSION = "0.14.0"
ISSO_WORKERS = 4  # Isso's deployment docs: `gunicorn -b localhost:8080 -w 4 --preload isso.run`
# (without --preload here: see the module's docstring)
AIM = 4.0  # our submissions/s at least 4 times Isso's comment creations/s
CACHE = Path(os.environ.get("WIDGET_BENCH_CACHE", Path.home() / ".cache" / "widget-bench"))
ISSO_PATH = "/new?uri=/x"


def isso_venv() -> Path:
    """The virtual environment holding Isso 0.14 and gunicorn (our release), built once."""
    venv = CACHE / "isso-0.14"
    gunicorn = metadata.version("gunicorn")
    marker = venv / "bench-ready"
    wanted = f"isso=={ISSO_VERSION} gunicorn=={gunicorn}\n"
    if marker.exists() and marker.read_text() == wanted:
        return venv
    print(f"peer: building Isso {ISSO_VERSION} into {venv} ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    downloads = CACHE / "isso-dl"
    subprocess.run([*pip, "download", "--no-deps", "-d", str(downloads),
                    f"isso=={ISSO_VERSION}"], check=True)
    sdist = next(downloads.glob(f"isso-{ISSO_VERSION}.tar.gz"))
    subprocess.run([*pip, "install", str(sdist), f"gunicorn=={gunicorn}"], check=True)
    marker.write_text(wanted)
    return venv


ISSO_CONFIG = """\
[general]
dbpath = {folder}/comments.db
; Isso asks for the site's address at start (a HEAD, answered or not); nothing listens here.
host = http://127.0.0.1:9
[moderation]
enabled = true
[guard]
enabled = false
"""


def isso_server(venv: Path, folder: str, workers: int = ISSO_WORKERS) -> Service:
    """Isso under gunicorn as its docs deploy it, on a free loopback port, once it answers."""
    config = Path(folder) / "isso.cfg"
    config.write_text(ISSO_CONFIG.format(folder=folder))
    port = free_port()
    args = [str(venv / "bin" / "gunicorn"), "-b", f"127.0.0.1:{port}", "-w", str(workers),
            "isso.run"]
    env = {"ISSO_SETTINGS": str(config), "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
           "VIRTUAL_ENV": str(venv), "PYTHONPATH": ""}
    return Service(args, env, port).wait_ready(60, path="/info")


def isso_bodies() -> list[str]:
    """Isso's comment, split where wrk puts its request counter (a new author each time)."""
    run = uuid.uuid4().hex[:12]
    body = {"text": f"Lovely shirt, true to size. Comment {run} number @N@.",
            "author": f"Shopper {run} @N@", "email": f"shopper-{run}-@N@@example.com",
            "title": "Linen shirt"}
    return json.dumps(body).split("@N@")


def measure(seconds: int = 10, rounds: int = 2, quick: bool = False,
            workers: int = ISSO_WORKERS) -> dict:
    if quick:
        seconds = 3
    rounds = max(2, rounds)
    venv = isso_venv()
    with tempfile.TemporaryDirectory() as tmp, FakeKlaviyo() as fake, \
            tempfile.TemporaryDirectory() as isso_tmp:
        ours = server(service_env(tmp, fake), app="app:app")
        try:
            isso = isso_server(venv, isso_tmp, workers)
        except BaseException:
            ours.stop()
            raise
        try:
            contenders = {
                "ours": (ours.url + "/client/reviews", lambda: unique_bodies(None)),
                "isso": (isso.url + ISSO_PATH, isso_bodies),
            }
            first = {name: _one(url, "0".join(bodies()))
                     for name, (url, bodies) in contenders.items()}
            for url, bodies in contenders.values():  # warm both up
                wrk(url, parts=bodies(), seconds=2)
            runs: dict[str, list[dict]] = {name: [] for name in contenders}
            for round_ in range(rounds):  # A B A B
                for name, (url, bodies) in contenders.items():
                    run = wrk(url, parts=bodies(), seconds=seconds)
                    runs[name].append(run)
                    print(f"peer round {round_ + 1}: {name} {dump(run)}", file=sys.stderr)
            figures: dict = {"seconds": seconds, "rounds": rounds, "isso_version": ISSO_VERSION,
                             "isso_workers": workers, "isso_server": "gunicorn (sync workers)",
                             "first_answer": first}
            for name, (url, bodies) in contenders.items():
                rps = statistics.median(run["rps"] for run in runs[name])
                paced = wrk(url, parts=bodies(), seconds=seconds,
                            rate=max(1, int(rps * LOAD_SHARE)))
                figures[name] = {"runs": runs[name], "rps": round(rps, 1),
                                 "p99_ms": statistics.median(r["p99_ms"] for r in runs[name]),
                                 "at_80_percent": paced}
            figures["ratio"] = round(figures["ours"]["rps"] / figures["isso"]["rps"], 2)
            figures["ratio_of_each_round"] = [
                round(a["rps"] / b["rps"], 2) for a, b in
                zip(runs["ours"], runs["isso"], strict=True)]
        finally:
            ours.stop()
            isso.stop()
    return figures


def _one(url: str, body: str) -> dict:
    """One post before the runs: both must accept (202), and say what they answer."""
    answer = requests.post(url, data=body.encode(), timeout=30,
                           headers={"Content-Type": "application/json"})
    if answer.status_code != 202:
        raise RuntimeError(f"{url} answered {answer.status_code}: {answer.text[:300]}")
    return {"status": answer.status_code, "bytes": len(answer.content),
            "content_type": answer.headers.get("Content-Type")}


def aims(figures: dict) -> list[tuple[str, str, bool]]:
    ours, isso = figures["ours"], figures["isso"]
    p99 = ours["at_80_percent"]["p99_ms"]
    return [
        (f"Text submit at least {AIM:.0f} times Isso {figures['isso_version']}'s comment "
         "creation (moderation on, guard off), same run",
         f"{figures['ratio']:.1f}x ({ours['rps']:,.0f} against {isso['rps']:,.0f} req/s)",
         figures["ratio"] >= AIM),
        (f"p99 under {P99_AIM_MS:.0f} ms at 80% of capacity: text submit, beside Isso",
         f"{p99:.1f} ms (Isso's: {isso['at_80_percent']['p99_ms']:.1f} ms)", p99 < P99_AIM_MS),
    ]


def markdown(figures: dict) -> str:
    rows = []
    labels = {"ours": "ours: `POST /client/reviews` (text)",
              "isso": f"Isso {figures['isso_version']}: `POST {ISSO_PATH}`"}
    for name, label in labels.items():
        f = figures[name]
        each = " · ".join(f"{run['rps']:,.0f}" for run in f["runs"])
        p99s = " · ".join(f"{run['p99_ms']:.0f}" for run in f["runs"])
        paced = f["at_80_percent"]
        errors = sum(int(run["non_2xx"] + run["errors"]) for run in [*f["runs"], paced])
        rows.append(f"| {label} | {figures['first_answer'][name]['status']} | "
                    f"**{f['rps']:,.0f}** ({each}) | {p99s} | {paced['rps']:,.0f} | "
                    f"{paced['p50_ms']:.1f} / **{paced['p99_ms']:.1f}** | {errors} |")
    ratio = figures["ratio"]
    return "\n".join([
        "## A peer: Isso's comment creation against our submission",
        "",
        __doc__.split("\n\n", 2)[2].strip().replace("\n", " "),
        "",
        "```sh",
        ".venv/bin/python bench/peer.py --markdown     # builds Isso's venv on its first run",
        "```",
        "",
        f"Ours against Isso: **{ratio:.1f} times** (aim {AIM:.0f}; the medians of "
        f"{figures['rounds']} rounds of {figures['seconds']} s; each round: "
        f"{', '.join(f'{r:.1f}' for r in figures['ratio_of_each_round'])}). Isso: "
        f"{figures['isso_workers']} {figures['isso_server']}.",
        "",
        "| route | answer | req/s, median (each round) | p99 ms at capacity, each round "
        "| req/s at 80% | p50 / p99 ms at 80% | non-2xx and errors |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=ISSO_WORKERS,
                        help="Isso's gunicorn workers (its docs: 4)")
    parser.add_argument("--quick", action="store_true", help="3 s runs")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    figures = measure(args.seconds, args.rounds, args.quick, args.workers)
    print(markdown(figures) if args.markdown else dump(figures))


if __name__ == "__main__":
    main()
