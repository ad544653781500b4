"""The Procfile's roles as a platform runs them: metrics from two web processes and the
worker role add up; with LOG_FORMAT=json every line either writes is a JSON object."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import requests

from tests.ops import sample, scrape
from tests.processes import gunicorn, send_worker
from tests.reviews import review_body
from tests.services import redis_prefix

TOKEN = "metrics-token"


@pytest.fixture
def roles_env(tmp_path, fake_klaviyo):
    """What web and worker share: the database, Redis, Klaviyo, the secret."""
    with redis_prefix() as (storage, prefix):
        yield {"DATABASE_URL": f"sqlite:///{tmp_path / 'outbox.db'}",
               "RATELIMIT_STORAGE_URI": storage, "RATELIMIT_KEY_PREFIX": prefix,
               "KLAVIYO_PUBLIC_KEY": "PUBKEY", "KLAVIYO_BASE_URL": fake_klaviyo.url,
               "SECRET_KEY": "s", "WIDGET_SENDER": "off", "WIDGET_OPEN_API": "true",
               "RATELIMIT_ENABLED": "false", "REVIEWS_SYNC_SECONDS": "0",
               "SENDER_POLL_SECONDS": "0.05", "METRICS_TOKEN": TOKEN}


def get(url):
    def fetch(path, headers):
        # A connection of its own each time, so either web process may answer.
        return requests.get(url + path, headers={**headers, "Connection": "close"}, timeout=5)
    return fetch


def wait_until(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.1)
    return predicate()


def post_reviews(url, count, prefix="Review"):
    for i in range(count):
        response = requests.post(url + "/client/reviews", json=review_body(
            content=f"{prefix} {i}", email=f"shopper{i}@example.com"),
            headers={"Connection": "close"}, timeout=5)
        assert response.status_code == 202


@pytest.mark.slow
def test_two_web_processes_and_the_worker_role_report_one_set_of_figures(roles_env, tmp_path):
    folder = tmp_path / "metrics"
    web = gunicorn({**roles_env, "PROMETHEUS_MULTIPROC_DIR": str(folder)}, workers=2,
                   log_path=tmp_path / "web.log")
    # The worker role runs in a container of its own: no shared folder there.
    worker = send_worker(roles_env, log_path=tmp_path / "worker.log")
    try:
        web.wait_ready()
        post_reviews(web.url, 12)
        assert requests.post(web.url + "/client/reviews", json=review_body(rating=0),
                             timeout=5).status_code == 422

        def delivered():
            return sample(scrape(get(web.url)), "widget_deliveries",
                          "widget_deliveries_total", outcome="delivered") == 12

        assert wait_until(delivered)
        pids = {re.search(r"_(\d+)\.db$", path.name).group(1) for path in folder.glob("*.db")}
        assert len(pids) == 2, pids  # both web processes answered some of it
        for _ in range(6):  # whichever process answers, it counts for both
            families = scrape(get(web.url))
            assert sample(families, "widget_submissions", "widget_submissions_total",
                          status="202") == 12
            assert sample(families, "widget_submissions", "widget_submissions_total",
                          status="422") == 1
            assert sample(families, "widget_request_seconds", "widget_request_seconds_count",
                          route="/client/reviews") == 13
            assert sample(families, "widget_outbox_rows", state="delivered") == 12
            assert sample(families, "widget_klaviyo_budget_remaining") > 0  # Redis's view
    finally:
        worker.stop()
        web.stop()
    assert not list(folder.glob("gauge_live*"))


def json_lines(path: Path) -> list[dict]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line in {path.name}: {line!r}")
    assert all(isinstance(entry, dict) for entry in parsed)
    return parsed


@pytest.mark.slow
def test_every_line_of_both_roles_is_json_with_log_format_json(roles_env, tmp_path):
    env = {**roles_env, "LOG_FORMAT": "json", "MODERATION_PASSWORD": "pw"}
    web = gunicorn(env, log_path=tmp_path / "web.log")
    worker = send_worker(env, log_path=tmp_path / "worker.log")
    try:
        web.wait_ready()
        post_reviews(web.url, 2)
        requests.post(web.url + "/client/reviews", json=review_body(rating=0), timeout=5)
        requests.get(web.url + "/moderation/?q=private+search", auth=("u", "x"), timeout=5)
        requests.get(web.url + "/no/such/page", timeout=5)
        assert wait_until(lambda: "outcome=delivered" in (tmp_path / "worker.log").read_text()
                          and (tmp_path / "worker.log").read_text().count("outcome=delivered")
                          == 2)
    finally:
        worker.stop()
        web.stop()
    web_lines, worker_lines = json_lines(tmp_path / "web.log"), json_lines(tmp_path / "worker.log")
    for entry in web_lines + worker_lines:
        assert {"time", "level", "logger", "message"} <= set(entry)
    loggers = {entry["logger"] for entry in web_lines}
    assert {"gunicorn.error", "gunicorn.access", "widget.errors"} <= loggers, loggers
    access = [entry for entry in web_lines if entry["logger"] == "gunicorn.access"]
    assert {"POST", "GET"} <= {entry["method"] for entry in access}
    moderation = [entry for entry in access if entry["path"] == "/moderation/"]
    assert moderation and moderation[0]["status"] == "401"
    assert "private" not in (tmp_path / "web.log").read_text()
    assert any(entry["logger"] == "widget.delivery.sender" for entry in worker_lines)
    text = (tmp_path / "web.log").read_text() + (tmp_path / "worker.log").read_text()
    assert "shopper0@example.com" not in text
