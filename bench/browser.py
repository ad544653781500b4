"""The form in headless Chromium: its weight on the wire, time to interactive, photo downscale.

    .venv/bin/python bench/browser.py [--quick] [--markdown]

The app runs under gunicorn exactly as the Procfile says, on loopback; Chromium is Debian's.
"""

from __future__ import annotations

import argparse
import gzip
import math
import statistics
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import dump  # noqa: E402  (also puts the repo root on sys.path)
from photos import make_photo  # noqa: E402

from tests.processes import gunicorn  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
PAGE = "/embed?product_id=123&product_name=Shirt"
WEIGHT_AIM_BYTES = 15 * 1024  # the budget tests/browser/test_embed_quality.py holds
READY_AIM_MS = 200.0
# The last Isso release with a wheel: an sdist would run its build code just to be read.
ISSO_VERSION = "0.13.0"
ISSO_PUBLISHED_GZIP_BYTES = 20_000  # the figure usually quoted: "about 20 KB" gzipped

# form.js sets this mark once every handler is wired (the end of its setup).
READY = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const mark = performance.getEntriesByName("kr-ready")[0];
  const assets = performance.getEntriesByType("resource");
  return {ready: mark.startTime, dom_interactive: nav.domInteractive,
          dom_content_loaded: nav.domContentLoadedEventStart,
          assets_from_cache: assets.length > 0 && assets.every(e => e.transferSize === 0)};
}"""

# Armed before the photo is chosen: times from the input's change event (a capture listener
# on document runs before form.js's own) to the preview <img> being inserted, then decoded.
# The blob's size comes from URL.createObjectURL: the page's CSP (connect-src) forbids
# fetching the blob: URL back.
WATCH_PREVIEW = """() => {
  let start = null, bytes = null;
  const objectURL = URL.createObjectURL;
  URL.createObjectURL = blob => { bytes = blob.size; return objectURL.call(URL, blob); };
  document.addEventListener("change", () => { start = performance.now(); },
                            {capture: true, once: true});
  const list = document.getElementById("kr-previews");
  const preview = new Promise((resolve, reject) => {
    new MutationObserver((_, observer) => {
      const img = list.querySelector("img");
      if (!img) return;
      observer.disconnect();
      const inserted = performance.now();
      img.decode().then(() => resolve({
        inserted_ms: inserted - start, decoded_ms: performance.now() - start,
        blob_bytes: bytes, width: img.naturalWidth, height: img.naturalHeight}), reject);
    }).observe(list, {childList: true});
  });
  const late = new Promise((_, reject) => setTimeout(() => reject(new Error(
    "no preview in 60 s: " + document.getElementById("kr-status").textContent)), 60000));
  window.krPreview = Promise.race([preview, late]);
}"""


@contextmanager
def app_server() -> Iterator[str]:
    """The Procfile's web process with a throwaway SQLite outbox; yields its origin."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"DATABASE_URL": f"sqlite:///{tmp}/outbox.db", "WIDGET_SENDER": "off",
               "SECRET_KEY": "bench", "KLAVIYO_PUBLIC_KEY": "PUBKEY"}
        server = gunicorn(env).wait_ready()
        try:
            yield server.url
        finally:
            server.stop()


@contextmanager
def chromium() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def weight(browser, url: str, accept_encoding: str | None) -> dict:
    """Bytes of the page's HTML, CSS and JS as Chromium received them (encoded bodies)."""
    headers = {"Accept-Encoding": accept_encoding} if accept_encoding else {}
    context = browser.new_context(extra_http_headers=headers)
    try:
        page = context.new_page()
        responses = []
        page.on("response", lambda response: responses.append(response))
        page.goto(url + PAGE, wait_until="load")
        # Resource Timing's transferSize (body + a flat 300 B for headers) is what the test
        # budgets; sizes() gives the encoded body alone.
        transfer = page.evaluate("""() => [...performance.getEntriesByType("navigation"),
            ...performance.getEntriesByType("resource")].map(e => [e.name, e.transferSize])""")
        figures: dict = {"encodings": {}}
        for response in responses:
            kind = {"document": "html", "stylesheet": "css", "script": "js"}[
                response.request.resource_type]
            figures[f"{kind}_bytes"] = response.request.sizes()["responseBodySize"]
            figures["encodings"][kind] = response.headers.get("content-encoding")
        figures["total_bytes"] = sum(figures[f"{k}_bytes"] for k in ("html", "css", "js"))
        figures["total_transfer_bytes"] = sum(size for _, size in transfer)
        return figures
    finally:
        context.close()


def isso_embed() -> dict:
    """Isso's embed.min.js (and the isso.css it links) from its PyPI wheel, gzipped at 6."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run([sys.executable, "-m", "pip", "download", f"isso=={ISSO_VERSION}",
                            "--no-deps", "--only-binary", ":all:", "--quiet", "-d", tmp],
                           check=True, capture_output=True, timeout=120)
            wheel = next(Path(tmp).glob("isso-*.whl"))
            with zipfile.ZipFile(wheel) as archive:
                js = archive.read("isso/js/embed.min.js")
                css = archive.read("isso/css/isso.css")
        except (subprocess.SubprocessError, StopIteration, KeyError, OSError) as error:
            return {"version": ISSO_VERSION, "downloaded": False, "error": repr(error)[:200],
                    "published_gzip_bytes": ISSO_PUBLISHED_GZIP_BYTES}
    js_gz = len(gzip.compress(js, 6, mtime=0))
    css_gz = len(gzip.compress(css, 6, mtime=0))
    return {"version": ISSO_VERSION, "downloaded": True, "embed_min_js_bytes": len(js),
            "embed_min_js_gzip_bytes": js_gz, "isso_css_gzip_bytes": css_gz,
            "total_gzip_bytes": js_gz + css_gz,
            "published_gzip_bytes": ISSO_PUBLISHED_GZIP_BYTES}


def summary(values: list[float]) -> dict:
    """Median, nearest-rank p95 and max, in ms to 0.1."""
    ordered = sorted(values)
    p95 = ordered[math.ceil(0.95 * len(ordered)) - 1]
    return {"median": round(float(statistics.median(ordered)), 1),
            "p95": round(float(p95), 1), "max": round(float(ordered[-1]), 1), "n": len(ordered)}


def load_times(browser, url: str, loads: int, warm: bool) -> dict:
    """navigationStart to kr-ready over `loads` loads: each in a fresh context, or one cached."""
    samples = []
    context = browser.new_context() if warm else None
    try:
        if context:
            first = context.new_page()
            first.goto(url + PAGE)  # fills the cache: the assets' URLs are versioned, immutable
            first.close()
        for _ in range(loads):
            own = None if warm else browser.new_context()
            page = (context or own).new_page()
            page.goto(url + PAGE, wait_until="load")
            page.wait_for_function("performance.getEntriesByName('kr-ready').length > 0")
            samples.append(page.evaluate(READY))
            page.close()
            if own:
                own.close()
    finally:
        if context:
            context.close()
    return {
        "ready_ms": summary([s["ready"] for s in samples]),
        "dom_interactive_ms": summary([s["dom_interactive"] for s in samples]),
        "dom_content_loaded_ms": summary([s["dom_content_loaded"] for s in samples]),
        "loads_with_assets_from_cache": sum(s["assets_from_cache"] for s in samples),
    }


def downscale(browser, url: str, photo: Path, runs: int) -> dict:
    """Change event on #kr-photos to the downscaled preview, each run on a fresh page."""
    samples = []
    for _ in range(runs):
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(url + PAGE)
            page.wait_for_function("performance.getEntriesByName('kr-ready').length > 0")
            page.evaluate(WATCH_PREVIEW)
            page.set_input_files("#kr-photos", str(photo))
            samples.append(page.evaluate("window.krPreview"))
        finally:
            context.close()
    last = samples[-1]
    return {
        "photo": {"pixels": "4000x3000", "jpeg_bytes": photo.stat().st_size,
                  "exif_orientation": 6},
        "preview_inserted_ms": summary([s["inserted_ms"] for s in samples]),
        "preview_decoded_ms": summary([s["decoded_ms"] for s in samples]),
        "blob_bytes": last["blob_bytes"],
        "blob_pixels": f"{last['width']}x{last['height']}",
    }


def measure(quick: bool = False) -> dict:
    """Every figure of the section: weight, Isso's weight, load times, photo downscale."""
    loads, photo_runs = (8, 2) if quick else (30, 5)
    with tempfile.TemporaryDirectory() as tmp, app_server() as url, chromium() as browser:
        photo = Path(tmp) / "photo.jpg"
        make_photo(photo)  # the same 12 MP JPEG as bench/photos.py
        load_times(browser, url, 2, warm=False)  # warm up the worker and Chromium, discarded
        figures = {
            "chromium": browser.version,
            "quick": quick,
            "weight_gzip": weight(browser, url, "gzip, deflate"),
            "weight_chromium_default": weight(browser, url, None),
            "cold": load_times(browser, url, loads, warm=False),
            "warm": load_times(browser, url, loads, warm=True),
            "downscale": downscale(browser, url, photo, photo_runs),
        }
    figures["isso"] = isso_embed()
    figures["weight_aim_met"] = figures["weight_gzip"]["total_transfer_bytes"] <= \
        WEIGHT_AIM_BYTES
    figures["ready_aim_met"] = figures["cold"]["ready_ms"]["p95"] < READY_AIM_MS
    return figures


def aims(figures: dict) -> list[tuple[str, str, bool]]:
    """(aim, what was measured, met) for the summary table."""
    weight = figures["weight_gzip"]["total_transfer_bytes"]
    ready = figures["cold"]["ready_ms"]["p95"]
    return [
        ("Form at most 15 KB gzipped (HTML+CSS+JS; Isso's embed ~20 KB)",
         f"{weight:,} B", figures["weight_aim_met"]),
        ("Form interactive under 200 ms from navigation (cold, p95)",
         f"{ready:.0f} ms", figures["ready_aim_met"]),
    ]


def _met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def _wrap(text: str) -> str:
    # docs/benchmarks.md keeps its prose within about 92 columns.
    return textwrap.fill(text, 92, break_long_words=False, break_on_hyphens=False)


def _row(name: str, stats: dict, bold: bool = False) -> str:
    median = f"**{stats['median']} ms**" if bold else f"{stats['median']} ms"
    return f"| {name} | {median} | {stats['p95']} ms | {stats['max']} ms |"


def _weight_row(name: str, w: dict, bold: bool = False) -> str:
    got = "/".join(f"`{e}`" for e in sorted(set(w["encodings"].values()), key=str))
    total = f"{w['total_transfer_bytes']:,} B"
    return (f"| {name}, got {got} | {w['html_bytes']:,} B | {w['css_bytes']:,} B "
            f"| {w['js_bytes']:,} B | {w['total_bytes']:,} B "
            f"| {f'**{total}**' if bold else total} |")


def markdown(figures: dict) -> str:
    """The docs/benchmarks.md section for one run's figures."""
    w, d, isso = figures["weight_gzip"], figures["weight_chromium_default"], figures["isso"]
    cold, warm, photo = figures["cold"], figures["warm"], figures["downscale"]
    if isso["downloaded"]:
        isso_text = (f"For comparison, Isso {isso['version']}'s `embed.min.js` from its PyPI "
                     f"wheel, gzipped at level 6, is {isso['embed_min_js_gzip_bytes']:,} B, "
                     f"{isso['total_gzip_bytes']:,} B with the `isso.css` it links (about 20 KB "
                     f"is the figure usually quoted): the whole form page is "
                     f"{w['total_bytes'] / isso['total_gzip_bytes']:.0%} of that.")
    else:
        isso_text = (f"For comparison, Isso's embed is usually quoted at about 20 KB gzipped; "
                     f"downloading Isso {isso['version']} from PyPI to measure it failed in "
                     f"this run ({isso['error']}).")
    about = (
        "`GET /embed?product_id=123&product_name=Shirt` in Debian's headless Chromium "
        f"{figures['chromium']} driven by Playwright, the app under gunicorn as in the "
        "Procfile, on loopback. Weight: the encoded bodies of the page's HTML, CSS and JS as "
        "Chromium received them (`request.sizes()`) with `Accept-Encoding: gzip, deflate`, "
        "and Resource Timing's `transferSize` total (each body plus a flat 300 B for "
        "headers), which the browser test budgets; Chromium's own choice of encoding is "
        "shown too. Interactive: the `kr-ready` performance mark that `static/form.js` sets "
        "once every handler is wired, from navigation start (Performance API), over "
        f"{cold['ready_ms']['n']} loads each in a fresh browser context (cold cache) and "
        f"{warm['ready_ms']['n']} in one context whose cache holds the versioned CSS and JS "
        "(warm), after two discarded loads. Photo: a 4000x3000 JPEG made by Pillow as in "
        "`bench/photos.py`, set on `#kr-photos`, timed from the input's change event until "
        "the downscaled preview (`createImageBitmap`, canvas, `toBlob` JPEG 0.85, longest "
        "edge 2048) is in the page, then decoded; "
        f"{photo['preview_inserted_ms']['n']} runs, each on a fresh page."
    )
    lines = [
        "## The form in Chromium", "", _wrap(about), "",
        "```sh",
        ".venv/bin/python bench/browser.py            # --quick: fewer loads; --markdown",
        "```", "",
        "| encoding | HTML | CSS | JS | bodies | transferSize |",
        "|---|---|---|---|---|---|",
        _weight_row("asked for gzip", w, bold=True),
        _weight_row("Chromium's default", d), "",
        _wrap(f"Aim, at most 15 KB (15,360 B) gzipped: {_met(figures['weight_aim_met'])}. "
              + isso_text), "",
        "| navigation start to | median | p95 | max |",
        "|---|---|---|---|",
        _row("`kr-ready`, cold cache", cold["ready_ms"], bold=True),
        _row("`kr-ready`, warm cache", warm["ready_ms"], bold=True),
        _row("domInteractive, cold", cold["dom_interactive_ms"]),
        _row("DOMContentLoaded, cold", cold["dom_content_loaded_ms"]),
        _row("domInteractive, warm", warm["dom_interactive_ms"]),
        _row("DOMContentLoaded, warm", warm["dom_content_loaded_ms"]), "",
        _wrap(f"Aim, interactive in under 200 ms (p95, cold cache): "
              f"{_met(figures['ready_aim_met'])}. Warm loads whose CSS and JS came from the "
              f"cache: {warm['loads_with_assets_from_cache']} of {warm['ready_ms']['n']}."), "",
        "| 12 MP photo, change event to | median | p95 | max |",
        "|---|---|---|---|",
        _row("downscaled preview inserted", photo["preview_inserted_ms"], bold=True),
        _row("preview decoded", photo["preview_decoded_ms"]), "",
        _wrap(f"The {photo['photo']['jpeg_bytes']:,} B photo (EXIF orientation 6) became a "
              f"{photo['blob_pixels']} JPEG of {photo['blob_bytes']:,} B."),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 loads and 2 photos, not 30 and 5")
    parser.add_argument("--markdown", action="store_true", help="print the docs section too")
    args = parser.parse_args()
    result = measure(args.quick)
    print(dump(result))
    if args.markdown:
        print(markdown(result))
