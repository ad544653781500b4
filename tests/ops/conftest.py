"""Fixtures: an app with metrics on, and one whose events go to a receiver on loopback."""

from __future__ import annotations

import pytest

from tests.ops import Receiver

SECRET = "whsec_test_secret"


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server


@pytest.fixture
def make_notifying_app(make_app, receiver):
    """An app that delivers (sender thread) and sends its events to the receiver; its
    webhook loop is stopped afterwards."""
    apps = []

    def build(**overrides):
        app = make_app(**{"WIDGET_SENDER": "thread", "WIDGET_WEBHOOK_URL": receiver.url,
                          "WIDGET_WEBHOOK_SECRET": SECRET, "METRICS_TOKEN": "metrics-token",
                          **overrides})
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["notifier"].stop()
