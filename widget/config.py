"""Every setting, read from the environment (and a `.env` file for local runs)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from typing import Any

from dotenv import load_dotenv

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A setting has a value the service cannot run with; the message says what to set."""


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def _number(env: Mapping[str, str], name: str, default: float, kind: type = float) -> Any:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return kind(raw)
    except ValueError:
        noun = "whole number" if kind is int else "number"
        raise ConfigError(f"{name} must be a {noun}, not {raw!r}") from None


def _choice(env: Mapping[str, str], name: str, default: str, choices: set[str]) -> str:
    value = env.get(name, default).strip().lower() or default
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(sorted(choices))}, not {value!r}")
    return value


# Platforms whose router is always in front and appends the address it saw to
# X-Forwarded-For, known by variables they set in every container: Heroku and Dokku set
# DYNO (web.1); Scalingo sets CONTAINER (web-1) and CONTAINER_VERSION
# (doc.scalingo.com/platform/app/environment). Render (RENDER=true) is not here: its
# requests are reported to pass Cloudflare and then Render's proxy (two hops), and Render
# documents no count to rely on.
ROUTED_PLATFORMS = {"Heroku or Dokku": ("DYNO",), "Scalingo": ("CONTAINER", "CONTAINER_VERSION")}


def environ() -> Mapping[str, str]:
    """The process environment, with a `.env` file's values where it has none."""
    load_dotenv(override=False)
    return os.environ


def log_format(env: Mapping[str, str]) -> str:
    """LOG_FORMAT: read here for the app and by gunicorn's logger class (widget/access_log.py),
    which sets up before any app exists."""
    return _choice(env, "LOG_FORMAT", "text", {"text", "json"})


def _webhook_url(env: Mapping[str, str]) -> str | None:
    url = (env.get("WIDGET_WEBHOOK_URL") or "").strip() or None
    if url is not None and not url.startswith(("https://", "http://")):
        raise ConfigError("WIDGET_WEBHOOK_URL must be an https:// (or http://) URL")
    return url


def platform_router(env: Mapping[str, str]) -> str | None:
    """The platform whose router is in front of this process, when its variables say so."""
    for platform, names in ROUTED_PLATFORMS.items():
        if all(env.get(name) for name in names):
            return platform
    return None


def from_environ(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read the settings; with no mapping, the process environment plus `.env`."""
    if env is None:
        env = environ()
    get = env.get
    return {
        # Klaviyo. The public key is the company_id of the client endpoint; without it
        # submissions are accepted and wait in the outbox until it is set.
        "KLAVIYO_PUBLIC_KEY": get("KLAVIYO_PUBLIC_KEY") or None,
        # Private key (scope reviews:read) for moderation only: never sent to a browser.
        "KLAVIYO_PRIVATE_KEY": get("KLAVIYO_PRIVATE_KEY") or None,
        "KLAVIYO_BASE_URL": (get("KLAVIYO_BASE_URL") or "https://a.klaviyo.com").rstrip("/"),
        # Revisions live two years; this is the one place that names it.
        "KLAVIYO_REVISION": get("KLAVIYO_REVISION") or "2026-07-15",
        # (connect, read) seconds for every upstream call. A read timeout after sending may
        # still have created the review, so it is retried and flagged as a possible duplicate.
        "KLAVIYO_CONNECT_TIMEOUT": _number(env, "KLAVIYO_CONNECT_TIMEOUT", 3.05),
        "KLAVIYO_READ_TIMEOUT": _number(env, "KLAVIYO_READ_TIMEOUT", 10.0),
        # Klaviyo refuses bodies over 5 MB (decompressed); we aim below it with a margin.
        "KLAVIYO_MAX_BODY_BYTES": _number(env, "KLAVIYO_MAX_BODY_BYTES", 5_000_000, int),
        # Outbox. None means a SQLite file in the instance folder (see widget/delivery/outbox.py).
        "DATABASE_URL": get("DATABASE_URL") or None,
        # Web limits (flask-limiter) and the sender's pacing share this storage.
        # REDIS_URL is what a Redis add-on sets (Heroku, Dokku): used when this is not set.
        "RATELIMIT_STORAGE_URI": get("RATELIMIT_STORAGE_URI") or get("REDIS_URL") or "memory://",
        "RATELIMIT_ENABLED": _bool(env, "RATELIMIT_ENABLED", True),
        "RATELIMIT_HEADERS_ENABLED": True,
        # Keys in the shared storage start with this: deployments sharing one Redis (staging
        # and production on one add-on) must not share Klaviyo budgets or web limits.
        "RATELIMIT_KEY_PREFIX": get("RATELIMIT_KEY_PREFIX") or "widget",
        # Per client IP on POST /client/reviews; tightened further by the abuse defences.
        "WIDGET_SUBMIT_LIMIT": get("WIDGET_SUBMIT_LIMIT") or "5/minute;30/hour",
        # Klaviyo allows 10/s and 150/min per account in fixed windows, counted on arrival.
        # The ceiling of our calls to Klaviyo, in moving windows, and the whole pace until an
        # answer's RateLimit-* headers describe the account's budget (widget/delivery/
        # pacing.py). Klaviyo's tier M: "10 per 2 seconds" keeps any one second under 10
        # even when network delays bunch calls together. The longest window is taken as
        # Klaviyo's steady window.
        "SENDER_RATE_LIMITS": get("SENDER_RATE_LIMITS") or "10 per 2 seconds;150/minute",
        # Reads (moderation, the mirror's sync) take at most this share of each of
        # Klaviyo's steady windows; deliveries get the rest.
        "REVIEWS_READ_SHARE": _number(env, "REVIEWS_READ_SHARE", 0.2),
        # The mirror of Klaviyo's reviews (widget/reviews/sync.py): an incremental sync this
        # often (0: no sync), and a full pass, which also drops deleted reviews, this often.
        "REVIEWS_SYNC_SECONDS": _number(env, "REVIEWS_SYNC_SECONDS", 60.0),
        "REVIEWS_FULL_SYNC_HOURS": _number(env, "REVIEWS_FULL_SYNC_HOURS", 24.0),
        # With the private key, a send left unanswered (read timeout, a sender killed
        # mid-send) is looked up in Klaviyo before it is sent again, for this long (Klaviyo
        # creates reviews asynchronously); only then is it sent again.
        "SENDER_RECONCILE_SECONDS": _number(env, "SENDER_RECONCILE_SECONDS", 120.0),
        "WIDGET_SENDER": _choice(env, "WIDGET_SENDER", "thread", {"thread", "off"}),
        # gunicorn processes of the Procfile's web role. Not WEB_CONCURRENCY: some platforms
        # set that on their own, and the embedded defaults (memory:// limits, the sender
        # thread's pacing) are per process, so more than one must be asked for.
        "WIDGET_WEB_PROCESSES": _number(env, "WIDGET_WEB_PROCESSES", 1, int),
        # How often an idle sender looks for due rows (seconds); a submission in the same
        # process wakes it at once.
        "SENDER_POLL_SECONDS": _number(env, "SENDER_POLL_SECONDS", 0.25),
        # Exponential backoff for 5xx and connection errors: base * 2**attempt, capped, jittered.
        "SENDER_BACKOFF_BASE_SECONDS": _number(env, "SENDER_BACKOFF_BASE_SECONDS", 2.0),
        "SENDER_BACKOFF_MAX_SECONDS": _number(env, "SENDER_BACKOFF_MAX_SECONDS", 300.0),
        # A row still undelivered after this long is given up (dead) and shown to moderators.
        "SENDER_MAX_AGE_HOURS": _number(env, "SENDER_MAX_AGE_HOURS", 72.0),
        # A row left in `sending` longer than this belonged to a process that died; it is
        # queued again, its outcome unknown (looked up, or sent again and flagged as a
        # possible duplicate). Must exceed connect + read timeout.
        "SENDER_RECLAIM_SECONDS": _number(env, "SENDER_RECLAIM_SECONDS", 60.0),
        # Photos: how many per review, the largest data-URI we will decode, the pixel cap
        # (a 48 KB PNG can claim 20000x20000), and the longest edge we send.
        "WIDGET_MAX_PHOTOS": _number(env, "WIDGET_MAX_PHOTOS", 5, int),
        # Products one order page may list (a form each, then the store's).
        "WIDGET_MAX_ORDER_PRODUCTS": _number(env, "WIDGET_MAX_ORDER_PRODUCTS", 10, int),
        "PHOTO_MAX_DATA_URI_CHARS": _number(env, "PHOTO_MAX_DATA_URI_CHARS", 16_000_000, int),
        "PHOTO_MAX_PIXELS": _number(env, "PHOTO_MAX_PIXELS", 50_000_000, int),
        "PHOTO_MAX_EDGE": _number(env, "PHOTO_MAX_EDGE", 2048, int),
        # What decoding photos may cost (widget/intake/decoding.py). Megabytes of decoding in
        # flight in one process, by each photo's estimate read from its header before it is
        # decoded: 256 leaves a 512 MB dyno room for the worker itself (about 110 MB) and the
        # bodies being read. A photo estimated over it is refused (413); others wait for room.
        "PHOTO_MEMORY_BUDGET_MB": _number(env, "PHOTO_MEMORY_BUDGET_MB", 256, int),
        # Seconds one review waits in all for room in that budget, then 503 + Retry-After: a
        # photo decodes in under a second, so a longer wait means the process is overloaded.
        "PHOTO_WAIT_SECONDS": _number(env, "PHOTO_WAIT_SECONDS", 5.0),
        # CPU seconds one photo may cost (its decoding thread's own time). A 50 MP JPEG costs
        # about half a second; a file made to cost more is refused (422).
        "PHOTO_CPU_SECONDS": _number(env, "PHOTO_CPU_SECONDS", 2.0),
        # Wall-clock seconds for all the photos of one review, waits included; over it, 503.
        # Under the 30 s after which platform routers and gunicorn's --timeout give up.
        "PHOTO_WALL_SECONDS": _number(env, "PHOTO_WALL_SECONDS", 20.0),
        # Whole request bodies above this are refused before they are read (413).
        "MAX_CONTENT_LENGTH": _number(env, "WIDGET_MAX_BODY_BYTES", 40_000_000, int),
        "WIDGET_FRAME_ANCESTORS": get("WIDGET_FRAME_ANCESTORS") or "'self'",
        "WIDGET_OPEN_API": _bool(env, "WIDGET_OPEN_API", False),
        # The form's token: people take a few seconds to write a review, scripts do not; a
        # day covers a tab left open overnight.
        "WIDGET_TOKEN_MIN_SECONDS": _number(env, "WIDGET_TOKEN_MIN_SECONDS", 3.0),
        "WIDGET_TOKEN_MAX_AGE_SECONDS": _number(env, "WIDGET_TOKEN_MAX_AGE_SECONDS", 86400, int),
        # Posts one form token is good for (counted in the limits storage): a shopper sends
        # a review and perhaps fixes it a few times; a token that posts more is a script's.
        # The form's script renews its token when this runs out.
        "WIDGET_TOKEN_MAX_POSTS": _number(env, "WIDGET_TOKEN_MAX_POSTS", 10, int),
        # Per email address, whatever the IP (stored hashed).
        "WIDGET_EMAIL_LIMIT": get("WIDGET_EMAIL_LIMIT") or "3/hour;10/day",
        # Queued reviews beyond which new ones get 503 + Retry-After: at 140/min, 10,000 is
        # about 70 minutes of Klaviyo's budget.
        "WIDGET_BACKLOG_LIMIT": _number(env, "WIDGET_BACKLOG_LIMIT", 10_000, int),
        # Proxies in front of the service that append to X-Forwarded-For (a platform's router
        # is one). The client IP is the one they saw; what a client writes is ignored. By
        # default 1 only where a known platform's router is in front, else 0: trusting a hop
        # that nobody appends would let each client pick its own address (and rate limits).
        "WIDGET_TRUSTED_PROXIES": _number(env, "WIDGET_TRUSTED_PROXIES",
                                          1 if platform_router(env) else 0, int),
        "MODERATION_USERNAME": get("MODERATION_USERNAME") or "moderator",
        "MODERATION_PASSWORD": get("MODERATION_PASSWORD") or None,
        # Failed moderation logins (credentials sent and refused) per client address, and
        # from all addresses together; over either, 429 until the window turns. A person who
        # mistypes retries a few times a minute; 50 an hour caps one address at 1,200
        # guesses a day. The overall limit caps many addresses together at 24,000 a day, and
        # at ten times one address's, no single address can lock everyone out.
        "MODERATION_LOGIN_LIMIT": get("MODERATION_LOGIN_LIMIT") or "10/minute;50/hour",
        "MODERATION_LOGIN_GLOBAL_LIMIT": (get("MODERATION_LOGIN_GLOBAL_LIMIT")
                                          or "100/minute;1000/hour"),
        # Random per boot is fine for one process; more than one needs a shared value.
        "SECRET_KEY": get("SECRET_KEY") or secrets.token_hex(32),
        "SECRET_KEY_IS_RANDOM": not get("SECRET_KEY"),
        # Moderation reads from Klaviyo are kept this many seconds, so reloads and the back
        # button cost nothing from the 150/min budget that submissions share. 0 turns it off.
        "MODERATION_CACHE_SECONDS": _number(env, "MODERATION_CACHE_SECONDS", 30.0),
        # How long a moderation page waits for a slot in that shared budget before it
        # answers "busy, retry in N s" instead of keeping the moderator's browser waiting.
        "MODERATION_WAIT_SECONDS": _number(env, "MODERATION_WAIT_SECONDS", 2.0),
        # The merchant's custom questions for the form, as JSON (see widget/intake/questions.py
        # and docs/embedding.md); checked at boot so a typo fails the deploy, not a shopper.
        "WIDGET_CUSTOM_QUESTIONS": get("WIDGET_CUSTOM_QUESTIONS") or None,
        # --kr-* custom properties that restyle the form (e.g. "--kr-accent: #7a1fa2"); the
        # form is cross-origin, so the storefront's own CSS cannot reach it.
        "WIDGET_THEME": get("WIDGET_THEME") or "",
        # flask-compress leaves the file open when it compresses a streamed file (Flask's
        # /static); the widget serves its assets from memory instead (widget/assets.py).
        "COMPRESS_STREAMS": False,
        # Redis down: the web limits fall back to per-process memory (logged) instead of a
        # 500; the sender stops calling Klaviyo until Redis answers (widget/delivery/pacing.py).
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "RATELIMIT_SWALLOW_ERRORS": True,
        # Seconds: a Redis that does not answer must cost a request a moment, not a hang.
        "RATELIMIT_STORAGE_OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        # Delivered rows hold personal data and photos; the sender deletes them this many
        # days after delivery (0: keep them). A week covers Idempotency-Key replays and a
        # look at a possible duplicate.
        "OUTBOX_PURGE_DELIVERED_DAYS": _number(env, "OUTBOX_PURGE_DELIVERED_DAYS", 7.0),
        # Operations (docs/operations.md). /metrics answers only this bearer token (404 when
        # unset: nothing is measured then, and a request costs nothing more).
        "METRICS_TOKEN": get("METRICS_TOKEN") or None,
        # Where gunicorn's processes of one container keep their request counters (set by
        # widget/ops/gunicorn_hooks.py, or by hand; prometheus-client reads it as it is
        # imported, so it comes from the environment only). Unset: this process alone.
        "PROMETHEUS_MULTIPROC_DIR": get("PROMETHEUS_MULTIPROC_DIR") or None,
        # Events (review.accepted, .delivered, .dead, queue.stuck) are POSTed here, signed
        # with the secret (X-Widget-Signature), as JSON or as Slack's {"text": ...}. The URL
        # itself is a secret for Slack: it is never logged.
        "WIDGET_WEBHOOK_URL": _webhook_url(env),
        "WIDGET_WEBHOOK_SECRET": get("WIDGET_WEBHOOK_SECRET") or None,
        "WIDGET_WEBHOOK_FORMAT": _choice(env, "WIDGET_WEBHOOK_FORMAT", "json",
                                         {"json", "slack"}),
        # queue.stuck: the oldest queued review has waited this long. Klaviyo's budget
        # drains 10,000 queued reviews in about 70 minutes; a review waiting 30 is news.
        "WIDGET_STUCK_MINUTES": _number(env, "WIDGET_STUCK_MINUTES", 30.0),
        # text: "time level logger message"; json: every line one object (gunicorn's too).
        "LOG_FORMAT": log_format(env),
        # Heroku sets DYNO; its disk is wiped on every restart, and a SQLite outbox with it.
        "DYNO": get("DYNO") or None,
        # true: run a SQLite outbox on such a platform anyway (a persistent volume, a demo).
        "WIDGET_ALLOW_EPHEMERAL_SQLITE": _bool(env, "WIDGET_ALLOW_EPHEMERAL_SQLITE", False),
    }
