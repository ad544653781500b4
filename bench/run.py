"""Every benchmark in one run; writes the figures into docs/benchmarks.md.

    bench/run [--quick] [--only capacity,burst,...] [--redis URL | --no-redis]

Runs capacity (ours against bare Flask apps in their own processes, and against bare routes
in ours), burst (twice: one address per shopper, one per client), photos, hostile photos,
the form in Chromium, the mirror (its pages against a bare app), the display widget (against
a bare app), a peer (Isso 0.14's comment creation against our submission, A B A B),
delivery, and last the in-process profiles of each aim's route (printed in full for the
routes behind the aims not met), one after the
other (never two at once: they share the 2 cores), then replaces the generated part of
docs/benchmarks.md (between its markers; the analysis after it is kept) and writes every raw
figure to docs/benchmarks.json. `--quick` is a smoke run (short, scaled where it says so):
its figures are not for the docs, so it writes to bench/out/ instead, as does a run of some
sections only (`--only`).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import browser
import burst
import capacity
import delivery
import display
import hostile
import mirror
import peer
import photos
import profiles
from common import ROOT

BEGIN = "<!-- bench/run: generated from here -->"
END = "<!-- bench/run: generated up to here -->"
# "profile" is always run last: it profiles the routes of the aims the others did not meet.
SECTIONS = ("capacity", "burst", "photos", "hostile", "browser", "mirror", "display", "peer",
            "delivery", "profile")


def run_sections(names: list[str], quick: bool, redis_url: str | None) -> list[dict]:
    """[{name, figures, markdown, aims, seconds}] in the order given."""
    jobs = {
        "capacity": [("capacity", capacity, lambda: capacity.measure(quick=quick))],
        "burst": [("burst (one address per shopper)", burst,
                   lambda: burst.measure(quick=quick, per_shopper=True)),
                  ("burst (one address per client)", burst,
                   lambda: burst.measure(quick=quick, per_shopper=False))],
        "photos": [("photos", photos, lambda: photos.measure(quick=quick))],
        "hostile": [("hostile", hostile, lambda: hostile.measure(quick=quick))],
        "browser": [("browser", browser, lambda: browser.measure(quick=quick))],
        "mirror": [("mirror", mirror, lambda: mirror.measure(quick=quick))],
        "display": [("display", display, lambda: display.measure(quick=quick))],
        "peer": [("peer", peer, lambda: peer.measure(quick=quick))],
        "delivery": [("delivery", delivery,
                      lambda: delivery.measure(quick=quick, redis_url=redis_url))],
        "profile": [("profile", profiles,
                     lambda: profiles.measure(quick=quick, unmet=unmet(done)))],
    }
    done: list[dict] = []
    for name in names:
        for title, module, measure in jobs[name]:
            print(f"bench/run: {title} ...", file=sys.stderr, flush=True)
            started = time.monotonic()
            figures = measure()
            seconds = round(time.monotonic() - started, 1)
            print(f"bench/run: {title} took {seconds} s", file=sys.stderr, flush=True)
            done.append({"name": title, "figures": figures, "seconds": seconds,
                         "markdown": module.markdown(figures).rstrip(),
                         "aims": module.aims(figures)})
    return done


def unmet(results: list[dict]) -> list[str]:
    """The aims not met so far, as the summary names them."""
    return [aim for result in results for aim, _, met in result["aims"] if not met]


def header(results: list[dict], argv: list[str], seconds: float) -> str:
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = " (with uncommitted changes)" if _git("status", "--porcelain") else ""
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    rows = [f"| {aim} | {figure} | {'met' if met else '**not met**'} |"
            for result in results for aim, figure, met in result["aims"]]
    return "\n".join([
        BEGIN,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit `{commit}`{dirty} on "
        f"{_cores()} cores ({cpu}), Python {platform.python_version()}, in one run of "
        f"{seconds / 60:.1f} minutes:",
        "",
        "```sh",
        " ".join(["bench/run", *argv]),
        "```",
        "",
        "Every figure below comes from that run; the raw figures are in "
        "`docs/benchmarks.json`. Where an aim is not met, the last section (in-process "
        "profiles) shows where its route's time goes, and the analysis after the generated "
        "part says what it means.",
        "",
        "| aim | measured | |",
        "|---|---|---|",
        *rows,
    ])


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip()


def write(results: list[dict], argv: list[str], seconds: float, out: Path) -> None:
    generated = "\n\n".join([header(results, argv, seconds),
                             *(result["markdown"] for result in results), END])
    doc = out / "benchmarks.md"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n\n" + BEGIN + "\n" + END + "\n"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + generated + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + generated + "\n"
    doc.write_text(text)
    raw = {result["name"]: {"seconds": result["seconds"], "figures": result["figures"]}
           for result in results}
    (out / "benchmarks.json").write_text(json.dumps(raw, indent=2, sort_keys=True) + "\n")
    print(f"bench/run: wrote {doc} and {out / 'benchmarks.json'}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run, written to bench/out")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0",
                        help="Redis for the two-sender drain")
    parser.add_argument("--no-redis", action="store_true", help="skip the two-sender drain")
    args = parser.parse_args()
    names = [name for name in args.only.split(",") if name]
    names.sort(key=lambda name: name == "profile")  # last, whatever the order asked
    unknown = set(names) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the fake Klaviyo's request log
    started = time.monotonic()
    results = run_sections(names, args.quick, None if args.no_redis else args.redis)
    partial = args.quick or set(names) != set(SECTIONS)
    out = ROOT / ("bench/out" if partial else "docs")
    out.mkdir(parents=True, exist_ok=True)
    write(results, sys.argv[1:], time.monotonic() - started, out)
    failed = [aim for result in results for aim, _, met in result["aims"] if not met]
    for aim in failed:
        print(f"bench/run: not met: {aim}", file=sys.stderr)


if __name__ == "__main__":
    main()
