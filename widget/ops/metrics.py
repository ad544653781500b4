"""GET /metrics for Prometheus, answered only with `Authorization: Bearer $METRICS_TOKEN`.

Two kinds of figures, kept where every process sees them:

- What a request did (`widget_submissions_total`, `widget_request_seconds`) is counted by the
  web process that answered it. gunicorn's processes of one container share them through
  prometheus-client's multiprocess mode: PROMETHEUS_MULTIPROC_DIR, made empty at every
  start by widget/ops/gunicorn_hooks.py, holds one file per process; a scrape served by any
  of them adds them all up. Without it (`flask run`, tests) the process counts alone.
- What the queue, the sender and the mirror did is read from the database at each scrape:
  the worker role runs in a container of its own, whose memory and files no web process
  can see. Sends are counted by outcome in the transaction that records the outcome
  (widget/delivery/events.py), so `widget_deliveries_total` survives restarts and counts
  every sender, thread or worker.

With METRICS_TOKEN unset nothing is measured and /metrics is 404: a request costs nothing
more than it did.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from time import perf_counter
from typing import Any

from flask import Flask, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as exposition
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Unauthorized

from widget.delivery import events
from widget.delivery.outbox import STATES, submissions, utcnow
from widget.intake.api import SUBMIT_ENDPOINTS  # the intake's two doors

log = logging.getLogger(__name__)

# A request no route matched (404, or a method no route takes): never its raw path, which
# anyone can make up by the million.
UNMATCHED = "unmatched"
# Seconds: from a cached page (under a millisecond) to a review with photos (seconds).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STARTED = "widget.metrics.started"


class RequestMetrics:
    """The per-request figures of this process: a start time before, two writes after."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.submissions = Counter(
            "widget_submissions", "Answers of the intake (API and form post) by HTTP status",
            ["status"], registry=registry)
        self.seconds = Histogram(
            "widget_request_seconds", "Time in the app per request, by route (URL rule)",
            ["route"], buckets=BUCKETS, registry=registry)
        # labels() costs a lock and a tuple each time; a route's child is looked up once.
        self._routes: dict[str, Any] = {}
        self._statuses: dict[int, Any] = {}

    def started(self) -> None:
        request.environ[STARTED] = perf_counter()

    def finished(self, response: Response) -> Response:
        environ = request.environ
        started = environ.get(STARTED)
        if started is not None:
            rule = request.url_rule
            route = rule.rule if rule is not None else UNMATCHED
            child = self._routes.get(route)
            if child is None:
                child = self._routes[route] = self.seconds.labels(route)
            child.observe(perf_counter() - started)
        if request.endpoint in SUBMIT_ENDPOINTS:
            status = response.status_code
            counter = self._statuses.get(status)
            if counter is None:
                counter = self._statuses[status] = self.submissions.labels(str(status))
            counter.inc()
        return response


class StateCollector:
    """Figures read from the database (and the pacer's shared view) at each scrape."""

    def __init__(self, app: Flask) -> None:
        self.outbox = app.extensions["outbox"]
        self.pacer = app.extensions["pacer"]
        self.mirror = app.extensions["mirror"]

    def describe(self) -> list[Metric]:
        return []  # nothing is read when the collector is registered

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("widget_database_up",
                               "1 when the database answered this scrape, else 0")
        try:
            figures = list(self._database())
        except SQLAlchemyError as error:
            log.warning("metrics: the database cannot be read: %s", type(error).__name__)
            up.add_metric([], 0)
            figures = []
        else:
            up.add_metric([], 1)
        yield up
        yield from figures
        yield from self._budget()

    def _database(self) -> Iterator[Metric]:
        now = utcnow()
        t = submissions
        with self.outbox.engine.connect() as conn:
            by_state = dict(conn.execute(select(t.c.state, func.count()).group_by(t.c.state))
                            .all())
            outcomes = events.outcome_counts(conn)
            oldest = events.oldest_waiting(conn)
            backlog, oldest_event = events.backlog(conn)
        rows = GaugeMetricFamily("widget_outbox_rows", "Outbox rows by state", labels=["state"])
        for state in STATES:
            rows.add_metric([state], by_state.get(state, 0))
        yield rows
        yield GaugeMetricFamily(
            "widget_oldest_queued_seconds",
            "Age of the review waiting longest to be delivered (0: none waits)",
            value=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
        sends = CounterMetricFamily("widget_deliveries", "Sends to Klaviyo by outcome",
                                    labels=["outcome"])
        for outcome, count in outcomes.items():
            sends.add_metric([outcome], count)
        yield sends
        yield GaugeMetricFamily("widget_webhook_backlog", "Webhook events not sent yet",
                                value=backlog)
        yield GaugeMetricFamily(
            "widget_webhook_oldest_seconds", "Age of the oldest unsent webhook event (0: none)",
            value=max(0.0, (now - oldest_event).total_seconds()) if oldest_event else 0.0)
        age = self.mirror.state().age(now)
        if age is not None:  # absent until the mirror's first sync finishes
            yield GaugeMetricFamily("widget_mirror_age_seconds",
                                    "Seconds since the mirror of Klaviyo's reviews last synced",
                                    value=max(0.0, age))

    def _budget(self) -> Iterator[Metric]:
        view = self.pacer.view()
        if view is None:  # absent until Klaviyo's first answer describes the window
            return
        yield GaugeMetricFamily(
            "widget_klaviyo_budget_remaining",
            "Calls left in Klaviyo's steady window, as its last answer said",
            value=max(0.0, view["remaining"]))
        yield GaugeMetricFamily("widget_klaviyo_budget_limit",
                                "Calls Klaviyo's steady window allows", value=view["limit"])


def authorised() -> None:
    """401 unless the request carries the bearer token (compared in constant time)."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    token = current_app.config["METRICS_TOKEN"]
    if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode("utf-8", "replace"), token.encode("utf-8")):
        raise Unauthorized("Send Authorization: Bearer <METRICS_TOKEN>.",
                           www_authenticate=WWWAuthenticate("bearer", {"realm": "metrics"}))


def scrape() -> Response:
    """The Prometheus text format of every figure."""
    authorised()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    folder = app.config["PROMETHEUS_MULTIPROC_DIR"]
    if folder:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=folder)
        registry.register(app.extensions["metrics_state"])
    else:
        registry = app.extensions["metrics_registry"]
    response = Response(exposition(registry), content_type=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    """With METRICS_TOKEN set: the request hooks (first in, last out, so they time the
    others) and GET /metrics."""
    if not app.config["METRICS_TOKEN"]:
        return
    # In multiprocess mode the values live in files, not in a registry of this process.
    registry = None if app.config["PROMETHEUS_MULTIPROC_DIR"] else CollectorRegistry()
    measured = RequestMetrics(registry)
    state = StateCollector(app)
    if registry is not None:
        registry.register(state)
    app.extensions["metrics_registry"] = registry
    app.extensions["metrics_state"] = state
    app.before_request_funcs.setdefault(None, []).insert(0, measured.started)
    app.after_request_funcs.setdefault(None, []).insert(0, measured.finished)
    app.add_url_rule("/metrics", "metrics", scrape, methods=["GET"])
