"""Hostile photos: what they cost the real service, and what a mutation fuzz gets back.

    .venv/bin/python bench/hostile.py [--quick] [--markdown]

The Procfile's gunicorn (one gevent worker, decodes on the photos' own pool of threads), fresh per
case and warmed up by one small photo; the worker's peak RSS is reset to its RSS
(`echo 5 > /proc/<worker>/clear_refs`) before the posts and read (`VmHWM`) after them.
Cases: four concurrent 49 MP lossless WebPs (16383x3000 white, 2 KB each); six concurrent
4096x2160 WebPs (the WebP cap, noisy) with PHOTO_WAIT_SECONDS=0.5, which the decode budget
must queue; the 2048x2048 progressive JPEG whose last scan is repeated 5,000 times, alone and
five in one review (worker CPU from /proc/<worker>/stat). The fuzz: seeded mutants of
tests/photo_mutants.py through the API and the no-JavaScript form (Flask's test client).
The estimates: each photo's estimate against its decode's measured peak, in a fresh process.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, dump
from PIL import Image

from tests import hostile_corpus as hostile
from tests.hostile_corpus import cpu_seconds, post_together, status_kb, uri, worker_pid
from tests.photo_mutants import mutants, run_api
from tests.processes import gunicorn
from tests.reviews import form_token
from widget.intake.decoding import PhotoPolicy

GROWTH_AIM_MB = 400  # four concurrent 49 MP WebPs
ANSWER_AIM_S = 10
SCAN_CPU_AIM_S = 2.0
ENV = {"WIDGET_OPEN_API": "true", "RATELIMIT_ENABLED": "false", "WIDGET_SENDER": "off",
       "WIDGET_TRUSTED_PROXIES": "0", "SECRET_KEY": "bench", "KLAVIYO_PUBLIC_KEY": "BENCH"}
FUZZ, QUICK_FUZZ = (8000, 800), (2000, 200)  # API mutants, form mutants


def noisy(size, mode="RGB"):
    noise = Image.effect_noise(size, 80)
    return Image.merge(mode, [noise] * len(mode))


def smooth(size):
    """Gradients: a photo's large smooth areas, compressing well (a 50 MP JPEG in 1 MB)."""
    across = Image.linear_gradient("L").resize(size)
    return Image.merge("RGB", [across, Image.radial_gradient("L").resize(size),
                               across.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])


def estimate_photos(folder: Path, quick: bool) -> dict[str, Path]:
    """Photos at the caps and in between, by format and mode, for the estimate table."""
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: a rotated copy at the end
    cases = {
        "JPEG 12 MP baseline, turned": ("a.jpg", noisy((4000, 3000)), {"exif": exif}),
        "JPEG 12 MP progressive 4:4:4": ("b.jpg", noisy((4000, 3000)),
                                         {"progressive": True, "subsampling": 0}),
        "JPEG 50 MP progressive": ("c.jpg", smooth((8160, 6120)), {"progressive": True}),
        "PNG 12 MP RGBA": ("d.png", noisy((4000, 3000), "RGBA"), {"compress_level": 1}),
        "PNG 16.8 MP RGBA (cap)": ("e.png", smooth((4096, 4096)).convert("RGBA"), {}),
        "WebP 8.8 MP lossy (cap)": ("f.webp", noisy((4096, 2160)), {"quality": 80}),
        "WebP 8.8 MP lossless (cap)": ("g.webp", noisy((4096, 2160)),
                                       {"lossless": True, "method": 0}),
        "JPEG 1000x800": ("h.jpg", noisy((1000, 800)), {}),
    }
    if quick:
        cases = {name: case for name, case in cases.items() if "12 MP" in name}
    paths = {}
    for name, (file, image, options) in cases.items():
        paths[name] = folder / file
        image.save(paths[name], quality=options.pop("quality", 90), **options)
    return paths


def measure_estimates(quick: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        rows = {}
        for name, path in estimate_photos(Path(tmp), quick).items():
            out = subprocess.run(
                [sys.executable, "-m", "tests.hostile_corpus", "peak", str(path)], cwd=ROOT,
                capture_output=True, text=True, check=True,
                env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "1048576"})
            rows[name] = json.loads(out.stdout)
            print("estimate", name, rows[name], file=sys.stderr)
    return rows


def service_case(posts: list[list[str]], **settings) -> dict:
    """Peak RSS growth of a fresh worker while it answers `posts` (sent together), and each
    answer: status, seconds, Retry-After, the first error's detail."""
    with tempfile.TemporaryDirectory() as tmp:
        web = gunicorn({**ENV, "DATABASE_URL": f"sqlite:///{tmp}/outbox.db", **settings},
                       log_path=Path(tmp) / "web.log").wait_ready()
        try:
            warm = post_together(web.url, [[uri(hostile.jpeg())]])
            assert warm[0][0] == 202, warm[0][2].text
            worker = worker_pid(web)
            Path(f"/proc/{worker}/clear_refs").write_text("5")  # VmHWM := VmRSS
            before, cpu = status_kb("VmRSS", worker), cpu_seconds(worker)
            answers = post_together(web.url, posts)
            peak = status_kb("VmHWM", worker)
            cpu = cpu_seconds(worker) - cpu
        finally:
            web.stop()
        tracebacks = (Path(tmp) / "web.log").read_text().count("Traceback")
    return {"rss_before_mb": round(before / 1024, 1),
            "peak_growth_mb": round((peak - before) / 1024, 1),
            "worker_cpu_s": round(cpu, 3), "tracebacks_logged": tracebacks,
            "answers": [{"status": status, "seconds": round(seconds, 3),
                         "retry_after": response.headers.get("Retry-After"),
                         "detail": ((response.json().get("errors") or [{}])[0].get("detail")
                                    if status != 202 else None)}
                        for status, seconds, response in answers]}


def measure_fuzz(quick: bool) -> dict:
    """Mutants through the API and the form of an app built as the tests build it."""
    from widget import create_app

    logging.disable(logging.INFO)  # a line for each refusal
    api_count, form_count = QUICK_FUZZ if quick else FUZZ
    with tempfile.TemporaryDirectory() as tmp:
        settings = {"TESTING": True, "WIDGET_SENDER": "off", "RATELIMIT_ENABLED": False,
                    "WIDGET_OPEN_API": True, "WIDGET_TRUSTED_PROXIES": 0,
                    "SECRET_KEY": "test-secret", "KLAVIYO_PUBLIC_KEY": "BENCH",
                    "DATABASE_URL": f"sqlite:///{tmp}/outbox.db"}
        started = time.monotonic()
        tally = run_api(create_app(settings).test_client(), api_count, seed=1)
        api_seconds = time.monotonic() - started
        client = create_app({**settings, "WIDGET_OPEN_API": False,
                             "WIDGET_TOKEN_MIN_SECONDS": 0,
                             "DATABASE_URL": f"sqlite:///{tmp}/form.db"}).test_client()
        form_statuses: dict[int, int] = {}
        for number, mutant in enumerate(mutants(form_count, seed=2)):
            page = client.post("/embed", content_type="multipart/form-data", data={
                "review_type": "review", "rating": "4", "author": "Ann",
                "content": f"Fuzzed {number}.", "email": f"f-{number}@example.com",
                "product_id": "42", "integration": "shopify",
                "idempotency_key": f"bench{number:027d}", "form_token": form_token("shopify:42"),
                "photos": (io.BytesIO(mutant.data), "photo", f"image/{mutant.format.lower()}")})
            form_statuses[page.status_code] = form_statuses.get(page.status_code, 0) + 1
    logging.disable(logging.NOTSET)
    return {"api_mutants": tally.mutants, "api_statuses": dict(tally.statuses),
            "api_5xx": tally.server_errors, "api_bad_answers": len(tally.bad),
            "api_seconds": round(api_seconds, 1), "form_mutants": form_count,
            "form_statuses": form_statuses,
            "form_5xx": sum(n for status, n in form_statuses.items() if status >= 500)}


def measure(quick: bool = False) -> dict:
    """Every figure; JSON-serialisable."""
    webp = uri(hostile.white_webp(), "image/webp")
    scans = uri(hostile.repeated_scans())
    cap = io.BytesIO()
    noisy((4096, 2160)).save(cap, "WEBP", quality=80)
    figures = {"policy": {"webp_cap_mp": PhotoPolicy().max_webp_pixels / 1e6,
                          "png_cap_mp": PhotoPolicy().max_png_pixels / 1e6,
                          "budget_mb": PhotoPolicy().memory_budget / 1e6}}
    figures["webp_49mp_x4"] = service_case([[webp]] * 4)
    print("webp_49mp_x4", figures["webp_49mp_x4"], file=sys.stderr)
    figures["webp_cap_x6"] = service_case([[uri(cap.getvalue(), "image/webp")]] * 6,
                                          PHOTO_WAIT_SECONDS="0.5")
    print("webp_cap_x6", figures["webp_cap_x6"], file=sys.stderr)
    figures["scans_5000"] = service_case([[scans]])
    figures["scans_5000_x5"] = service_case([[scans] * 5])
    print("scans", figures["scans_5000"], figures["scans_5000_x5"], file=sys.stderr)
    figures["fuzz"] = measure_fuzz(quick)
    print("fuzz", figures["fuzz"], file=sys.stderr)
    figures["estimates"] = measure_estimates(quick)
    return figures


def slowest(case: dict) -> float:
    return max(answer["seconds"] for answer in case["answers"])


def statuses(case: dict) -> str:
    found: dict[int, int] = {}
    for answer in case["answers"]:
        found[answer["status"]] = found.get(answer["status"], 0) + 1
    return ", ".join(f"{n}x {status}" for status, n in sorted(found.items()))


def aims(figures: dict) -> list[tuple[str, str, bool]]:
    """(aim, what was measured, met) for bench/run's summary table."""
    webp, cap, scans = figures["webp_49mp_x4"], figures["webp_cap_x6"], figures["scans_5000"]
    fuzz, estimates = figures["fuzz"], figures["estimates"].values()
    cover = min(row["estimate_mb"] / max(row["measured_mb"], 0.1) for row in estimates)
    answered = max(slowest(webp), slowest(cap))
    return [
        (f"Four concurrent 49 MP WebP posts grow the worker by at most {GROWTH_AIM_MB} MB",
         f"{webp['peak_growth_mb']:.0f} MB", webp["peak_growth_mb"] <= GROWTH_AIM_MB),
        (f"Hostile and over-budget photo posts answered within {ANSWER_AIM_S} s",
         f"{answered:.2f} s", answered <= ANSWER_AIM_S),
        (f"The 5,000-scan JPEG costs well under {SCAN_CPU_AIM_S:g} s of CPU",
         f"{scans['worker_cpu_s']:.2f} s ({scans['answers'][0]['status']})",
         scans["worker_cpu_s"] < SCAN_CPU_AIM_S / 4),
        ("Mutation fuzz: no 5xx", f"{fuzz['api_5xx'] + fuzz['form_5xx']} of "
         f"{fuzz['api_mutants'] + fuzz['form_mutants']:,}",
         fuzz["api_5xx"] + fuzz["form_5xx"] == 0 and fuzz["api_bad_answers"] == 0),
        ("Every photo's estimate covers its decode's measured peak", f"{cover:.2f}x at least",
         cover >= 1.0),
    ]


def markdown(figures: dict) -> str:
    """The section for docs/benchmarks.md."""
    policy, fuzz = figures["policy"], figures["fuzz"]
    rows = []
    for case, label in (("webp_49mp_x4", "4 concurrent 49 MP lossless WebPs (2 KB each)"),
                        ("webp_cap_x6", "6 concurrent 8.8 MP WebPs (the cap), wait 0.5 s"),
                        ("scans_5000", "JPEG, last scan repeated 5,000 times"),
                        ("scans_5000_x5", "five of those in one review")):
        c = figures[case]
        retry = {a["retry_after"] for a in c["answers"] if a["retry_after"]}
        rows.append(f"| {label} | {statuses(c)}"
                    + (f" (Retry-After {', '.join(sorted(retry))})" if retry else "")
                    + f" | {slowest(c):.2f} s | {c['peak_growth_mb']:.0f} MB | "
                    f"{c['worker_cpu_s']:.2f} s | {c['tracebacks_logged']} |")
    details = sorted({a["detail"] for case in ("webp_49mp_x4", "scans_5000")
                      for a in figures[case]["answers"] if a["detail"]})
    estimate_rows = [f"| {name} | {row['size']} {row['mode']} | {row['measured_mb']:.0f} MB | "
                     f"{row['estimate_mb']:.0f} MB | "
                     f"{row['estimate_mb'] / max(row['measured_mb'], 0.1):.2f} |"
                     for name, row in figures["estimates"].items()]
    api = ", ".join(f"{n:,}x {s}" for s, n in sorted(fuzz["api_statuses"].items()))
    form = ", ".join(f"{n:,}x {s}" for s, n in sorted(fuzz["form_statuses"].items()))
    return "\n".join([
        "## Hostile photos",
        "",
        __doc__.split("\n\n", 2)[2].strip().replace("\n", " "),
        "",
        "```sh",
        ".venv/bin/python bench/hostile.py --markdown     # JSON without --markdown",
        "```",
        "",
        f"Caps: WebP {policy['webp_cap_mp']:.2f} MP, PNG {policy['png_cap_mp']:.1f} MP, "
        f"JPEG 50 MP (decoded at 1/2 to 1/8 scale); decode budget "
        f"{policy['budget_mb']:.0f} MB per process.",
        "",
        "| posts | answers | slowest answer | worker peak RSS growth | worker CPU "
        "| tracebacks logged |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "Refusals: " + "; ".join(f"“{detail}”" for detail in details),
        "",
        f"**Fuzz**: {fuzz['api_mutants']:,} mutants through `POST /client/reviews` in "
        f"{fuzz['api_seconds']:.0f} s ({api}): **{fuzz['api_5xx']} 5xx**, "
        f"{fuzz['api_bad_answers']} 4xx without a JSON:API detail; {fuzz['form_mutants']:,} "
        f"through the no-JavaScript form ({form}): **{fuzz['form_5xx']} 5xx**.",
        "",
        "**Estimates** (what the decode budget counts, read from the header) against the "
        "peak RSS growth of the decode, orientation and re-encoding in a fresh process "
        "(`python -m tests.hostile_corpus peak FILE`, noisy pixels):",
        "",
        "| photo | size | measured peak | estimate | estimate ÷ measured |",
        "|---|---|---|---|---|",
        *estimate_rows,
    ])


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller fuzz and estimate set")
    parser.add_argument("--markdown", action="store_true", help="print the docs section")
    args = parser.parse_args()
    figures = measure(args.quick)
    print(markdown(figures) if args.markdown else dump(figures))
    return figures


if __name__ == "__main__":
    main()
