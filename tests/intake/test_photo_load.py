"""Hostile photos against the real service: the Procfile's gunicorn, whose gevent worker
decodes on real threads of gevent's pool. Its memory and CPU stay bounded, and every request
is answered in time: a 202, a specific 4xx, or a 503 with Retry-After."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from tests import hostile_corpus as hostile
from tests.hostile_corpus import cpu_seconds, post_together, status_kb, uri, worker_pid
from tests.processes import gunicorn

ENV = {"WIDGET_OPEN_API": "true", "RATELIMIT_ENABLED": "false", "WIDGET_SENDER": "off",
       "WIDGET_TRUSTED_PROXIES": "0", "SECRET_KEY": "x"}
ANSWER_SECONDS = 10


def start(tmp_path, **settings):
    env = {**ENV, "DATABASE_URL": f"sqlite:///{tmp_path / 'outbox.db'}", **settings}
    return gunicorn(env, log_path=tmp_path / "web.log").wait_ready()


def warm_up_and_reset_peak(web) -> tuple[int, int]:
    """The worker and its RSS (kB) after a first photo (the pool's thread, the encoder's
    pages), with its peak reset to it."""
    assert post_together(web.url, [[uri(hostile.jpeg(), "image/jpeg")]])[0][0] == 202
    worker = worker_pid(web)
    Path(f"/proc/{worker}/clear_refs").write_text("5")  # VmHWM := VmRSS
    return worker, status_kb("VmRSS", worker)


def assert_answered(answers):
    """Each in time, and each a 202, a specific 4xx, or a 503 saying when to come back."""
    for status, seconds, response in answers:
        assert seconds < ANSWER_SECONDS, (status, seconds)
        if status == 503:
            assert int(response.headers["Retry-After"]) >= 1
        elif status != 202:
            assert 400 <= status < 500, response.text[:300]
        if status != 202:
            assert all(error["detail"] for error in response.json()["errors"])


def no_tracebacks(tmp_path):
    log = (tmp_path / "web.log").read_text()
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.slow
def test_three_concurrent_first_webp_posts_into_a_fresh_process_are_all_answered(tmp_path):
    """Pillow loads its plugins at start: a pool thread importing one under gevent could
    wait on the import lock for good."""
    webp = io.BytesIO()
    Image.new("RGB", (300, 200), (9, 99, 199)).save(webp, "WEBP")
    web = start(tmp_path)
    try:
        answers = post_together(web.url, [[uri(webp.getvalue(), "image/webp")]] * 3)
    finally:
        web.stop()
    assert [status for status, _, _ in answers] == [202, 202, 202]
    assert_answered(answers)


@pytest.mark.slow
def test_four_concurrent_49_megapixel_webps_cost_the_worker_little_and_are_answered(tmp_path):
    web = start(tmp_path)
    try:
        worker, before = warm_up_and_reset_peak(web)
        answers = post_together(web.url, [[uri(hostile.white_webp(), "image/webp")]] * 4)
        growth_mb = (status_kb("VmHWM", worker) - before) / 1024
        cpu = cpu_seconds(worker)
        [(status, seconds, response)] = post_together(
            web.url, [[uri(hostile.repeated_scans(), "image/jpeg")]])
        scans_cpu = cpu_seconds(worker) - cpu
    finally:
        web.stop()
    assert_answered(answers)
    assert {status for status, _, _ in answers} == {422}
    assert all("8.85 megapixels for WebP" in r.json()["errors"][0]["detail"]
               for _, _, r in answers)
    assert growth_mb <= 400, growth_mb
    assert status == 422 and "5,010 scans" in response.json()["errors"][0]["detail"]
    assert seconds < 2 and scans_cpu < 0.5, (seconds, scans_cpu)
    no_tracebacks(tmp_path)


@pytest.mark.slow
def test_photos_beyond_the_budget_wait_then_get_503_and_memory_stays_within_it(tmp_path):
    """Six 4096x2160 WebPs at once, each estimated at about 210 MB of a 256 MB budget:
    one decodes at a time (about 150 MB), others wait half a second, then 503."""
    noise = Image.effect_noise((4096, 2160), 80)
    webp = io.BytesIO()
    Image.merge("RGB", [noise] * 3).save(webp, "WEBP", quality=80)
    photo = uri(webp.getvalue(), "image/webp")
    web = start(tmp_path, PHOTO_WAIT_SECONDS="0.5")
    try:
        worker, before = warm_up_and_reset_peak(web)
        answers = post_together(web.url, [[photo]] * 6)
        growth_mb = (status_kb("VmHWM", worker) - before) / 1024
        again = post_together(web.url, [[photo]])  # the budget came back whole
    finally:
        web.stop()
    assert_answered(answers)
    statuses = sorted(status for status, _, _ in answers)
    assert statuses[0] == 202 and statuses[-1] == 503, statuses
    # The decode budget, and the six bodies (5 MB each) as they are read and parsed.
    assert growth_mb <= 256 + 100, growth_mb
    assert again[0][0] == 202
    no_tracebacks(tmp_path)
