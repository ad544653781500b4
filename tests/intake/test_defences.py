"""Defences of the public endpoint: form tokens, honeypot, Origin, limits, backlog, duplicates."""

from __future__ import annotations

import json

import pytest

from tests.reviews import form_token, review_body

JSONAPI = "application/vnd.api+json"


def token_from(seconds_ago: float, secret: str = "test-secret") -> str:
    """A form token as if the form had been rendered `seconds_ago`."""
    return form_token(seconds_ago=seconds_ago, secret=secret)


def post(client, body=None, headers=None, **kwargs):
    return client.post("/client/reviews", data=json.dumps(body or review_body()),
                       content_type=JSONAPI, headers=headers or {}, **kwargs)


def error_code(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == JSONAPI
    return response.get_json()["errors"][0]["code"]


@pytest.fixture
def closed(make_app):
    """The default mode: only posts carrying the form's token."""
    return make_app(WIDGET_OPEN_API=False)


def test_closed_api_refuses_a_post_without_a_token(closed):
    response = post(closed.test_client())
    assert error_code(response, 403) == "token_required"
    assert closed.extensions["outbox"].counts()["queued"] == 0


def test_closed_api_accepts_the_forms_token(closed):
    response = post(closed.test_client(), headers={"X-Review-Token": token_from(10)})
    assert response.status_code == 202


def test_a_forged_token_is_refused(closed):
    forged = token_from(10, secret="not-our-secret")
    assert error_code(post(closed.test_client(), headers={"X-Review-Token": forged}),
                      403) == "token_invalid"
    assert error_code(post(closed.test_client(), headers={"X-Review-Token": "garbage"}),
                      403) == "token_invalid"


def test_an_expired_token_is_refused(closed):
    old = token_from(2 * 86400)
    assert error_code(post(closed.test_client(), headers={"X-Review-Token": old}),
                      403) == "token_expired"


def test_a_form_sent_faster_than_a_person_writes_is_refused(closed):
    fresh = token_from(0)
    response = post(closed.test_client(), headers={"X-Review-Token": fresh})
    assert error_code(response, 403) == "too_fast"
    assert "Wait a moment" in response.get_json()["errors"][0]["detail"]


def test_a_filled_honeypot_is_refused_in_any_mode(make_app):
    for open_api in (True, False):
        client = make_app(WIDGET_OPEN_API=open_api).test_client()
        headers = {"X-Review-Token": token_from(10), "X-Review-Honeypot": "http://spam.example"}
        assert error_code(post(client, headers=headers), 403) == "honeypot"


def test_a_token_in_open_mode_is_still_checked(make_app):
    client = make_app(WIDGET_OPEN_API=True).test_client()
    assert error_code(post(client, headers={"X-Review-Token": "garbage"}), 403) == "token_invalid"


def test_open_api_takes_token_less_json_without_origin(make_app):
    assert post(make_app(WIDGET_OPEN_API=True).test_client()).status_code == 202


@pytest.mark.parametrize("open_api", [True, False])
def test_a_post_from_a_foreign_origin_is_refused_in_every_mode(make_app, open_api):
    client = make_app(WIDGET_OPEN_API=open_api,
                      WIDGET_FRAME_ANCESTORS="'self' https://shop.example.com").test_client()
    headers = {"Origin": "https://evil.example", "X-Review-Token": token_from(10)}
    assert error_code(post(client, headers=headers), 403) == "origin_not_allowed"


@pytest.mark.parametrize("origin", ["https://shop.example.com", "https://eu.brand.example",
                                    "http://localhost"])
def test_posts_from_allowed_storefronts_and_this_service_are_taken(make_app, origin):
    client = make_app(WIDGET_OPEN_API=True,
                      WIDGET_FRAME_ANCESTORS="'self' https://shop.example.com "
                                             "https://*.brand.example").test_client()
    assert post(client, headers={"Origin": origin}).status_code == 202


def test_sixth_post_in_a_minute_from_one_ip_gets_429_with_retry_after(make_app):
    client = make_app(RATELIMIT_ENABLED=True, WIDGET_EMAIL_LIMIT="100/hour").test_client()
    statuses = [post(client, review_body(content=f"Review number {i}")).status_code
                for i in range(5)]
    assert statuses == [202] * 5
    response = post(client, review_body(content="Review number 6"))
    assert error_code(response, 429) == "throttled"
    assert 0 < int(response.headers["Retry-After"]) <= 60


def test_one_email_address_is_limited_whatever_its_ip(make_app):
    client = make_app(RATELIMIT_ENABLED=True, WIDGET_EMAIL_LIMIT="2/hour").test_client()
    for i in range(2):
        ip = {"REMOTE_ADDR": f"10.0.0.{i}"}
        assert post(client, review_body(content=f"Text {i}"), environ_base=ip).status_code == 202
    response = post(client, review_body(content="Text 3"), environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert error_code(response, 429) == "throttled"
    error = response.get_json()["errors"][0]
    assert error["source"]["pointer"] == "/data/attributes/email"
    assert int(response.headers["Retry-After"]) > 0


def test_forged_x_forwarded_for_does_not_change_the_rate_limit_key(make_app):
    client = make_app(RATELIMIT_ENABLED=True, WIDGET_TRUSTED_PROXIES=1,
                      WIDGET_SUBMIT_LIMIT="2/minute", WIDGET_EMAIL_LIMIT="100/hour").test_client()
    router_saw = "203.0.113.7"
    statuses = []
    for i, forged in enumerate(["1.1.1.1", "2.2.2.2", "3.3.3.3"]):
        # The client forges a first hop; the router appends the address it really saw.
        headers = {"X-Forwarded-For": f"{forged}, {router_saw}"}
        statuses.append(post(client, review_body(content=f"Body {i}"),
                             headers=headers).status_code)
    assert statuses == [202, 202, 429]
    other = post(client, review_body(content="Other"),
                 headers={"X-Forwarded-For": "1.1.1.1, 198.51.100.1"})
    assert other.status_code == 202


def test_backlog_ceiling_answers_503_with_retry_after(make_app):
    app = make_app(WIDGET_BACKLOG_LIMIT=2)
    client = app.test_client()
    assert [post(client, review_body(content=f"R{i}")).status_code for i in range(2)] == [202] * 2
    app.extensions["backlog"].counted = None  # forget the counted backlog, as 2 s later
    response = post(client, review_body(content="R3"))
    assert error_code(response, 503) == "backlog_full"
    assert response.headers["Retry-After"] == "60"


def test_the_same_review_sent_again_within_a_day_gets_the_first_id(app, client):
    first = post(client)
    again = post(client)
    assert again.status_code == 202
    assert again.get_json()["data"]["id"] == first.get_json()["data"]["id"]
    assert "Idempotent-Replayed" not in again.headers
    assert app.extensions["outbox"].counts()["queued"] == 1
    retyped = post(client, review_body(content="  lovely SHIRT, true to size. "))
    assert error_code(retyped, 409) == "review_already_sent"
    assert first.get_json()["data"]["id"] in retyped.get_json()["errors"][0]["detail"]
    other_product = review_body(product={"external_id": "2", "integration_key": "shopify"})
    assert post(client, other_product).get_json()["data"]["id"] != first.get_json()["data"]["id"]


def test_the_api_sends_no_cors_headers_and_the_usual_security_headers(client):
    response = post(client, headers={"Origin": "http://localhost"})
    assert "Access-Control-Allow-Origin" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"]
    assert response.headers["Permissions-Policy"]


@pytest.mark.parametrize("product", ["shopify:7549950034135", "shopify:" + "ab" * 120])
def test_the_forms_tokens_are_itsdangerous_own_both_ways(make_app, product):
    """Tokens issued before and after an upgrade are interchangeable: the plain serializer
    reads ours, ours reads its, even where it would have compressed the payload."""
    from itsdangerous import URLSafeTimedSerializer

    from widget.intake import defences

    plain = URLSafeTimedSerializer("test-secret", salt=defences.TOKEN_SALT)
    with make_app().app_context():
        ours = defences.issue_token(product)
        assert plain.loads(ours)["p"] == product
        theirs = plain.dumps({"n": "abc", "p": product, "t0": 1})
        assert defences.renew_token(theirs, product) != theirs
        assert defences._serializer().loads(theirs) == {"n": "abc", "p": product, "t0": 1}
