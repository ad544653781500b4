"""Health checks for the platform's router: alive, and ready to accept reviews."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, jsonify
from sqlalchemy.exc import SQLAlchemyError

from widget.delivery import outbox, pacing
from widget.delivery.outbox import OutboxFull, utcnow
from widget.reviews import store

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Any:
    """503 when the outbox cannot take a write (down, read-only, its disk full): accepting
    reviews then would refuse them all. The rate-limit storage (Redis) is reported but does
    not fail readiness: without it reviews are still accepted (per-process web limits) and
    wait in the outbox, while taking every web process out of the router would refuse them
    all."""
    checks: dict[str, str] = {}
    ready = True
    try:
        # Room for two of the largest reviews (photos are sized to Klaviyo's body cap): the
        # next one must fit, with a margin.
        room = 2 * current_app.config["KLAVIYO_MAX_BODY_BYTES"]
        outbox.current().check_writable(room_bytes=room)
        checks["database"] = "ok"
    except OutboxFull as full:
        log.warning("readiness: outbox disk nearly full: %s", full)
        checks["database"] = f"full: {full}"
        ready = False
    except SQLAlchemyError as error:
        log.warning("readiness: outbox cannot take a write: %s", type(error).__name__)
        checks["database"] = "unavailable: cannot write"
        ready = False
    checks["rate_limit_storage"] = _storage_check()
    checks["klaviyo_public_key"] = (
        "set" if current_app.config["KLAVIYO_PUBLIC_KEY"]
        else "missing: submissions wait in the outbox until KLAVIYO_PUBLIC_KEY is set"
    )
    body = {"status": "ready" if ready else "unavailable", "checks": checks,
            "klaviyo_budget": _budget(), "reviews_mirror": _mirror(), "webhooks": _webhooks()}
    return jsonify(body), 200 if ready else 503


def _mirror() -> dict[str, Any]:
    """The mirror's sync: its source, how long ago it last finished, its last error. Not a
    readiness check: a stale mirror slows nobody's submission."""
    try:
        state = store.current().state()
    except SQLAlchemyError:
        return {"state": "unavailable: the database cannot be read"}
    age = state.age()
    return {
        "source": state.source or "none yet",
        "synced_seconds_ago": None if age is None else round(age, 1),
        "last_full_pass": state.last_full_at.isoformat() + "Z" if state.last_full_at else None,
        "last_error": state.last_error,
    }


def _webhooks() -> dict[str, Any]:
    """Events waiting for WIDGET_WEBHOOK_URL. Not a readiness check: a receiver that is down
    slows nobody's submission."""
    if not current_app.config["WIDGET_WEBHOOK_URL"]:
        return {"state": "off: WIDGET_WEBHOOK_URL is not set"}
    try:
        backlog, oldest = current_app.extensions["webhook_events"].backlog()
    except SQLAlchemyError:
        return {"state": "unavailable: the database cannot be read"}
    return {"backlog": backlog, "oldest_seconds": None if oldest is None
            else round((utcnow() - oldest).total_seconds(), 1)}


def _budget() -> dict[str, Any] | str:
    """Klaviyo's steady window as the last answer's RateLimit-* headers described it."""
    view = pacing.current().view()
    if view is None:
        return "unknown until Klaviyo answers (the pace is SENDER_RATE_LIMITS until then)"
    return {"limit": int(view["limit"]), "remaining": max(0, int(view["remaining"])),
            "reset_in_seconds": round(view["reset_in"], 1)}


def _storage_check() -> str:
    uri = current_app.config["RATELIMIT_STORAGE_URI"]
    if uri.startswith("memory://"):
        return "memory (this process only)"
    if pacing.current().storage_ok():
        return "ok"
    log.warning("readiness: rate-limit storage unreachable")
    return ("unreachable: web limits are per process and deliveries wait until it answers "
            "again")
