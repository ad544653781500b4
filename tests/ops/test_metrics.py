"""GET /metrics: behind its token, in Prometheus' format, counters that move."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from tests.delivery.test_sender import wait_until
from tests.ops import sample, scrape
from tests.reviews import form_token, review_body
from widget.delivery.outbox import submissions, utcnow

TOKEN = "metrics-token"


@pytest.fixture
def app(make_app):
    return make_app(METRICS_TOKEN=TOKEN)


def test_metrics_is_not_found_when_no_token_is_set(make_app):
    client = make_app().test_client()
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x",
    "Bearer é\u00ff", f"bearer  {TOKEN[:-1]}",
])
def test_metrics_without_the_bearer_token_is_401(client, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].lower().startswith("bearer")
    assert "widget_" not in response.get_data(as_text=True)


def test_metrics_with_the_token_is_prometheus_text(client):
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=")
    families = scrape(client.get)
    for name in ("widget_submissions", "widget_deliveries", "widget_outbox_rows",
                 "widget_oldest_queued_seconds", "widget_request_seconds",
                 "widget_webhook_backlog", "widget_database_up"):
        assert name in families, name


def test_submissions_are_counted_by_status_from_the_api_and_the_form(make_app):
    app = make_app(METRICS_TOKEN=TOKEN, WIDGET_TOKEN_MIN_SECONDS=0)
    client = app.test_client()
    before = scrape(client.get)
    assert client.post("/client/reviews", json=review_body()).status_code == 202
    assert client.post("/client/reviews", json=review_body(rating=9)).status_code == 422
    assert client.post("/client/reviews", data="x", content_type="text/plain"
                       ).status_code == 415
    form = {"review_type": "review", "rating": "4", "content": "Good.", "author": "Bo",
            "email": "bo@example.com", "product_id": "42", "integration": "shopify",
            "idempotency_key": "f" * 32, "form_token": form_token("shopify:42")}
    assert client.post("/embed", data=form).status_code == 200
    assert client.post("/embed", data={**form, "email": "bo@"}).status_code == 422
    client.get("/embed?product_id=42")  # a page, not a submission
    after = scrape(client.get)
    moved = {status: sample(after, "widget_submissions", "widget_submissions_total",
                            status=status)
             - sample(before, "widget_submissions", "widget_submissions_total", status=status)
             for status in ("200", "202", "415", "422")}
    assert moved == {"200": 1, "202": 1, "415": 1, "422": 2}


def test_throttled_submissions_are_counted_as_429(make_app):
    client = make_app(METRICS_TOKEN=TOKEN, RATELIMIT_ENABLED=True,
                      WIDGET_SUBMIT_LIMIT="1/minute").test_client()
    for i in range(3):
        client.post("/client/reviews", json=review_body(content=f"Review {i}"))
    families = scrape(client.get)
    assert sample(families, "widget_submissions", "widget_submissions_total",
                  status="429") == 2


def test_request_seconds_are_labelled_by_route_never_by_path(client):
    for i in range(5):
        client.get(f"/no/such/page/{i}")
        client.get(f"/moderation/reviews/{i}")
    client.get("/healthz")
    families = scrape(client.get)
    routes = {dict(labels)["route"] for (name, labels) in families["widget_request_seconds"]
              if name == "widget_request_seconds_count"}
    assert {"unmatched", "/moderation/reviews/<review_id>", "/healthz"} <= routes
    assert not any("/no/such" in route or route.endswith(("/1", "/2")) for route in routes)
    assert sample(families, "widget_request_seconds", "widget_request_seconds_count",
                  route="unmatched") == 5
    assert sample(families, "widget_request_seconds", "widget_request_seconds_count",
                  route="/healthz") == 1


def test_deliveries_are_counted_in_the_database_by_outcome(make_app, fake_klaviyo):
    app = make_app(METRICS_TOKEN=TOKEN, WIDGET_SENDER="thread", KLAVIYO_PRIVATE_KEY=None,
                   KLAVIYO_READ_TIMEOUT=0.3)
    client = app.test_client()

    def submit(content):
        assert client.post("/client/reviews", json=review_body(content=content)
                           ).status_code == 202

    def outcomes():
        return {dict(labels)["outcome"]: value for (_, labels), value
                in scrape(client.get)["widget_deliveries"].items()}

    def reached(**expected):
        return wait_until(lambda: {k: outcomes()[k] for k in expected} == expected)

    fake_klaviyo.throttle(retry_after=1, count=1)
    fake_klaviyo.fail_with(503, count=1)
    submit("A 429, a 503, then delivered.")
    assert reached(throttled=1, unavailable=1, delivered=1)
    fake_klaviyo.fail_with(400, count=1)
    submit("Refused by Klaviyo.")
    assert reached(rejected=1)
    fake_klaviyo.answer_late(1.0, create=True, count=1)
    submit("Sent, never answered, sent again.")
    assert reached(timeout=1, delivered=2)
    app.config["SENDER_MAX_AGE_HOURS"] = 0  # the next review is too old at once
    submit("Too old to send.")
    assert reached(expired=1)
    counts = outcomes()
    assert counts == {"delivered": 2, "throttled": 1, "unavailable": 1, "timeout": 1,
                      "rejected": 1, "expired": 1}
    # Counted in the database: another process (another app on it) sees the same.
    fresh = make_app(METRICS_TOKEN=TOKEN).test_client()
    assert {dict(labels)["outcome"]: value for (_, labels), value
            in scrape(fresh.get)["widget_deliveries"].items()} == counts


def test_the_queue_its_oldest_review_and_klaviyos_budget_are_read_at_each_scrape(
        make_app, fake_klaviyo):
    app = make_app(METRICS_TOKEN=TOKEN, KLAVIYO_PUBLIC_KEY=None)
    client = app.test_client()
    for i in range(3):
        assert client.post("/client/reviews", json=review_body(content=f"R {i}")
                           ).status_code == 202
    with app.extensions["outbox"].engine.begin() as conn:
        conn.execute(update(submissions).values(created_at=utcnow() - timedelta(minutes=7)))
    families = scrape(client.get)
    assert sample(families, "widget_outbox_rows", state="queued") == 3
    assert sample(families, "widget_outbox_rows", state="delivered") == 0
    assert 7 * 60 <= sample(families, "widget_oldest_queued_seconds") < 7 * 60 + 30
    assert "widget_klaviyo_budget_remaining" not in families  # unknown before an answer
    assert "widget_mirror_age_seconds" not in families  # never synced
    delivering = make_app(METRICS_TOKEN=TOKEN, WIDGET_SENDER="thread")
    assert wait_until(lambda: delivering.extensions["outbox"].counts()["delivered"] == 3)
    assert wait_until(lambda: "widget_klaviyo_budget_remaining" in scrape(
        delivering.test_client().get))
    families = scrape(delivering.test_client().get)
    assert sample(families, "widget_outbox_rows", state="delivered") == 3
    assert sample(families, "widget_oldest_queued_seconds") == 0
    assert sample(families, "widget_klaviyo_budget_remaining") == 147
    assert sample(families, "widget_klaviyo_budget_limit") == 150


def test_the_mirrors_age_is_reported_once_it_has_synced(make_app, fake_klaviyo):
    app = make_app(METRICS_TOKEN=TOKEN)
    app.extensions["syncer"].sync_once()
    families = scrape(app.test_client().get)
    assert 0 <= sample(families, "widget_mirror_age_seconds") < 5


def test_a_scrape_answers_when_the_database_cannot_be_read(app, tmp_path):
    app.extensions["outbox"].engine.dispose()
    (tmp_path / "outbox.db").unlink()
    (tmp_path / "outbox.db").mkdir()
    families = scrape(app.test_client().get)
    assert sample(families, "widget_database_up") == 0
    assert "widget_outbox_rows" not in families
