"""An accepted review survives SIGKILL of the process that accepted it."""

from __future__ import annotations

import time

import pytest
import requests

from tests.processes import gunicorn
from tests.reviews import review_body
from widget.delivery.outbox import Outbox, connect


@pytest.fixture
def service_env(tmp_path, fake_klaviyo):
    return {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'outbox.db'}",
        "KLAVIYO_PUBLIC_KEY": "PUBKEY",
        "KLAVIYO_BASE_URL": fake_klaviyo.url,
        "KLAVIYO_READ_TIMEOUT": "1",
        "WIDGET_SENDER": "thread",
        "SENDER_POLL_SECONDS": "0.05",
        "SENDER_BACKOFF_BASE_SECONDS": "0.1",
        "SENDER_BACKOFF_MAX_SECONDS": "0.5",
        "SENDER_RECLAIM_SECONDS": "1",
        "RATELIMIT_ENABLED": "false",
        "WIDGET_OPEN_API": "true",
        "SECRET_KEY": "test-secret",
    }


def row_state(env, review_id):
    outbox = Outbox(connect(env["DATABASE_URL"]))
    try:
        return outbox.get(review_id)
    finally:
        outbox.engine.dispose()


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.05)
    return predicate()


@pytest.mark.slow
@pytest.mark.parametrize("outage", ["refuse", "hang"])
def test_review_accepted_before_sigkill_is_delivered_after_restart(
        outage, service_env, fake_klaviyo, tmp_path):
    # Klaviyo is down (refusing) or hanging, so the review cannot leave before the kill.
    getattr(fake_klaviyo, outage)()
    if outage == "refuse":  # a retry far enough off that the kill lands between attempts
        service_env = {**service_env, "SENDER_BACKOFF_BASE_SECONDS": "4"}
    web = gunicorn(service_env, log_path=tmp_path / "web.log").wait_ready()
    try:
        response = requests.post(web.url + "/client/reviews", json=review_body(), timeout=5)
        assert response.status_code == 202
        review_id = response.json()["data"]["id"]
        if outage == "hang":  # killed mid-send: the row is left in `sending`
            assert wait_for(lambda: row_state(service_env, review_id).state == "sending")
        else:
            assert wait_for(lambda: (row := row_state(service_env, review_id)).attempts >= 1
                            and row.state == "queued")
    finally:
        web.kill()

    assert row_state(service_env, review_id).state in ("queued", "sending")
    if outage == "refuse":
        fake_klaviyo.accept()
    else:
        fake_klaviyo.clear()
    arrived_before = len(fake_klaviyo.reviews())
    restarted = gunicorn(service_env, log_path=tmp_path / "web2.log").wait_ready()
    try:
        assert wait_for(lambda: row_state(service_env, review_id).state == "delivered")
    finally:
        restarted.stop()
    assert len(fake_klaviyo.reviews()) == arrived_before + 1
    assert fake_klaviyo.reviews()[-1] == review_body()
    # A send cut off mid-flight may have reached Klaviyo: it is flagged, never silent.
    assert row_state(service_env, review_id).possible_duplicate is (outage == "hang")
