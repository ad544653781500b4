"""Client addresses come only from trusted proxies; HSTS over https; one gunicorn per socket."""

from __future__ import annotations

import json
import logging

import pytest
import requests

from tests import hostile_corpus as hostile
from tests.processes import gunicorn
from tests.reviews import review_body

JSONAPI = "application/vnd.api+json"
HSTS = "max-age=31536000"


def post(client, content, headers):
    return client.post("/client/reviews", data=json.dumps(review_body(content=content)),
                       content_type=JSONAPI, headers=headers)


def ignored_lines(caplog):
    return [r.getMessage() for r in caplog.records
            if r.getMessage().startswith("X-Forwarded-For ignored")]


# -- client addresses ---------------------------------------------------------------------
def test_without_trusted_proxies_rotating_x_forwarded_for_shares_one_per_ip_quota(make_app):
    client = make_app(RATELIMIT_ENABLED=True, WIDGET_TRUSTED_PROXIES=0,
                      WIDGET_SUBMIT_LIMIT="2/minute", WIDGET_EMAIL_LIMIT="100/hour").test_client()
    statuses = [post(client, f"Body {n}", forged).status_code
                for n, forged in enumerate(hostile.rotating_forwarded_for(4))]
    assert statuses == [202, 202, 429, 429]


def test_without_trusted_proxies_the_first_x_forwarded_for_is_logged_once_with_what_to_set(
        make_app, caplog):
    caplog.set_level(logging.INFO)
    client = make_app(WIDGET_TRUSTED_PROXIES=0).test_client()
    client.get("/healthz")
    assert ignored_lines(caplog) == []
    for forged in ["1.1.1.1", "2.2.2.2", "3.3.3.3"]:
        client.get("/healthz", headers={"X-Forwarded-For": forged})
    lines = ignored_lines(caplog)
    assert len(lines) == 1
    assert "WIDGET_TRUSTED_PROXIES" in lines[0]
    assert "1.1.1.1" not in caplog.text  # what a client wrote is not worth a log line


def test_with_a_trusted_proxy_x_forwarded_for_is_used_and_not_reported(make_app, caplog):
    caplog.set_level(logging.INFO)
    client = make_app(WIDGET_TRUSTED_PROXIES=1).test_client()
    client.get("/healthz", headers={"X-Forwarded-For": "203.0.113.7"})
    assert ignored_lines(caplog) == []


# -- HSTS ---------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["/healthz", "/moderation/", "/no-such-page"])
def test_answers_over_https_carry_hsts(make_app, url):
    client = make_app(WIDGET_TRUSTED_PROXIES=0).test_client()
    response = client.get(url, base_url="https://reviews.example")
    assert response.headers["Strict-Transport-Security"] == HSTS


@pytest.mark.parametrize("url", ["/healthz", "/moderation/", "/no-such-page"])
def test_answers_over_plain_http_never_carry_hsts(make_app, url):
    client = make_app(WIDGET_TRUSTED_PROXIES=0).test_client()
    assert "Strict-Transport-Security" not in client.get(url).headers


def test_behind_a_trusted_router_https_is_read_from_x_forwarded_proto(make_app):
    client = make_app(WIDGET_TRUSTED_PROXIES=1).test_client()
    secure = client.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    plain = client.get("/healthz", headers={"X-Forwarded-Proto": "http"})
    assert secure.headers["Strict-Transport-Security"] == HSTS
    assert "Strict-Transport-Security" not in plain.headers


def test_without_trusted_proxies_a_forged_x_forwarded_proto_gets_no_hsts(make_app):
    client = make_app(WIDGET_TRUSTED_PROXIES=0).test_client()
    response = client.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in response.headers


# -- gunicorn's control socket ------------------------------------------------------------
@pytest.mark.slow
def test_two_procfile_web_instances_with_one_home_both_serve_and_make_no_control_socket(
        tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    # gunicorn puts the socket in XDG_RUNTIME_DIR when it is set, else in ~/.gunicorn.
    webs = [gunicorn({"HOME": str(home), "XDG_RUNTIME_DIR": str(home),
                      "DATABASE_URL": f"sqlite:///{tmp_path / f'outbox{n}.db'}",
                      "WIDGET_SENDER": "off", "SECRET_KEY": "test-secret"},
                     log_path=tmp_path / f"web{n}.log")
            for n in range(2)]
    try:
        for web in webs:
            web.wait_ready()
        for web in webs:
            assert requests.get(web.url + "/healthz", timeout=5).status_code == 200
        assert sorted(path.name for path in home.rglob("*")) == []
    finally:
        for web in webs:
            web.stop()
