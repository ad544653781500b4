"""Health checks for the platform router."""

from __future__ import annotations

import time

from tests.reviews import review_body


def test_healthz_says_the_process_is_alive(client):
    response = client.get("/healthz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_readyz_reports_the_database_the_limits_storage_and_the_public_key(client):
    body = client.get("/readyz").get_json()
    assert body["status"] == "ready"
    assert body["checks"] == {"database": "ok", "klaviyo_public_key": "set",
                              "rate_limit_storage": "memory (this process only)"}
    assert body["klaviyo_budget"].startswith("unknown until Klaviyo answers")


def test_readyz_shows_klaviyos_budget_as_its_last_answer_described_it(make_app, fake_klaviyo):
    app = make_app(WIDGET_SENDER="thread")
    client = app.test_client()
    assert client.post("/client/reviews", json=review_body()).status_code == 202
    fake_klaviyo.wait_for_reviews(1)
    deadline = time.monotonic() + 5  # the sender notes the answer just after it came
    while isinstance(budget := client.get("/readyz").get_json()["klaviyo_budget"], str) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert budget["limit"] == 150 and budget["remaining"] == 149
    assert 0 < budget["reset_in_seconds"] <= 60


def test_readyz_says_when_the_public_key_is_missing(make_app):
    body = make_app(KLAVIYO_PUBLIC_KEY=None).test_client().get("/readyz").get_json()
    assert body["status"] == "ready"
    assert body["checks"]["klaviyo_public_key"].startswith("missing")


def test_readyz_is_503_when_the_database_is_unreachable(make_app, tmp_path):
    app = make_app()
    app.extensions["outbox"].engine.dispose()
    (tmp_path / "outbox.db").unlink()
    (tmp_path / "outbox.db").mkdir()  # a directory where the database file should be
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"] == "unavailable: cannot write"


def test_readyz_reports_the_webhook_backlog_without_failing_on_it(make_app):
    app = make_app(WIDGET_WEBHOOK_URL="http://127.0.0.1:9/hook")  # no loop: nothing is sent
    client = app.test_client()
    assert client.get("/readyz").get_json()["webhooks"] == {"backlog": 0,
                                                            "oldest_seconds": None}
    assert client.post("/client/reviews", json=review_body()).status_code == 202
    body = client.get("/readyz").get_json()
    assert body["status"] == "ready"
    assert body["webhooks"]["backlog"] == 1 and 0 <= body["webhooks"]["oldest_seconds"] < 5


def test_readyz_says_webhooks_are_off_without_a_url(client):
    assert client.get("/readyz").get_json()["webhooks"]["state"].startswith("off")


def test_readyz_reports_the_mirrors_age_once_it_has_synced(make_app, fake_klaviyo):
    app = make_app()
    app.extensions["syncer"].sync_once()
    mirror = app.test_client().get("/readyz").get_json()["reviews_mirror"]
    assert 0 <= mirror["synced_seconds_ago"] < 5
