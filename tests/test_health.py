"""Health checks for the platform router."""

from __future__ import annotations


def test_healthz_says_the_process_is_alive(client):
    response = client.get("/healthz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_readyz_reports_the_database_the_limits_storage_and_the_public_key(client):
    body = client.get("/readyz").get_json()
    assert body == {"status": "ready",
                    "checks": {"database": "ok", "klaviyo_public_key": "set",
                               "rate_limit_storage": "memory (this process only)"}}


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
