"""The one submission pipeline: repeats, the merchant's questions, the email limit, form
tokens and the shared per-IP bucket, logging, and an outbox that cannot be written."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy.exc import OperationalError

from tests.reviews import data_uri, form_token, image_bytes, review_body

JSONAPI = "application/vnd.api+json"
QUESTIONS = [
    {"id": "fit", "label": "How does it fit?", "choices": ["Small", "True to size", "Large"],
     "required": True},
    {"id": "uses", "label": "What for?", "choices": ["Work", "Sport", "Home"],
     "multiple": True},
    {"id": "note", "label": "Anything else?"},
]


def post(client, body=None, headers=None, **kwargs):
    return client.post("/client/reviews", data=json.dumps(body or review_body()),
                       content_type=JSONAPI, headers=headers or {}, **kwargs)


def only_error(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    [error] = response.get_json()["errors"]
    return error


def stored(app):
    return app.extensions["outbox"].counts()["queued"]


# -- a repeat is only a repeat ------------------------------------------------------------
def test_the_same_text_again_with_another_rating_title_and_photo_is_a_409_naming_the_first(
        app, client):
    first = post(client, review_body(rating=3, title=...))
    assert first.status_code == 202
    again = post(client, review_body(rating=5, title="Now I love it",
                                     images=["https://cdn.example.com/shirt.jpg"]))
    error = only_error(again, 409)
    assert error["code"] == "review_already_sent"
    assert error["source"] == {"pointer": "/data/attributes/content"}
    assert first.get_json()["data"]["id"] in error["detail"]
    assert "Idempotent-Replayed" not in again.headers
    assert stored(app) == 1


def test_an_exact_resend_gets_the_first_answer_and_no_replayed_header(app, client):
    photo = data_uri(image_bytes(size=(320, 240)))
    first = post(client, review_body(images=[photo]))
    again = post(client, review_body(images=[photo]))
    assert again.status_code == 202
    assert again.get_json() == first.get_json()
    assert "Idempotent-Replayed" not in again.headers
    assert stored(app) == 1


@pytest.mark.parametrize("change", [
    {"images": [data_uri(image_bytes(size=(320, 240), color=(0, 0, 255)))]},
    {"custom_questions": [{"id": "fit", "answers": ["Large"]}]},
    {"incentive_type": "free_product"},
    {"author": "Ann B."},
], ids=["another photo", "other answers", "an incentive", "another name"])
def test_any_other_detail_of_the_same_text_is_a_conflict(app, client, change):
    base = {"images": [data_uri(image_bytes(size=(320, 240)))],
            "custom_questions": [{"id": "fit", "answers": ["Small"]}]}
    assert post(client, review_body(**base)).status_code == 202
    assert only_error(post(client, review_body(**{**base, **change})), 409)["code"] == \
        "review_already_sent"
    assert stored(app) == 1


def test_another_order_of_the_same_text_is_a_conflict(app, client):
    body = review_body()
    body["data"]["relationships"] = {"order": {"data": {"type": "order", "id": "1001"}}}
    assert post(client, body).status_code == 202
    body["data"]["relationships"]["order"]["data"]["id"] = "1002"
    assert post(client, body).status_code == 409


def test_an_idempotency_key_replay_is_the_only_answer_marked_replayed(client):
    first = post(client, headers={"Idempotency-Key": "k1"})
    replay = post(client, headers={"Idempotency-Key": "k1"})
    assert replay.get_json() == first.get_json()
    assert replay.headers["Idempotent-Replayed"] == "true"


def test_a_repeat_is_answered_before_its_photos_are_decoded_again(app, client, monkeypatch):
    photo = data_uri(image_bytes(size=(320, 240)))
    assert post(client, review_body(images=[photo])).status_code == 202
    photos = app.extensions["photos"]
    monkeypatch.setattr(photos, "prepare", lambda *a: pytest.fail("decoded a repeat again"))
    assert post(client, review_body(images=[photo])).status_code == 202


# -- the merchant's questions hold on the server -----------------------------------------
@pytest.fixture
def asking(make_app):
    return make_app(WIDGET_CUSTOM_QUESTIONS=json.dumps(QUESTIONS))


@pytest.mark.parametrize("answers, pointer, words", [
    (None, "/data/attributes/custom_questions", 'Question "fit" needs an answer.'),
    ([{"id": "uses", "answers": ["Work"]}], "/data/attributes/custom_questions",
     'Question "fit" needs an answer.'),
    ([{"id": "fit", "answers": ["Huge"]}], "/data/attributes/custom_questions/0/answers/0",
     "Must be one of: Small, True to size, Large."),
    ([{"id": "fit", "answers": ["Small", "Large"]}],
     "/data/attributes/custom_questions/0/answers", "Takes one answer only."),
    ([{"id": "fit", "answers": ["Small"]}, {"id": "colour", "answers": ["red"]}],
     "/data/attributes/custom_questions/1/id", "Not a question of this form."),
    ([{"id": "fit", "answers": ["Small"]}, {"id": "fit", "answers": ["Small"]}],
     "/data/attributes/custom_questions/1/id", "This question is answered twice."),
], ids=["required missing", "only others answered", "not a choice", "two answers",
        "unknown id", "answered twice"])
def test_answers_that_do_not_fit_the_merchants_questions_are_refused(
        asking, answers, pointer, words):
    response = post(asking.test_client(), review_body(custom_questions=answers))
    error = only_error(response, 422)
    assert (error["source"]["pointer"], error["detail"]) == (pointer, words)
    assert stored(asking) == 0


def test_answers_that_fit_are_taken_as_sent(asking):
    answers = [{"id": "fit", "answers": ["True to size"]},
               {"id": "uses", "answers": ["Work", "Home"]},
               {"id": "note", "answers": ["Washes well."]}]
    response = post(asking.test_client(), review_body(custom_questions=answers))
    assert response.status_code == 202
    row = asking.extensions["outbox"].get(response.get_json()["data"]["id"])
    assert json.loads(row.body)["data"]["attributes"]["custom_questions"] == answers


def test_a_question_needs_no_answer_to_a_required_question_of_reviews(asking):
    question = review_body(review_type="question", rating=..., title=...)
    assert post(asking.test_client(), question).status_code == 202


def test_without_configured_questions_any_answers_go_to_klaviyo(client):
    body = review_body(custom_questions=[{"id": "klaviyo-q", "answers": ["A", "B"]}])
    assert post(client, body).status_code == 202


# -- only stored reviews count against the email limit ------------------------------------
def test_resends_of_one_review_count_once_against_the_email_limit(make_app):
    app = make_app(RATELIMIT_ENABLED=True, WIDGET_EMAIL_LIMIT="3/hour",
                   WIDGET_SUBMIT_LIMIT="100/minute")
    client = app.test_client()
    assert {post(client).status_code for _ in range(4)} == {202}
    assert post(client, review_body(content="A second review.")).status_code == 202
    assert post(client, review_body(content="A third review.")).status_code == 202
    fourth = post(client, review_body(content="A fourth review."))
    assert only_error(fourth, 429)["source"]["pointer"] == "/data/attributes/email"
    assert stored(app) == 3


def test_refused_reviews_do_not_count_against_the_email_limit(make_app):
    client = make_app(RATELIMIT_ENABLED=True, WIDGET_EMAIL_LIMIT="1/hour",
                      WIDGET_SUBMIT_LIMIT="100/minute").test_client()
    for rating in (0, 9, "five"):
        assert post(client, review_body(rating=rating)).status_code == 422
    assert post(client).status_code == 202


# -- form tokens: bound to their product, good for a few posts ----------------------------
@pytest.fixture
def closed(make_app):
    return make_app(WIDGET_OPEN_API=False, RATELIMIT_ENABLED=True,
                    WIDGET_SUBMIT_LIMIT="100/minute", WIDGET_EMAIL_LIMIT="100/hour",
                    WIDGET_TOKEN_MAX_POSTS=3)


def test_a_form_token_is_good_only_for_the_product_it_was_issued_for(closed):
    client = closed.test_client()
    token = {"X-Review-Token": form_token("shopify:someone-elses-product")}
    error = only_error(post(client, headers=token), 403)
    assert (error["code"], error["source"]["pointer"]) == ("token_wrong_product",
                                                           "/data/attributes/product")
    store_token = {"X-Review-Token": form_token("")}
    assert only_error(post(client, headers=store_token), 403)["code"] == "token_wrong_product"
    store_review = review_body(review_type="store", product=...)
    assert post(client, store_review, headers=store_token).status_code == 202


def test_a_form_token_is_good_for_a_bounded_number_of_posts(closed):
    client = closed.test_client()
    token = {"X-Review-Token": form_token()}
    statuses = [post(client, review_body(content=f"Review {i}"), headers=token).status_code
                for i in range(3)]
    assert statuses == [202, 202, 202]
    error = only_error(post(client, review_body(content="Review 4"), headers=token), 403)
    assert error["code"] == "token_used_up"
    assert post(client, review_body(content="Review 4"),
                headers={"X-Review-Token": form_token()}).status_code == 202


def test_a_renewed_token_keeps_its_form_and_when_it_was_shown(closed):
    closed.config["WIDGET_TOKEN_MIN_SECONDS"] = 5
    client = closed.test_client()
    query = "/embed/token?product_id=7549950034135&integration=shopify"
    old = form_token(seconds_ago=3 * 86400)  # expired, but ours, and shown days ago
    assert only_error(post(client, headers={"X-Review-Token": old}), 403)["code"] == \
        "token_expired"
    renewed = client.get(query, headers={"X-Review-Token": old})
    assert renewed.status_code == 200 and renewed.headers["Cache-Control"] == "no-store"
    assert renewed.get_json()["max_age"] == 86400
    token = {"X-Review-Token": renewed.get_json()["token"]}
    assert post(client, headers=token).status_code == 202  # at once: the form is days old
    fresh = client.get(query).get_json()["token"]  # no old token: shown just now
    assert only_error(post(client, review_body(content="Other"),
                           headers={"X-Review-Token": fresh}), 403)["code"] == "too_fast"


def test_the_api_and_the_form_share_one_per_ip_bucket(make_app):
    client = make_app(RATELIMIT_ENABLED=True, WIDGET_SUBMIT_LIMIT="2/minute",
                      WIDGET_EMAIL_LIMIT="100/hour", WIDGET_TOKEN_MIN_SECONDS=0).test_client()
    assert post(client).status_code == 202
    page = client.get("/embed?product_id=42")
    token = page.get_data(as_text=True).split('name="form_token" value="')[1].split('"')[0]
    form = {"review_type": "review", "rating": "4", "content": "Nice.", "author": "Bo",
            "email": "bo@example.com", "product_id": "42", "integration": "shopify",
            "form_token": token, "idempotency_key": "a" * 32}
    assert client.post("/embed", data=form).status_code == 200
    assert post(client, review_body(content="Third")).status_code == 429
    assert client.post("/embed", data={**form, "content": "Fourth"}).status_code == 429


# -- refusals log one line; the store's failures are retryable -----------------------------
def test_a_refused_review_logs_one_line_and_no_traceback(client, caplog):
    caplog.set_level(logging.INFO)
    svg = data_uri(b"<svg onload=alert(1)>", "image/jpeg")
    assert post(client, review_body(images=[svg], rating=9)).status_code == 422
    refusals = [r for r in caplog.records if r.getMessage().startswith("refused ")]
    assert len(refusals) == 1
    assert refusals[0].getMessage() == ("refused POST /client/reviews status=422 code=invalid "
                                        "field=/data/attributes/rating")
    assert not any(r.exc_info for r in caplog.records)
    assert "ann@example.com" not in caplog.text


def broken_database(*args, **kwargs):
    raise OperationalError("INSERT INTO submissions", {}, Exception("database or disk is full"))


def test_an_outbox_that_cannot_be_written_is_a_503_with_retry_after(app, client, monkeypatch,
                                                                    caplog):
    monkeypatch.setattr(app.extensions["outbox"], "put", broken_database)
    response = post(client)
    error = only_error(response, 503)
    assert error["code"] == "outbox_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    assert "outbox unavailable: OperationalError: database or disk is full" in caplog.text
    assert not any(r.exc_info for r in caplog.records)


def test_the_form_says_so_and_keeps_the_text_when_the_outbox_cannot_be_written(
        make_app, monkeypatch):
    app = make_app(WIDGET_TOKEN_MIN_SECONDS=0)
    monkeypatch.setattr(app.extensions["outbox"], "put", broken_database)
    client = app.test_client()
    form = {"review_type": "review", "rating": "4", "content": "Keep this text.",
            "author": "Bo", "email": "bo@example.com", "product_id": "42",
            "integration": "shopify", "form_token": form_token("shopify:42"),
            "idempotency_key": "b" * 32}
    page = client.post("/embed", data=form)
    html = page.get_data(as_text=True)
    assert page.status_code == 503 and int(page.headers["Retry-After"]) > 0
    assert "could not be stored safely just now" in html and "Keep this text." in html
