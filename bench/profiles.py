"""What every request pays: each aim's route run in-process under cProfile.

    .venv/bin/python bench/profiles.py [--requests 400] [--routes text,form,...] [--top 25]
                                      [--quick] [--json]

The service is built as gunicorn builds it (create_app() from the environment, then
gc.freeze(), as app.py), with bench/capacity.py's environment (web limits and the sender off)
and a mirror of 3,000 reviews (bench/display.py's: 200 shown for the product measured), or of
10,000 for the moderation pages (bench/mirror.py's). Each request is a WSGI call of the whole
app (`app(environ, start_response)`, its middlewares included), on an environ built before
the clock starts; the answer is read to its end and closed, as gunicorn does. Per route:
the time a request takes without the profiler (µs), then under cProfile the cumulative time
of every hook the app runs on it, found from the app itself (the WSGI middlewares, every
before/after/teardown request function, the session interface, the JSON provider, the view
with its decorators), and the top cumulative entries.

Two configurations: as benched (WIDGET_TRUSTED_PROXIES=0, so ForwardedForIgnored in place
of ProxyFix; no METRICS_TOKEN; web limits off, so flask-limiter registers no hook), and as
on the platform (WIDGET_TRUSTED_PROXIES=1, ProxyFix reading an X-Forwarded-For of its own
for every request, https; METRICS_TOKEN set, so the metrics hooks run; web limits on, so
flask-limiter's hooks run on every route, limited or not). cProfile makes
every Python call dearer: read its figures as shares; the time without it is the cost.
Run by bench/run as its last section (in a process of its own: bench/run.py imports much),
which prints the top entries of each route behind an aim not met.
"""
# Not "profile.py": that name would shadow the standard library's `profile`, which cProfile
# imports (bench/photos.py does), for every bench module run with bench/ on sys.path.

from __future__ import annotations

import argparse
import base64
import cProfile
import functools
import gc
import json
import os
import pstats
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT  # noqa: E402  (also puts the repo root on sys.path)

# route: (method, path, what it needs: "mirror" for the display's 3,000-review mirror,
# "moderation" for the 10,000-review one; how many requests relative to --requests)
PHOTO_SHARE = 0.05
ROUTES: dict[str, dict[str, Any]] = {
    "text": {"label": "POST /client/reviews (text)", "method": "POST"},
    "photo": {"label": "POST /client/reviews (one photo)", "method": "POST",
              "share": PHOTO_SHARE},
    "form": {"label": "GET /embed (the form page)", "method": "GET"},
    "reviews": {"label": "GET /reviews", "method": "GET"},
    "reviews_json": {"label": "GET /reviews.json", "method": "GET"},
    "moderation": {"label": "GET /moderation/ (mirror of 10,000)", "method": "GET"},
    "moderation_overview": {"label": "GET /moderation/overview (mirror of 10,000)",
                            "method": "GET", "share": 0.25},
}
CONFIGS = {
    "benched": {},
    # Web limits on (the default), their hooks with them: every request comes from an
    # address of its own (X-Forwarded-For, read by ProxyFix), so no limit refuses one.
    "platform": {"WIDGET_TRUSTED_PROXIES": "1", "METRICS_TOKEN": "bench-metrics",
                 "RATELIMIT_ENABLED": "true"},
}
PLATFORM_HEADERS = {"X-Forwarded-Proto": "https"}
_addresses = iter(range(1, 1 << 24))

# Which route an aim of the summary measures (first match wins); aims of no route here
# (burst, photos, hostile, delivery...) have no profile.
AIM_ROUTES = [
    (r"Isso|[Tt]ext submit", "text"),
    (r"submit with a photo", "photo"),
    (r"[Ff]orm page", "form"),
    (r"/reviews\.json", "reviews_json"),
    (r"GET /reviews`", "reviews"),
    (r"[Mm]oderation overview", "moderation_overview"),
    (r"[Mm]oderation list", "moderation"),
]


def route_of(aim: str) -> str | None:
    return next((route for pattern, route in AIM_ROUTES if re.search(pattern, aim)), None)


# -- in the profiled process ------------------------------------------------------------------
def build_app(env: dict[str, str], mirror: list[dict] | None) -> Any:
    """create_app() from the environment, as gunicorn loads app.py; a mirror filled in."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        from widget import create_app

        app = create_app()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if mirror:
        app.extensions["mirror"].upsert(mirror)
    gc.collect()
    gc.freeze()
    return app


def environs(route: str, count: int, context: dict) -> list[dict]:
    """`count` fresh environs for one route (each submission a new shopper's review; as on
    the platform, each request from an address of its own)."""
    from werkzeug.test import EnvironBuilder

    base = {"REMOTE_ADDR": "127.0.0.1"}
    headers = dict(context["headers"])
    if route.startswith("moderation"):
        headers.update(context["auth"])
    parts = None
    if route in ("text", "photo"):
        from capacity import unique_bodies

        parts = unique_bodies(context["photo"] if route == "photo" else None)
    made = []
    for n in range(1, count + 1):
        if context["headers"]:
            a = next(_addresses)
            headers["X-Forwarded-For"] = f"10.{a >> 16 & 255}.{a >> 8 & 255}.{a & 255}"
        if parts is not None:
            builder = EnvironBuilder(path="/client/reviews", method="POST",
                                     data=str(n).join(parts).encode(), headers=headers,
                                     content_type="application/json", environ_base=base)
        else:
            builder = EnvironBuilder(path=context["paths"][route], headers=headers,
                                     environ_base=base)
        made.append(builder.get_environ())
    return made


def call(app: Any, environ: dict) -> str:
    """One request through the whole WSGI app, its answer read to the end and closed."""
    status = []
    answer = app(environ, lambda s, headers, exc_info=None: status.append(s) or (lambda b: None))
    try:
        for _ in answer:
            pass
    finally:
        close = getattr(answer, "close", None)
        if close:
            close()
    return status[0]


def hooks(app: Any, route: str, context: dict) -> list[tuple[str, Any]]:
    """(label, function) for every layer the app runs on this route, found from the app."""
    found: list[tuple[str, Any]] = [("the whole app (WSGI call)", type(app).__call__)]
    layer = app.wsgi_app
    while getattr(layer, "__func__", None) is not type(app).wsgi_app:
        found.append((f"middleware {type(layer).__name__} (and what it wraps)",
                      type(layer).__call__))
        layer = getattr(layer, "app", None) or getattr(layer, "wsgi_app", None)
        if layer is None:
            break
    found.append(("Flask.wsgi_app (and what it wraps)", type(app).wsgi_app))
    for kind, table in (("before_request", app.before_request_funcs),
                        ("after_request", app.after_request_funcs),
                        ("teardown_request", app.teardown_request_funcs)):
        for scope, functions in table.items():
            for function in functions:
                found.append((f"{kind}{'' if scope is None else f' ({scope})'} "
                              f"{_name(function)}", function))
    for function in app.teardown_appcontext_funcs:
        found.append((f"teardown_appcontext {_name(function)}", function))
    sessions = type(app.session_interface)
    found += [(f"session: {sessions.__name__}.open_session", sessions.open_session),
              (f"session: {sessions.__name__}.save_session", sessions.save_session),
              (f"JSON: {type(app.json).__name__}.dumps", type(app.json).dumps),
              (f"JSON: {type(app.json).__name__}.response", type(app.json).response),
              ("JSON: json.dumps", json.dumps), ("JSON: json.loads", json.loads)]
    from flask import templating

    found.append(("templates: flask.render_template", templating.render_template))
    method = ROUTES[route]["method"]
    path = "/client/reviews" if route in ("text", "photo") else context["paths"][route]
    endpoint, _ = app.url_map.bind("localhost").match(path.split("?")[0], method=method)
    found.append((f"the view {endpoint} (with its decorators)", app.view_functions[endpoint]))
    return found


def _name(function: Any) -> str:
    function = _unwrap(function)
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', '?')}"


def _unwrap(function: Any) -> Any:
    while True:
        if isinstance(function, functools.partial):
            function = function.func
        elif hasattr(function, "__func__"):
            function = function.__func__
        else:
            return function


def _code_key(function: Any) -> tuple[str, int, str] | None:
    code = getattr(_unwrap(function), "__code__", None)
    if code is None:
        return None
    return (code.co_filename, code.co_firstlineno, code.co_name)


def profile_route(app: Any, route: str, count: int, context: dict, top: int) -> dict:
    """The time per request without the profiler, then under it: hooks and top entries."""
    warm = environs(route, max(5, count // 10), context)
    statuses = {call(app, environ) for environ in warm}
    if not all(s.startswith("2") for s in statuses):
        raise RuntimeError(f"{route}: answered {statuses}")
    timed = environs(route, count, context)
    started = time.perf_counter()
    for environ in timed:
        call(app, environ)
    plain_us = (time.perf_counter() - started) / count * 1e6
    profiled = environs(route, count, context)
    profiler = cProfile.Profile()
    profiler.enable()
    for environ in profiled:
        call(app, environ)
    profiler.disable()
    stats = pstats.Stats(profiler)
    raw = stats.stats  # type: ignore[attr-defined]
    whole = raw.get(_code_key(type(app).__call__), (0, 0, 0, 0.0))[3] or 1e-9
    layers = []
    for label, function in hooks(app, route, context):
        key = _code_key(function)
        entry = raw.get(key) if key else None
        if entry is None:
            continue
        calls, _, _, cumulative = entry[:4]
        layers.append({"layer": label, "calls_per_request": round(calls / count, 2),
                       "us_per_request": round(cumulative / count * 1e6, 1),
                       "share": round(cumulative / whole, 3)})
    return {"route": route, "label": ROUTES[route]["label"], "requests": count,
            "statuses": sorted(statuses), "us_per_request": round(plain_us, 1),
            "us_per_request_profiled": round(whole / count * 1e6, 1),
            "layers": layers, "top": top_entries(stats, count, top)}


def top_entries(stats: pstats.Stats, count: int, top: int) -> list[dict]:
    """The top cumulative entries (this harness left out), per request."""
    rows = []
    here = str(Path(__file__).resolve())
    for (filename, line, name), (_, calls, own, cumulative, _) in sorted(
            stats.stats.items(), key=lambda item: -item[1][3]):  # type: ignore[attr-defined]
        if filename == here or filename.startswith("~") or name.startswith("<"):
            continue
        rows.append({"function": f"{_short(filename)}:{line}({name})",
                     "calls_per_request": round(calls / count, 2),
                     "cumulative_us": round(cumulative / count * 1e6, 1),
                     "own_us": round(own / count * 1e6, 1)})
        if len(rows) == top:
            break
    return rows


def _short(filename: str) -> str:
    for marker in ("site-packages/", str(ROOT) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return re.sub(r"^.*/lib/python3\.\d+/", "", filename)


def run_all(routes: list[str], count: int, top: int) -> dict:
    """Every route in both configurations, in this process."""
    import logging

    from capacity import FORM_PATH, photo_jpeg, service_env
    from display import PRODUCT_NAME, mirror_of

    from tests.fake_klaviyo import FakeKlaviyo
    from tests.fake_klaviyo_fixtures import many_reviews

    logging.disable(logging.WARNING)  # each submission's log line would be timed too
    display_mirror, product = mirror_of()
    query = f"product_id={product}&product_name={quote(PRODUCT_NAME)}"
    context = {
        "paths": {"form": FORM_PATH, "reviews": f"/reviews?{query}",
                  "reviews_json": f"/reviews.json?{query}", "moderation": "/moderation/",
                  "moderation_overview": "/moderation/overview"},
        "auth": {"Authorization": "Basic " + base64.b64encode(b"moderator:bench").decode()},
        "photo": photo_jpeg() if "photo" in routes else None,
    }
    results: dict = {"requests": count, "configs": {}}
    with ExitStack() as stack:
        fake = stack.enter_context(FakeKlaviyo())
        for config, extra in CONFIGS.items():
            apps = {}
            out = {}
            for route in routes:
                kind = "moderation" if route.startswith("moderation") else "display"
                if kind not in apps:
                    tmp = stack.enter_context(tempfile.TemporaryDirectory())
                    env = {**service_env(tmp, fake), "REVIEWS_SYNC_SECONDS": "0", **extra}
                    env.pop("BENCH_SNAPSHOTS")
                    mirror = many_reviews(10_000) if kind == "moderation" else display_mirror
                    apps[kind] = build_app(env, mirror)
                headers = PLATFORM_HEADERS if config == "platform" else {}
                n = max(10, int(count * ROUTES[route].get("share", 1.0)))
                out[route] = profile_route(apps[kind], route, n, {**context, "headers": headers},
                                           top)
                print(f"profile {config} {route}: {out[route]['us_per_request']} µs a request",
                      file=sys.stderr, flush=True)
            for app in apps.values():
                app.extensions["outbox"].engine.dispose()
                app.extensions["mirror"].engine.dispose()
            results["configs"][config] = out
    return results


# -- in bench/run's process -------------------------------------------------------------------
def measure(quick: bool = False, unmet: Iterable[str] = (), routes: list[str] | None = None,
            requests: int = 400, top: int = 25) -> dict:
    """Run the profiles in a process of their own; `unmet`: the summary's aims not met, whose
    routes' top entries the markdown prints."""
    if quick:
        requests = 60
    routes = routes or list(ROUTES)
    args = [sys.executable, str(Path(__file__).resolve()), "--json", "--requests",
            str(requests), "--top", str(top), "--routes", ",".join(routes)]
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"bench/profiles.py failed:\n{out.stderr[-3000:]}")
    figures = json.loads(out.stdout)
    behind: dict[str, list[str]] = {}
    for aim in unmet:
        route = route_of(aim)
        if route in routes:
            behind.setdefault(route, []).append(aim)
    figures["behind_unmet_aims"] = behind
    return figures


def aims(figures: dict) -> list[tuple[str, str, bool]]:
    return []  # a profile measures no aim: it explains the others


def markdown(figures: dict) -> str:
    benched, platform = figures["configs"]["benched"], figures["configs"]["platform"]
    routes = list(benched)
    head = ["| layer (cumulative µs a request, under cProfile) |",
            "|---|" + "---|" * len(routes)]
    head[0] += "".join(f" {benched[r]['label']} |" for r in routes)
    rows = [
        "| **µs a request without the profiler, as benched** |"
        + "".join(f" **{benched[r]['us_per_request']:,.0f}** |" for r in routes),
        "| **µs a request without the profiler, as on the platform** |"
        + "".join(f" **{platform[r]['us_per_request']:,.0f}** |" for r in routes),
    ]
    labels: list[str] = []
    for config in (benched, platform):
        for r in routes:
            for layer in config[r]["layers"]:
                if layer["layer"] not in labels:
                    labels.append(layer["layer"])
    for label in labels:
        cells = []
        for r in routes:
            values = [next((f"{layer['us_per_request']:,.1f}" for layer in config[r]["layers"]
                            if layer["layer"] == label), "–") for config in (benched, platform)]
            cells.append(values[0] if values[0] == values[1] else f"{values[0]} / {values[1]}")
        rows.append(f"| {label} |" + "".join(f" {cell} |" for cell in cells))
    parts = [
        "## What every request pays: in-process profiles",
        "",
        __doc__.split("\n\n", 2)[2].strip().replace("\n", " "),
        "",
        "```sh",
        ".venv/bin/python bench/profiles.py            # --routes text,form --top 40",
        "```",
        "",
        f"{figures['requests']} requests a route (fewer for the photo and the overview). "
        "Where two figures are given: as benched / as on the platform (ProxyFix, "
        "METRICS_TOKEN); – : the layer does not run there.",
        "",
        *head, *rows,
    ]
    behind = figures.get("behind_unmet_aims", {})
    for route, unmet in behind.items():
        result = benched[route]
        parts += ["", f"### Behind {len(unmet)} aim{'s' if len(unmet) > 1 else ''} not met: "
                  f"{result['label']}", "",
                  "Aims: " + "; ".join(unmet) + ".", "",
                  f"Top {len(result['top'])} cumulative entries as benched "
                  f"({result['us_per_request']:,.0f} µs a request without the profiler, "
                  f"{result['us_per_request_profiled']:,.0f} µs under it):", "",
                  "```text", format_top(result["top"]), "```"]
    if not behind:
        parts += ["", "Every aim with a route here was met: no top entries printed "
                  "(`bench/profiles.py` prints them for every route)."]
    return "\n".join(parts)


def format_top(top: list[dict]) -> str:
    lines = [f"{'cumul µs':>9} {'own µs':>8} {'calls':>7}  function"]
    for row in top:
        lines.append(f"{row['cumulative_us']:>9,.1f} {row['own_us']:>8,.1f} "
                     f"{row['calls_per_request']:>7g}  {row['function']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--routes", default=",".join(ROUTES))
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--quick", action="store_true", help="60 requests a route")
    parser.add_argument("--json", action="store_true", help="the raw figures, on stdout")
    args = parser.parse_args()
    routes = [r for r in args.routes.split(",") if r]
    unknown = set(routes) - set(ROUTES)
    if unknown:
        parser.error(f"unknown routes: {', '.join(sorted(unknown))}")
    count = 60 if args.quick else args.requests
    results = run_all(routes, count, args.top)
    if args.json:
        print(json.dumps(results))
        return
    for config, out in results["configs"].items():
        for result in out.values():
            print(f"\n== {result['label']} ({config}): {result['us_per_request']:,.0f} µs a "
                  f"request, {result['us_per_request_profiled']:,.0f} µs under cProfile")
            for layer in result["layers"]:
                print(f"  {layer['us_per_request']:>9,.1f} µs {layer['share']:>6.1%}  "
                      f"{layer['layer']}")
            print(format_top(result["top"]))


if __name__ == "__main__":
    main()
