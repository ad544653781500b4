"""Hostile input at POST /client/reviews: every answer is a 202 or a JSON 4xx, never a 500."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reviews import review_body

JSONAPI = "application/vnd.api+json"
ROOT = Path(__file__).resolve().parents[2]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
attribute_names = st.sampled_from(["review_type", "email", "author", "content", "title",
                                   "rating", "incentive_type", "product", "custom_questions",
                                   "images", "x"])
data_uris = st.builds(
    lambda mime, data: f"data:{mime};base64," + base64.b64encode(data).decode(),
    st.sampled_from(["image/jpeg", "image/png", "image/webp", "image/gif", "image/svg+xml",
                     "text/html"]),
    st.binary(max_size=300) | st.sampled_from([b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n",
                                               b"RIFF\x00\x00\x00\x00WEBP", b"<svg/>"])
    .flatmap(lambda head: st.binary(max_size=200).map(lambda tail: head + tail)),
)


def mutated_review(draw_value, name, images):
    body = review_body(images=images)
    body["data"]["attributes"][name] = draw_value
    return body


bodies = st.one_of(
    json_values,
    st.builds(mutated_review, json_values, attribute_names, st.lists(data_uris, max_size=2)),
    st.builds(lambda images: review_body(images=images), st.lists(data_uris, max_size=3)),
)


def assert_clean_answer(response):
    assert response.status_code == 202 or 400 <= response.status_code < 500, \
        response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert body is not None, "every answer is JSON"
    if response.status_code != 202:
        assert body["errors"] and all(e["detail"] for e in body["errors"])


@pytest.fixture(scope="module")
def hostile_client(tmp_path_factory):
    from widget import create_app

    app = create_app({
        "TESTING": True, "WIDGET_SENDER": "off", "RATELIMIT_ENABLED": False,
        "WIDGET_OPEN_API": True, "WIDGET_TRUSTED_PROXIES": 0, "KLAVIYO_PUBLIC_KEY": "PUBKEY",
        "DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'outbox.db'}",
    })
    yield app.test_client()
    app.extensions["outbox"].engine.dispose()


@given(body=bodies)
@settings(max_examples=300, deadline=2000, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_arbitrary_json_gets_a_202_or_a_json_4xx(hostile_client, body):
    response = hostile_client.post("/client/reviews", data=json.dumps(body),
                                   content_type=JSONAPI)
    assert_clean_answer(response)


@given(raw=st.binary(max_size=500) | st.text(max_size=300).map(str.encode))
@settings(max_examples=200, deadline=2000, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_arbitrary_bytes_get_a_json_4xx(hostile_client, raw):
    response = hostile_client.post("/client/reviews", data=raw, content_type=JSONAPI)
    assert_clean_answer(response)


@pytest.mark.slow
def run_corpus(command, folder):
    out = subprocess.run([sys.executable, "-m", "tests.hostile_corpus", command, str(folder)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_hostile_photo_corpus_gets_specific_4xx_answers_at_little_memory(tmp_path):
    """The bodies are made by one process and answered by a fresh one, whose peak memory
    is then the answering's own (the 17 MB body included)."""
    made = run_corpus("make", tmp_path)
    result = run_corpus("answer", tmp_path)
    answers = result["answers"]
    expected = {
        "type_lie": (422, "declared as PNG but its bytes are JPEG"),
        "svg_script": (422, "image/svg+xml is not accepted"),
        "svg_as_jpeg": (422, "SVG and HTML are not accepted"),
        "polyglot": (422, "contains HTML or script"),
        "truncated": (422, "truncated or damaged"),
        "png_bomb": (422, "the limit is 16.8 megapixels for PNG"),
        "gif_bomb": (422, "image/gif is not accepted"),
        "gif_as_png": (422, "GIF images are not accepted"),
        "oversized": (413, "the limit is 16,000,000"),
        "webp_49mp": (422, "the limit is 8.85 megapixels for WebP"),
        "webp_49mp_x4": (422, "the limit is 8.85 megapixels for WebP"),
        "jpeg_5000_scans": (422, "5,010 scans"),
        "jpeg_5000_scans_x5": (422, "5,010 scans"),
        "png_truncated": (422, "truncated or damaged"),
        "png_bad_exif": (422, "EXIF metadata is damaged"),
        "webp_bad_exif": (422, "EXIF metadata is damaged"),
        "png_two_headers": (422, "headers disagree"),
    }
    for name, (status, words) in expected.items():
        got_status, detail, pointer = answers[name][:3]
        assert (got_status, pointer) == (status, "/data/attributes/images/0"), (name, answers)
        assert words in detail, (name, detail)
    assert answers["exif_gps"][0] == 202 and answers["exif_gps"][3] is False
    assert made["bomb_bytes"] < 60_000
    assert result["growth_mb"] < 50, result
