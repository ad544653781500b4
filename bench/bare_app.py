"""A bare Flask app, the baseline of bench/display.py, bench/capacity.py, bench/mirror.py
and bench/peer.py: in a process of its own, under the same gunicorn line as the service, it
answers the bytes captured from one of our pages, or the submission's 202 (and /healthz, to
say it is up). It imports nothing of ours.

`GET /<name>` answers the file BENCH_SNAPSHOTS/<name> with the content type saved beside
it (<name>.type), read once: no hooks, no extensions, no template, nothing else.

`POST /json` does what our `POST /client/reviews` does with the body before it stores it,
and nothing else: it reads the body (`request.get_data(cache=False)`), decodes it as UTF-8
and parses it with the same parser and options (`json.loads` with a `parse_constant` that
refuses NaN and Infinity, as widget/intake/api.py), then answers our 202 document with a
fresh id, through Flask's `jsonify` (what a bare Flask app uses; ours writes the same bytes
with orjson) and with our content type (`application/vnd.api+json`): the same bytes but
for the id's 36 characters.
"""

import json
import os
import uuid
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, jsonify, request

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


JSONAPI = "application/vnd.api+json"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


@app.post("/json")
def submission() -> tuple[Response, int]:
    """Parse the body as our submission route does; answer its 202, storing nothing."""
    text = request.get_data(cache=False).decode("utf-8")
    json.loads(text, parse_constant=_refuse_constant)
    response = jsonify({"data": {"type": "review-submission", "id": str(uuid.uuid4()),
                                 "attributes": {"status": "queued"}}})
    response.content_type = JSONAPI
    return response, 202
