"""A bare Flask app, the baseline of bench/display.py: in a process of its own, under the
same gunicorn line as the service, it answers the bytes captured from one of our pages (and
/healthz, to say it is up).

`GET /<name>` answers the file BENCH_SNAPSHOTS/<name> with the content type saved beside
it (<name>.type), read once: no hooks, no extensions, no template, nothing else.
"""

import os
from pathlib import Path

from flask import Flask, Response, abort

app = Flask(__name__)
_pages: dict[str, tuple[bytes, str]] = {}


@app.get("/healthz")
def healthz() -> str:
    """What the bench waits for before it starts (tests/processes.Service.wait_ready)."""
    return "ok"


def snapshot(name: str) -> tuple[bytes, str]:
    """The captured bytes of one of our pages and their content type, read once (404 for a
    name that was not captured). bench_app.py serves them from inside the service too."""
    if name not in _pages:
        folder = Path(os.environ["BENCH_SNAPSHOTS"])
        if not name.isidentifier() or not (folder / name).exists():
            abort(404)
        _pages[name] = ((folder / name).read_bytes(), (folder / f"{name}.type").read_text())
    return _pages[name]


@app.get("/<name>")
def page(name: str) -> Response:
    body, content_type = snapshot(name)
    return Response(body, content_type=content_type)
