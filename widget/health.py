"""Health checks for the platform's router: alive, and ready to accept reviews."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, jsonify
from sqlalchemy.exc import SQLAlchemyError

from widget import outbox

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Any:
    """503 when the outbox cannot be reached: accepting reviews then would lose them."""
    checks: dict[str, str] = {}
    ready = True
    try:
        outbox.current().ping()
        checks["database"] = "ok"
    except SQLAlchemyError as error:
        log.warning("readiness: database unreachable: %s", type(error).__name__)
        checks["database"] = "unreachable"
        ready = False
    checks["klaviyo_public_key"] = (
        "set" if current_app.config["KLAVIYO_PUBLIC_KEY"]
        else "missing: submissions wait in the outbox until KLAVIYO_PUBLIC_KEY is set"
    )
    body = {"status": "ready" if ready else "unavailable", "checks": checks}
    return jsonify(body), 200 if ready else 503
