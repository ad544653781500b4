"""The Procfile's access log names no Basic-auth user and no moderation search text."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
import requests
from gunicorn.config import Config

from tests import hostile_corpus as hostile
from tests.processes import gunicorn
from widget.access_log import AccessLog

TYPED_AS_USER = hostile.SECRET_IN_USER


@pytest.fixture
def logged_web(tmp_path):
    """The Procfile's web role with moderation open; yields (service, read the log)."""
    log_path = tmp_path / "web.log"
    web = gunicorn({"DATABASE_URL": f"sqlite:///{tmp_path / 'outbox.db'}",
                    "WIDGET_SENDER": "off", "SECRET_KEY": "test-secret",
                    "MODERATION_PASSWORD": "correct horse battery staple",
                    "RATELIMIT_ENABLED": "false"}, log_path=log_path)
    web.wait_ready()
    try:
        yield web, log_path.read_text
    finally:
        web.stop()


def access_lines(text, path):
    return [line for line in text.splitlines() if f" {path}" in line and "HTTP/1.1" in line]


@pytest.mark.slow
def test_a_moderation_request_logs_its_path_but_not_the_user_or_the_search(logged_web):
    web, log = logged_web
    response = requests.get(web.url + hostile.MODERATION_SEARCH, timeout=5,
                            auth=(TYPED_AS_USER, "whatever"))
    assert response.status_code == 401
    web.stop()  # flushes the log
    text = log()
    lines = access_lines(text, "/moderation/")
    assert len(lines) == 1, text
    assert '"GET /moderation/ HTTP/1.1" 401' in lines[0]
    assert " - - [" in lines[0]  # the user atom is "-"
    assert TYPED_AS_USER not in text
    assert "private" not in text and "q=" not in text


@pytest.mark.slow
def test_a_url_outside_moderation_keeps_its_query(logged_web):
    web, log = logged_web
    assert requests.get(web.url + "/healthz?probe=kept", timeout=5,
                        auth=(TYPED_AS_USER, "whatever")).status_code == 200
    web.stop()
    text = log()
    assert '"GET /healthz?probe=kept HTTP/1.1" 200' in text
    assert TYPED_AS_USER not in text


@pytest.mark.slow
def test_loading_the_logger_class_leaves_gevent_nothing_to_warn_about(logged_web):
    # gunicorn's master imports the logger class before gevent patches the workers: had
    # the import pulled in requests, its https calls to Klaviyo would run unpatched.
    web, log = logged_web
    web.stop()
    assert "MonkeyPatchWarning" not in log()


def atoms_for(raw_uri, headers=()):
    """gunicorn's atoms for one GET, as a custom --access-logformat could use them."""
    path, _, query = raw_uri.partition("?")
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": raw_uri, "PATH_INFO": path,
               "QUERY_STRING": query, "SERVER_PROTOCOL": "HTTP/1.1",
               "REMOTE_ADDR": "127.0.0.1", "HTTP_AUTHORIZATION": "Basic aHVudGVyMjp4"}
    resp = SimpleNamespace(status="200 OK", headers=[], sent=10)
    req = SimpleNamespace(headers=[("AUTHORIZATION", "Basic aHVudGVyMjp4"), *headers])
    return AccessLog(Config()).atoms(resp, req, environ, timedelta(seconds=0))


def test_every_atom_that_carries_a_moderation_query_drops_it_in_custom_formats_too():
    atoms = atoms_for("/moderation/?q=private+search&status=all")
    assert atoms["r"] == "GET /moderation/ HTTP/1.1"
    assert atoms["U"] == "/moderation/"
    assert atoms["q"] == "" and atoms["{query_string}e"] == ""
    assert atoms["{raw_uri}e"] == "/moderation/"
    assert "private" not in repr(atoms)
    assert atoms["u"] == "-"
    assert atoms["{authorization}i"] == "-" and atoms["{http_authorization}e"] == "-"


def test_outside_moderation_the_query_stays_and_the_user_still_does_not():
    atoms = atoms_for("/embed?product_id=7&locale=fr")
    assert atoms["r"] == "GET /embed?product_id=7&locale=fr HTTP/1.1"
    assert atoms["q"] == "product_id=7&locale=fr"
    assert atoms["u"] == "-"
