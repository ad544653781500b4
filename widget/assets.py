"""The widget's own styles and scripts, served from memory with content-hash URLs.

Read once, so compression (flask-compress) works on whole bodies: it leaves file handles
open when it compresses streamed files, so those are not compressed (COMPRESS_STREAMS).
A versioned URL may be cached for a year; the loader's fixed URL for five minutes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, Flask, Response, abort, current_app, request, url_for

bp = Blueprint("assets", __name__)

TYPES = {".css": "text/css", ".js": "text/javascript"}
NAMES = ("form.css", "form.js", "embed.js", "demo.css", "reviews.css", "reviews.js")
YEAR = 365 * 24 * 3600
LOADER_MAX_AGE = 300


@dataclass(frozen=True)
class Asset:
    body: bytes
    version: str
    mimetype: str


def _read(folder: str, name: str) -> Asset:
    body = (Path(folder) / name).read_bytes()
    version = hashlib.sha256(body).hexdigest()[:12]
    return Asset(body, version, TYPES[Path(name).suffix])


def load(name: str) -> Asset:
    if name not in NAMES:
        abort(404)
    if current_app.debug:  # edits show up without a restart while developing
        return _read(current_app.static_folder or "static", name)
    return current_app.extensions["assets"][name]


def asset_url(name: str) -> str:
    """The versioned URL templates link to."""
    return url_for("assets.asset", name=name, v=load(name).version)


def respond(name: str, max_age: int) -> Response:
    asset = load(name)
    response = Response(asset.body, mimetype=asset.mimetype)
    response.set_etag(asset.version)
    response.cache_control.public = True
    response.cache_control.max_age = max_age
    return response.make_conditional(request)


@bp.get("/embed/assets/<name>")
def asset(name: str) -> Response:
    immutable = request.args.get("v") == load(name).version
    response = respond(name, YEAR if immutable else LOADER_MAX_AGE)
    response.cache_control.immutable = immutable
    return response


def init_app(app: Flask) -> None:
    """Read every asset once, and serve them."""
    folder = app.static_folder or "static"
    app.extensions["assets"] = {name: _read(folder, name) for name in NAMES}
    app.add_template_global(asset_url)
    app.register_blueprint(bp)
