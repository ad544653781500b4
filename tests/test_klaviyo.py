"""KlaviyoClient: what it sends, and how upstream failures become KlaviyoError types."""

from __future__ import annotations

import pytest
import requests
import responses

from widget.klaviyo import (
    KlaviyoClient,
    KlaviyoRateLimited,
    KlaviyoRejected,
    KlaviyoTimeout,
    KlaviyoUnavailable,
    RateLimitReading,
    rate_limit_reading,
)

BASE = "https://klaviyo.test"
PRIVATE = "pk_secret_private_key"
CONFIG = {
    "KLAVIYO_BASE_URL": BASE,
    "KLAVIYO_REVISION": "2026-07-15",
    "KLAVIYO_PUBLIC_KEY": "PUBKEY",
    "KLAVIYO_PRIVATE_KEY": PRIVATE,
    "KLAVIYO_CONNECT_TIMEOUT": 3.05,
    "KLAVIYO_READ_TIMEOUT": 10.0,
}


def jsonapi_error(detail: str) -> dict:
    return {"errors": [{"id": "1", "code": "invalid", "title": "Invalid input.",
                        "detail": detail, "source": {"pointer": "/data/attributes/email"}}]}


@responses.activate
def test_create_review_posts_the_stored_bytes_with_the_right_headers():
    responses.post(f"{BASE}/client/reviews", status=202, body=b"")
    assert KlaviyoClient(CONFIG).create_review(b'{"data":{}}') == 202
    [call] = responses.calls
    assert call.request.url == f"{BASE}/client/reviews?company_id=PUBKEY"
    assert call.request.body == b'{"data":{}}'
    assert call.request.headers["revision"] == "2026-07-15"
    assert call.request.headers["Content-Type"] == "application/vnd.api+json"
    assert "Authorization" not in call.request.headers


@responses.activate
def test_every_call_has_connect_and_read_timeouts():
    responses.post(f"{BASE}/client/reviews", status=202)
    KlaviyoClient(CONFIG).create_review(b"{}")
    assert responses.calls[0].request.req_kwargs["timeout"] == (3.05, 10.0)


@responses.activate
def test_429_carries_retry_after_in_whole_seconds():
    responses.post(f"{BASE}/client/reviews", status=429, headers={"Retry-After": "2.2"},
                   json=jsonapi_error("Request was throttled."))
    with pytest.raises(KlaviyoRateLimited) as caught:
        KlaviyoClient(CONFIG).create_review(b"{}")
    assert (caught.value.status, caught.value.retry_after) == (429, 3)


@responses.activate
def test_other_4xx_is_rejected_with_klaviyos_detail():
    responses.post(f"{BASE}/client/reviews", status=400, json=jsonapi_error("Email is invalid"))
    with pytest.raises(KlaviyoRejected) as caught:
        KlaviyoClient(CONFIG).create_review(b"{}")
    assert (caught.value.status, caught.value.detail) == (400, "Email is invalid")


@responses.activate
def test_5xx_and_html_error_pages_are_unavailable():
    responses.post(f"{BASE}/client/reviews", status=502, body="<html>Bad gateway</html>")
    with pytest.raises(KlaviyoUnavailable) as caught:
        KlaviyoClient(CONFIG).create_review(b"{}")
    assert caught.value.status == 502
    assert caught.value.detail == "HTTP 502 Bad Gateway"


@responses.activate
@pytest.mark.parametrize("failure, kind", [
    (requests.ConnectionError("refused"), KlaviyoUnavailable),
    (requests.ConnectTimeout("slow connect"), KlaviyoUnavailable),
    (requests.ReadTimeout("slow answer"), KlaviyoTimeout),
])
def test_transport_failures_are_classified(failure, kind):
    responses.post(f"{BASE}/client/reviews", body=failure)
    with pytest.raises(kind) as caught:
        KlaviyoClient(CONFIG).create_review(b"{}")
    assert caught.value.status is None


def test_missing_public_key_raises_before_any_call():
    with pytest.raises(KlaviyoUnavailable, match="KLAVIYO_PUBLIC_KEY"):
        KlaviyoClient({**CONFIG, "KLAVIYO_PUBLIC_KEY": None}).create_review(b"{}")


def test_the_private_key_is_not_in_the_clients_repr_or_session_headers():
    client = KlaviyoClient(CONFIG)
    assert PRIVATE not in repr(client)
    assert PRIVATE not in str(dict(client.session.headers))


def test_rate_limit_headers_are_read_as_numbers_or_not_at_all():
    at = 1000.0
    assert rate_limit_reading({"RateLimit-Limit": "150", "RateLimit-Remaining": "12",
                               "RateLimit-Reset": "41"}, at) == RateLimitReading(150, 12, 41, at)
    structured = {"RateLimit-Limit": "150, 150;w=60", "RateLimit-Remaining": "3",
                  "RateLimit-Reset": "7"}
    assert rate_limit_reading(structured, at).limit == 150
    assert rate_limit_reading({"RateLimit-Limit": "150"}, at) is None
    assert rate_limit_reading({"RateLimit-Limit": "many", "RateLimit-Remaining": "1",
                               "RateLimit-Reset": "1"}, at) is None


@responses.activate
def test_every_answer_but_a_429_leaves_its_rate_limit_reading_on_the_client():
    limits = {"RateLimit-Limit": "150", "RateLimit-Remaining": "97", "RateLimit-Reset": "12"}
    responses.post(f"{BASE}/client/reviews", status=202, body=b"", headers=limits)
    responses.get(f"{BASE}/api/reviews", json={"data": []}, headers=limits)
    client = KlaviyoClient(CONFIG)
    client.create_review(b"{}")
    assert (client.last_reading.limit, client.last_reading.remaining) == (150, 97)
    client.last_reading = None
    client.list_reviews({})
    assert client.last_reading.reset == 12
    responses.post(f"{BASE}/client/reviews", status=429, headers={"Retry-After": "3"})
    with pytest.raises(KlaviyoRateLimited):
        client.create_review(b"{}")
    assert client.last_reading is None
