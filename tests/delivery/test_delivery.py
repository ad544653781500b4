"""End to end in one process: accepted reviews reach the fake Klaviyo at the allowed pace."""

from __future__ import annotations

import time

from tests.reviews import review_body


def submit(client, body=None, **kwargs):
    return client.post("/client/reviews", json=body or review_body(), **kwargs)


def test_valid_review_arrives_at_klaviyo_within_a_second(make_app, fake_klaviyo):
    app = make_app(WIDGET_SENDER="thread")
    started = time.monotonic()
    response = submit(app.test_client())
    assert response.status_code == 202
    reviews = fake_klaviyo.wait_for_reviews(1, timeout=1.0)
    assert time.monotonic() - started < 1.0
    assert reviews == [review_body()]
    sent = fake_klaviyo.requests("/client/reviews")[0]
    assert sent.query == {"company_id": "PUBKEY"}
    assert sent.headers["Revision"] == "2026-07-15"
    assert sent.headers["Content-Type"] == "application/vnd.api+json"
    assert "Authorization" not in sent.headers
