"""Refuse to start with a configuration that would lose reviews or break Klaviyo's limits.

Checked by create_app() on every boot (web, worker, commands); the error names exactly what
to set. Deliberate exceptions are explicit variables, never silence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from widget.config import ConfigError


def problems(config: Mapping[str, Any]) -> list[str]:
    """Every reason not to start, each saying what to set; empty when the config is safe."""
    found: list[str] = []
    url = config["DATABASE_URL"] or "sqlite://"
    processes = config["WIDGET_WEB_PROCESSES"]
    if config["DYNO"] and url.startswith("sqlite") and not config["WIDGET_ALLOW_EPHEMERAL_SQLITE"]:
        found.append(
            "The outbox is a SQLite file, and this platform (DYNO is set) wipes the disk on "
            "every restart: queued reviews would be lost. Set DATABASE_URL=postgresql://... "
            "(e.g. the Heroku Postgres add-on), or WIDGET_ALLOW_EPHEMERAL_SQLITE=true if this "
            "disk survives restarts."
        )
    if processes > 1 and config["RATELIMIT_STORAGE_URI"].startswith("memory://"):
        found.append(
            f"WIDGET_WEB_PROCESSES={processes} with RATELIMIT_STORAGE_URI=memory://: each "
            "process would count Klaviyo's budget and the web limits on its own and together "
            "exceed them. Set RATELIMIT_STORAGE_URI=redis://... (the same in every process), "
            "or WIDGET_WEB_PROCESSES=1."
        )
    if processes > 1 and config["SECRET_KEY_IS_RANDOM"]:
        found.append(
            f"WIDGET_WEB_PROCESSES={processes} without SECRET_KEY: each process would make "
            "its own random key and refuse the form tokens of the others. Set SECRET_KEY to "
            "one long random value in every process (python -c 'import secrets; "
            "print(secrets.token_hex(32))')."
        )
    if not 0 < config["REVIEWS_READ_SHARE"] <= 1:
        found.append(
            f"REVIEWS_READ_SHARE={config['REVIEWS_READ_SHARE']:g}: it is the share of "
            "Klaviyo's budget that reads may take, a number above 0 and at most 1 (0.2 "
            "leaves 80% to deliveries)."
        )
    uri = config["RATELIMIT_STORAGE_URI"]
    if not uri.startswith(("memory://", "redis://", "rediss://", "unix://")):
        found.append(
            f"RATELIMIT_STORAGE_URI starts with {uri.split('://')[0]!r}: the pace to Klaviyo "
            "keeps its view of the budget in memory:// (one process) or Redis (redis://, "
            "rediss://)."
        )
    return found


def check(config: Mapping[str, Any]) -> None:
    """Raise ConfigError listing every problem found."""
    found = problems(config)
    if found:
        raise ConfigError("Refusing to start:\n- " + "\n- ".join(found))
