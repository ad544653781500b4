"""POST /client/reviews: drop-in compatible with create_client_review, strict, never a 500."""

from __future__ import annotations

import io
import json

import pytest
from flask import jsonify
from PIL import Image

from tests.reviews import data_uri, image_bytes, review_body

JSONAPI = "application/vnd.api+json"


def post(client, body=None, *, raw=None, content_type=JSONAPI, query="", headers=None):
    data = raw if raw is not None else json.dumps(body or review_body())
    return client.post("/client/reviews" + query, data=data, content_type=content_type,
                       headers=headers or {})


def only_error(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == JSONAPI
    errors = response.get_json()["errors"]
    assert len(errors) == 1
    error = errors[0]
    assert error["status"] == str(status)
    assert error["id"] and error["code"] and error["title"] and error["detail"]
    return error


def noise_jpeg(size=(900, 900)) -> bytes:
    out = io.BytesIO()
    Image.effect_noise(size, 100).convert("RGB").save(out, "JPEG", quality=95)
    return out.getvalue()


def stored(app):
    return app.extensions["outbox"].counts()["queued"]


def test_valid_review_is_accepted_with_a_submission_id(app, client):
    response = post(client)
    assert response.status_code == 202
    assert response.content_type == JSONAPI
    body = response.get_json()
    assert body["data"]["type"] == "review-submission"
    assert body["data"]["attributes"] == {"status": "queued"}
    row = app.extensions["outbox"].get(body["data"]["id"])
    assert row.state == "queued"
    assert json.loads(row.body) == review_body()
    assert "Retry-After" not in response.headers


def test_the_202_has_the_bytes_flasks_jsonify_writes(app, client):
    # Compact, keys sorted, one newline at the end: what clients got when jsonify wrote it.
    response = post(client)
    document = response.get_json()
    with app.app_context():
        assert response.get_data() == jsonify(document).get_data()
    assert response.headers["Content-Length"] == str(len(response.get_data()))


def test_plain_json_media_type_is_accepted(client):
    assert post(client, content_type="application/json; charset=utf-8").status_code == 202


def test_company_id_may_be_given_when_it_is_ours(client):
    assert post(client, query="?company_id=PUBKEY").status_code == 202


def test_company_id_of_another_account_is_refused(app, client):
    error = only_error(post(client, query="?company_id=SOMEONE_ELSE"), 400)
    assert error["source"] == {"parameter": "company_id"}
    assert stored(app) == 0


def test_malformed_json_is_a_400(app, client):
    error = only_error(post(client, raw='{"data": '), 400)
    assert error["code"] == "parse_error"
    assert stored(app) == 0


@pytest.mark.parametrize("raw", [b"\xff\xfe{}", b'{"a": NaN}', b"[" * 100_000 + b"]" * 100_000])
def test_invalid_utf8_nan_and_deep_nesting_are_400s(client, raw):
    only_error(post(client, raw=raw), 400)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data", ""])
def test_other_media_types_are_a_415(client, content_type):
    error = only_error(post(client, content_type=content_type), 415)
    assert error["code"] == "unsupported_media_type"


def test_body_without_length_is_a_411(client):
    response = client.post("/client/reviews", input_stream=None, content_type=JSONAPI,
                           environ_overrides={"wsgi.input_terminated": True})
    assert only_error(response, 411)["code"] == "length_required"


def test_too_large_body_is_a_413_before_it_is_read(make_app):
    client = make_app(MAX_CONTENT_LENGTH=1000).test_client()
    error = only_error(post(client, review_body(content="x" * 5000)), 413)
    assert "limit is 1,000" in error["detail"]


def test_invalid_fields_are_a_422_with_a_pointer_for_each(app, client):
    response = post(client, review_body(rating=7, email="nope", colour="red"))
    assert response.status_code == 422
    errors = {e["source"]["pointer"]: e for e in response.get_json()["errors"]}
    assert set(errors) == {"/data/attributes/rating", "/data/attributes/email",
                           "/data/attributes/colour"}
    assert all(e["status"] == "422" and e["code"] == "invalid" for e in errors.values())
    assert stored(app) == 0


def test_hostile_photo_is_a_422_naming_the_photo(client):
    svg = data_uri(b"<svg><script>alert(1)</script></svg>", "image/jpeg")
    error = only_error(post(client, review_body(images=[svg])), 422)
    assert error["source"]["pointer"] == "/data/attributes/images/0"
    assert "SVG" in error["detail"]


def test_photos_too_large_to_fit_are_a_413_naming_them(make_app):
    client = make_app(KLAVIYO_MAX_BODY_BYTES=20_000).test_client()
    photo = data_uri(noise_jpeg())
    response = post(client, review_body(images=["https://x.example/a.jpg", photo, photo]))
    assert response.status_code == 413
    pointers = [e["source"]["pointer"] for e in response.get_json()["errors"]]
    assert pointers == ["/data/attributes/images/1", "/data/attributes/images/2"]


def test_photos_are_stored_reencoded_within_klaviyos_cap(app, client):
    photo = data_uri(image_bytes(size=(3000, 2000)))
    response = post(client, review_body(images=[photo] * 5))
    assert response.status_code == 202
    row = app.extensions["outbox"].get(response.get_json()["data"]["id"])
    assert len(row.body.encode()) < 4_500_000
    sent = json.loads(row.body)["data"]["attributes"]["images"]
    assert len(sent) == 5 and all(s.startswith("data:image/jpeg;base64,") for s in sent)


def test_idempotency_key_replay_answers_the_first_202_and_stores_nothing(app, client):
    first = post(client, headers={"Idempotency-Key": "abc-123"})
    again = post(client, headers={"Idempotency-Key": "abc-123"})
    assert first.status_code == again.status_code == 202
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert stored(app) == 1


def test_idempotency_key_reused_for_another_review_is_refused(app, client):
    post(client, headers={"Idempotency-Key": "abc-123"})
    other = post(client, review_body(content="Something else"),
                 headers={"Idempotency-Key": "abc-123"})
    assert only_error(other, 422)["code"] == "idempotency_key_reused"
    assert stored(app) == 1


@pytest.mark.parametrize("key", ["", " ", "x" * 256, "tab\there"])
def test_malformed_idempotency_key_is_a_400(client, key):
    error = only_error(post(client, headers={"Idempotency-Key": key}), 400)
    assert error["source"] == {"parameter": "Idempotency-Key"}


def test_submissions_are_rate_limited_per_client_with_retry_after(make_app):
    client = make_app(RATELIMIT_ENABLED=True, WIDGET_SUBMIT_LIMIT="2/minute").test_client()
    assert [post(client).status_code for _ in range(2)] == [202, 202]
    response = post(client)
    error = only_error(response, 429)
    assert error["code"] == "throttled"
    assert 0 < int(response.headers["Retry-After"]) <= 60


def test_unknown_api_path_and_wrong_method_answer_json(client):
    assert only_error(client.get("/client/nothing"), 404)["code"] == "not_found"
    response = client.get("/client/reviews")
    assert only_error(response, 405)["code"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


def test_an_unexpected_failure_is_a_json_500_without_internals(make_app, monkeypatch):
    app = make_app()

    def broken(*args, **kwargs):
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(app.extensions["outbox"], "put", broken)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    error = only_error(post(app.test_client()), 500)
    assert "hunter2" not in json.dumps(error)
