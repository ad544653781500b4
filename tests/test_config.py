"""Settings come from the environment, with clear errors for values that cannot work."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from widget.config import ConfigError, from_environ


def test_defaults_are_the_embedded_mode():
    config = from_environ({})
    assert config["KLAVIYO_BASE_URL"] == "https://a.klaviyo.com"
    assert config["KLAVIYO_REVISION"] == "2026-07-15"
    assert config["DATABASE_URL"] is None
    assert config["RATELIMIT_STORAGE_URI"] == "memory://"
    assert config["RATELIMIT_ENABLED"] is True
    assert config["WIDGET_SENDER"] == "thread"
    assert config["WIDGET_OPEN_API"] is False
    assert config["WIDGET_FRAME_ANCESTORS"] == "'self'"
    assert config["MODERATION_USERNAME"] == "moderator"
    assert config["MODERATION_PASSWORD"] is None
    assert config["KLAVIYO_PUBLIC_KEY"] is None
    assert config["SECRET_KEY_IS_RANDOM"] is True


def test_a_random_secret_key_differs_per_boot():
    assert from_environ({})["SECRET_KEY"] != from_environ({})["SECRET_KEY"]


def test_environment_values_are_read_and_typed():
    config = from_environ({
        "KLAVIYO_PUBLIC_KEY": "ABC123", "KLAVIYO_BASE_URL": "http://127.0.0.1:9/",
        "RATELIMIT_ENABLED": "false", "WIDGET_SENDER": "OFF", "WIDGET_MAX_PHOTOS": "3",
        "KLAVIYO_READ_TIMEOUT": "2.5", "SECRET_KEY": "s",
    })
    assert config["KLAVIYO_PUBLIC_KEY"] == "ABC123"
    assert config["KLAVIYO_BASE_URL"] == "http://127.0.0.1:9"
    assert config["RATELIMIT_ENABLED"] is False
    assert config["WIDGET_SENDER"] == "off"
    assert config["WIDGET_MAX_PHOTOS"] == 3
    assert config["KLAVIYO_READ_TIMEOUT"] == 2.5
    assert config["SECRET_KEY_IS_RANDOM"] is False


@pytest.mark.parametrize("env, message", [
    ({"RATELIMIT_ENABLED": "maybe"}, "RATELIMIT_ENABLED must be true or false"),
    ({"WIDGET_SENDER": "process"}, "WIDGET_SENDER must be one of off, thread"),
    ({"WIDGET_MAX_PHOTOS": "five"}, "WIDGET_MAX_PHOTOS must be a whole number"),
])
def test_values_that_cannot_work_are_named_in_the_error(env, message):
    with pytest.raises(ConfigError, match=message):
        from_environ(env)


def test_test_config_overrides_the_environment(make_app):
    app = make_app(WIDGET_MAX_PHOTOS=2)
    assert app.config["WIDGET_MAX_PHOTOS"] == 2


def test_every_environment_variable_is_documented_in_the_readme():
    root = Path(__file__).resolve().parent.parent
    source = (root / "widget" / "config.py").read_text()
    names = set(re.findall(r'(?:get\(|env, )"([A-Z][A-Z0-9_]+)"', source))
    assert {"KLAVIYO_PUBLIC_KEY", "DATABASE_URL", "WIDGET_OPEN_API"} <= names
    readme = (root / "README.md").read_text()
    assert sorted(name for name in names if f"`{name}`" not in readme) == []


@pytest.mark.parametrize("env, hops", [
    ({}, 0),
    ({"DYNO": "web.1"}, 1),  # Heroku, and Dokku, which sets it too
    ({"CONTAINER": "web-1", "CONTAINER_VERSION": "0f3c2a1"}, 1),  # Scalingo
    ({"CONTAINER": "web-1"}, 0),  # half of Scalingo's pair is not Scalingo
    ({"RENDER": "true"}, 0),  # two hops there (Cloudflare, then Render's proxy): set it
    ({"DYNO": "web.1", "WIDGET_TRUSTED_PROXIES": "0"}, 0),
    ({"WIDGET_TRUSTED_PROXIES": "2"}, 2),
], ids=["direct", "heroku-or-dokku", "scalingo", "container-alone", "render", "explicit-0",
        "explicit-2"])
def test_trusted_proxies_default_to_one_only_behind_a_known_platform_router(env, hops):
    assert from_environ(env)["WIDGET_TRUSTED_PROXIES"] == hops


def test_login_limits_default_per_address_and_overall():
    config = from_environ({})
    assert config["MODERATION_LOGIN_LIMIT"] == "10/minute;50/hour"
    assert config["MODERATION_LOGIN_GLOBAL_LIMIT"] == "100/minute;1000/hour"
    env = {"MODERATION_LOGIN_LIMIT": "3/minute", "MODERATION_LOGIN_GLOBAL_LIMIT": "30/hour"}
    assert from_environ(env)["MODERATION_LOGIN_LIMIT"] == "3/minute"
    assert from_environ(env)["MODERATION_LOGIN_GLOBAL_LIMIT"] == "30/hour"


def test_operations_settings_default_off_and_are_checked():
    config = from_environ({})
    assert (config["METRICS_TOKEN"], config["WIDGET_WEBHOOK_URL"]) == (None, None)
    assert config["WIDGET_WEBHOOK_FORMAT"] == "json" and config["LOG_FORMAT"] == "text"
    assert config["WIDGET_STUCK_MINUTES"] == 30
    config = from_environ({"WIDGET_WEBHOOK_URL": " https://hooks.example.com/x ",
                           "WIDGET_WEBHOOK_FORMAT": "Slack", "LOG_FORMAT": "JSON",
                           "WIDGET_STUCK_MINUTES": "5"})
    assert config["WIDGET_WEBHOOK_URL"] == "https://hooks.example.com/x"
    assert (config["WIDGET_WEBHOOK_FORMAT"], config["LOG_FORMAT"]) == ("slack", "json")
    assert config["WIDGET_STUCK_MINUTES"] == 5


@pytest.mark.parametrize("env, message", [
    ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be one of json, text"),
    ({"WIDGET_WEBHOOK_FORMAT": "discord"}, "WIDGET_WEBHOOK_FORMAT must be one of json, slack"),
    ({"WIDGET_WEBHOOK_URL": "hooks.example.com"}, "WIDGET_WEBHOOK_URL must be an https://"),
])
def test_operations_settings_that_cannot_work_are_named(env, message):
    with pytest.raises(ConfigError, match=message):
        from_environ(env)
