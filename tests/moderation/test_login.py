"""Failed moderation logins are limited per address and overall; a lock tells a guesser nothing."""

from __future__ import annotations

import logging
import re

import pytest
from limits import parse_many

from tests import hostile_corpus as hostile
from tests.processes import free_port
from widget.config import ConfigError

PASSWORD = "correct horse battery staple"
GUESSER = "203.0.113.7"
MODERATOR_ADDRESS = "198.51.100.20"


basic = hostile.basic
RIGHT = basic("moderator", PASSWORD)
WRONG = basic("mallory-typed-user", "guess-password-123")


@pytest.fixture
def throttled(make_app):
    """An app with moderation open and the web limits on, as in production."""
    def build(**overrides):
        return make_app(MODERATION_PASSWORD=PASSWORD, RATELIMIT_ENABLED=True, **overrides)
    return build


def visit(client, headers=None, address=GUESSER):
    return client.get("/moderation/outbox", headers=headers or {},
                      environ_base={"REMOTE_ADDR": address})


def lockout_lines(caplog):
    return [r.getMessage() for r in caplog.records if "logins locked" in r.getMessage()]


def test_wrong_passwords_from_one_address_get_429_with_retry_after_once_over_the_limit(
        throttled, caplog):
    caplog.set_level(logging.INFO)
    app = throttled()
    client = app.test_client()
    allowed = min(item.amount for item in parse_many(app.config["MODERATION_LOGIN_LIMIT"]))
    statuses = [visit(client, guess).status_code for guess in hostile.wrong_passwords(200)]
    assert statuses == [401] * allowed + [429] * (200 - allowed)

    locked = visit(client, WRONG)
    assert locked.status_code == 429
    assert 0 < int(locked.headers["Retry-After"]) <= 60
    assert "Too many failed logins" in locked.get_data(as_text=True)
    assert "WWW-Authenticate" not in locked.headers


def test_a_locked_address_gets_the_same_429_with_the_right_password(throttled):
    client = throttled(MODERATION_LOGIN_LIMIT="3/minute").test_client()
    for _ in range(3):
        assert visit(client, WRONG).status_code == 401
    wrong, right, none = visit(client, WRONG), visit(client, RIGHT), visit(client)
    assert [wrong.status_code, right.status_code, none.status_code] == [429, 429, 429]
    pages = {re.sub(r"\d+", "N", r.get_data(as_text=True)) for r in (wrong, right, none)}
    assert len(pages) == 1  # nothing in the answer depends on what was sent


def test_the_right_password_still_works_from_another_address_while_one_is_locked(throttled):
    client = throttled(MODERATION_LOGIN_LIMIT="3/minute").test_client()
    for _ in range(20):
        visit(client, WRONG)
    assert visit(client, RIGHT).status_code == 429
    assert visit(client, RIGHT, address=MODERATOR_ADDRESS).status_code == 200


def test_the_lock_page_keeps_the_moderation_pages_headers(throttled):
    client = throttled(MODERATION_LOGIN_LIMIT="1/minute").test_client()
    visit(client, WRONG)
    response = visit(client, WRONG)
    assert response.status_code == 429
    assert response.mimetype == "text/html"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert "<script" not in response.get_data(as_text=True).lower()
    assert 'role="alert"' in response.get_data(as_text=True)


def test_a_lockout_logs_one_line_without_the_user_name_or_password(throttled, caplog):
    caplog.set_level(logging.INFO)
    client = throttled(MODERATION_LOGIN_LIMIT="5/minute").test_client()
    for _ in range(200):
        visit(client, WRONG)
    lines = lockout_lines(caplog)
    assert len(lines) == 1
    assert GUESSER in lines[0] and "5 per 1 minute" in lines[0]
    assert "mallory-typed-user" not in caplog.text
    assert "guess-password-123" not in caplog.text
    assert "Traceback" not in caplog.text


def test_the_overall_limit_locks_everyone_whatever_their_address(throttled, caplog):
    caplog.set_level(logging.INFO)
    client = throttled(MODERATION_LOGIN_LIMIT="100/minute",
                       MODERATION_LOGIN_GLOBAL_LIMIT="5/minute").test_client()
    for n in range(5):  # a guesser spreading its guesses over many addresses
        assert visit(client, WRONG, address=f"192.0.2.{n}").status_code == 401
    assert visit(client, RIGHT, address=MODERATOR_ADDRESS).status_code == 429
    assert visit(client, address="192.0.2.200").status_code == 429
    for n in range(50):
        visit(client, WRONG, address=f"192.0.2.{n}")
    lines = lockout_lines(caplog)
    assert len(lines) == 1 and "everyone" in lines[0]


def test_credential_less_visits_do_not_count_as_failed_logins(throttled):
    client = throttled(MODERATION_LOGIN_LIMIT="2/minute").test_client()
    for _ in range(50):  # a browser's first visit, which makes it show the login prompt
        response = visit(client)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert visit(client, RIGHT).status_code == 200
    assert [visit(client, WRONG).status_code for _ in range(3)] == [401, 401, 429]


def test_successful_logins_do_not_count(throttled):
    client = throttled(MODERATION_LOGIN_LIMIT="2/minute").test_client()
    assert [visit(client, RIGHT).status_code for _ in range(20)] == [200] * 20


def test_ratelimit_enabled_false_turns_login_limits_off(make_app):
    client = make_app(MODERATION_PASSWORD=PASSWORD, RATELIMIT_ENABLED=False,
                      MODERATION_LOGIN_LIMIT="2/minute",
                      MODERATION_LOGIN_GLOBAL_LIMIT="2/minute").test_client()
    assert {visit(client, WRONG).status_code for _ in range(50)} == {401}
    assert visit(client, RIGHT).status_code == 200


def test_with_the_limits_storage_down_failures_are_counted_in_the_process(throttled, caplog):
    caplog.set_level(logging.INFO)
    client = throttled(RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{free_port()}/0",
                       MODERATION_LOGIN_LIMIT="2/minute").test_client()
    assert [visit(client, WRONG).status_code for _ in range(4)] == [401, 401, 429, 429]
    assert visit(client, RIGHT, address=MODERATOR_ADDRESS).status_code == 200
    unreachable = [r for r in caplog.records if "storage unreachable" in r.getMessage()]
    assert len(unreachable) == 1
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("setting", ["MODERATION_LOGIN_LIMIT", "MODERATION_LOGIN_GLOBAL_LIMIT"])
def test_a_login_limit_that_cannot_be_read_stops_the_boot_and_names_the_setting(
        make_app, setting):
    with pytest.raises(ConfigError, match=setting):
        make_app(**{setting: "lots"})
