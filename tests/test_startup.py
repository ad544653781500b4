"""The service refuses to start with a configuration that would lose reviews or break limits."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.processes import ROOT
from widget import startup
from widget.config import ConfigError, from_environ


def problems(**env):
    return startup.problems(from_environ(env))


def test_the_embedded_defaults_start():
    assert problems() == []


def test_a_sqlite_outbox_on_a_heroku_dyno_is_refused_and_the_error_says_what_to_set():
    [problem] = problems(DYNO="web.1")
    assert "DATABASE_URL=postgresql://" in problem
    assert "WIDGET_ALLOW_EPHEMERAL_SQLITE=true" in problem


@pytest.mark.parametrize("env", [
    {"DATABASE_URL": "postgres://u:p@db:5432/reviews"},
    {"WIDGET_ALLOW_EPHEMERAL_SQLITE": "true"},
])
def test_a_dyno_starts_with_postgres_or_an_explicit_allowance(env):
    assert problems(DYNO="web.1", **env) == []


def test_memory_limits_with_several_web_processes_are_refused():
    [problem] = problems(WIDGET_WEB_PROCESSES="2", SECRET_KEY="s")
    assert "RATELIMIT_STORAGE_URI=redis://" in problem
    assert "WIDGET_WEB_PROCESSES=1" in problem


def test_a_random_secret_key_with_several_web_processes_is_refused():
    [problem] = problems(WIDGET_WEB_PROCESSES="3", RATELIMIT_STORAGE_URI="redis://r:6379")
    assert "Set SECRET_KEY" in problem


@pytest.mark.parametrize("share", ["0", "-0.1", "1.5"])
def test_a_read_share_outside_zero_to_one_is_refused(share):
    [problem] = problems(REVIEWS_READ_SHARE=share)
    assert f"REVIEWS_READ_SHARE={float(share):g}" in problem and "at most 1" in problem


def test_a_limits_storage_the_pace_cannot_keep_its_view_in_is_refused():
    [problem] = problems(RATELIMIT_STORAGE_URI="memcached://cache:11211")
    assert "'memcached'" in problem and "redis://" in problem


def test_scale_out_settings_start():
    assert problems(DYNO="web.1", WIDGET_WEB_PROCESSES="4", SECRET_KEY="s",
                    DATABASE_URL="postgresql://db/reviews",
                    RATELIMIT_STORAGE_URI="redis://r:6379") == []


def test_every_problem_is_listed_at_once(make_app):
    with pytest.raises(ConfigError) as error:
        make_app(DYNO="web.1", WIDGET_WEB_PROCESSES=2, DATABASE_URL=None,
                 SECRET_KEY_IS_RANDOM=True)
    message = str(error.value)
    assert message.startswith("Refusing to start:")
    assert message.count("\n- ") == 3


def run_app(env, *args):
    """Load app.py as gunicorn and `flask` do, with only these variables (and PATH)."""
    command = [sys.executable, "-m", "flask", "--app", "app", *args] if args \
        else [sys.executable, "-c", "import app"]
    return subprocess.run(command, cwd=ROOT, env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=60)


def test_the_real_process_exits_with_the_message_when_the_config_is_unsafe(tmp_path):
    result = run_app({"DYNO": "web.1", "DATABASE_URL": f"sqlite:///{tmp_path}/o.db"})
    assert result.returncode != 0
    assert "Set DATABASE_URL=postgresql://" in result.stderr


def test_a_separate_sender_with_per_process_limits_is_refused(tmp_path):
    result = run_app({"DATABASE_URL": f"sqlite:///{tmp_path}/o.db", "WIDGET_SENDER": "off",
                      "SECRET_KEY": "s"}, "send")
    assert result.returncode != 0
    assert "Set RATELIMIT_STORAGE_URI=redis://" in result.stderr
