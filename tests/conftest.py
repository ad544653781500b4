"""Fixtures: the app factory with test settings, a client, and the fake Klaviyo."""

from __future__ import annotations

import logging

import pytest

from tests.fake_klaviyo import FakeKlaviyo
from widget import create_app

logging.getLogger("werkzeug").setLevel(logging.WARNING)


@pytest.fixture
def fake_klaviyo():
    with FakeKlaviyo() as fake:
        yield fake


@pytest.fixture
def settings(tmp_path, fake_klaviyo):
    """Settings every test app starts from; a test changes what it needs."""
    return {
        "TESTING": True,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'outbox.db'}",
        "KLAVIYO_PUBLIC_KEY": "PUBKEY",
        "KLAVIYO_PRIVATE_KEY": "pk_test_private_key_never_shown",
        "KLAVIYO_BASE_URL": fake_klaviyo.url,
        "KLAVIYO_CONNECT_TIMEOUT": 1.0,
        "KLAVIYO_READ_TIMEOUT": 2.0,
        "WIDGET_SENDER": "off",
        "SENDER_POLL_SECONDS": 0.05,
        "SENDER_BACKOFF_BASE_SECONDS": 0.05,
        "SENDER_BACKOFF_MAX_SECONDS": 0.5,
        # The mirror's sync thread only where a test asks for it (its reads would count).
        "REVIEWS_SYNC_SECONDS": 0,
        "RATELIMIT_ENABLED": False,
        # Most tests post as a headless client would; tests of the form's token turn it off.
        "WIDGET_OPEN_API": True,
        "WIDGET_TRUSTED_PROXIES": 0,
        "SECRET_KEY": "test-secret",
    }


@pytest.fixture
def make_app(settings):
    """Build an app from the test settings plus overrides; stops its sender afterwards."""
    apps = []

    def build(**overrides):
        app = create_app({**settings, **overrides})
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["sender"].stop()
        app.extensions["outbox"].engine.dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()
