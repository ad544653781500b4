"""The review widget service: create_app() wires config, extensions, blueprints, handlers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask
from flask.logging import default_handler

# Functions whose answer Service.ensure_sync keeps: the views and hooks, a few dozen.
KNOWN_FUNCTIONS = 1024


class Service(Flask):
    """Flask, asking once per function whether it is a coroutine: Flask asks for the view
    and every hook of every request, eight times a submission, through inspect (the method
    is Flask's documented place to change how views are run)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._known: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        known = self._known.get(func)
        if known is None:
            known = super().ensure_sync(func)
            if len(self._known) < KNOWN_FUNCTIONS:  # a function made per call is not kept
                self._known[func] = known
        return known


def create_app(test_config: Mapping[str, Any] | None = None) -> Service:
    """Build the app from the environment (and `.env`); tests pass `test_config` instead,
    which is laid over the defaults while the environment is ignored, so tests are hermetic."""
    # Imported here, not at the top: gunicorn's master imports this package for
    # widget.access_log (its --logger-class) before gevent patches the workers, and
    # requests' urllib3 imported then keeps ssl unpatched in them.
    from widget import bodies, commands, config, errors, health, i18n, openapi, security, startup
    from widget.delivery import outbox, pacing, sender
    from widget.extensions import compress, limiter
    from widget.intake import api, defences, form, photos, questions, submissions
    from widget.moderation import views as moderation
    from widget.ops import logs, metrics, webhooks
    from widget.reviews import store as mirror
    from widget.reviews import sync
    from widget.reviews import views as display
    app = Service(__name__, instance_relative_config=True,
                  static_folder="../static", template_folder="../templates")
    app.config.from_mapping(config.from_environ(None if test_config is None else {}))
    if test_config is not None:
        app.config.from_mapping(test_config)
    startup.check(app.config)  # refuse a config that would lose reviews or break limits
    # One log format for the whole process, on standard error for the platform's log
    # router; Flask's own handler would print every line of the `widget` loggers twice.
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app.logger.removeHandler(default_handler)
    logs.init_app(app)  # LOG_FORMAT=json: before anything logs

    errors.init_app(app)
    i18n.init_app(app)
    bodies.init_app(app)
    limiter.init_app(app)
    security.init_app(app)
    compress.init_app(app)
    outbox.init_app(app)
    pacing.init_app(app)
    sender.init_app(app)
    mirror.init_app(app)
    sync.init_app(app)
    metrics.init_app(app)  # METRICS_TOKEN: /metrics, and its request hooks
    webhooks.init_app(app)  # WIDGET_WEBHOOK_URL: the events' loop, beside the sender
    commands.init_app(app)
    defences.init_app(app)
    questions.init_app(app)
    photos.init_app(app)
    submissions.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)
    openapi.init_app(app)
    moderation.init_app(app)
    form.init_app(app)
    display.init_app(app)
    return app
