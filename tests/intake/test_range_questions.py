"""A range question of WIDGET_CUSTOM_QUESTIONS: a scale of radio buttons, one number sent."""

from __future__ import annotations

import json
import re

import pytest

from tests.reviews import form_token, review_body
from widget import create_app
from widget.config import ConfigError

NPS = {"id": "nps", "label": {"en": "Would you recommend us?", "fr": "Nous recommanderiez-vous ?"},
       "range": [0, 10], "required": True}
JSONAPI = "application/vnd.api+json"


@pytest.fixture
def app(make_app):
    return make_app(WIDGET_CUSTOM_QUESTIONS=json.dumps([NPS]))


def answered(*answers):
    return review_body(custom_questions=[{"id": "nps", "answers": list(answers)}])


def post(client, body):
    return client.post("/client/reviews", data=json.dumps(body), content_type=JSONAPI)


def queued_bodies(app):
    with app.extensions["outbox"].engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT body FROM submissions ORDER BY created_at").all()
    return [json.loads(row[0]) for row in rows]


def test_a_range_question_is_a_labelled_scale_of_radio_buttons_lowest_first(client):
    html = client.get("/embed?product_id=42").get_data(as_text=True)
    scale = re.search(r'<fieldset class="kr-scale"(.*?)</fieldset>', html, re.S).group(0)
    assert "<legend>Would you recommend us?</legend>" in scale
    assert 'aria-describedby="kr-q0-hint kr-err-q0"' in scale
    assert '<p class="kr-hint" id="kr-q0-hint">Choose a number from 0 to 10.</p>' in scale
    radios = re.findall(r'<input type="radio" id="(kr-q0-\d+)"\s+name="q.nps" value="(\d+)"'
                        r' required>', scale)
    assert [value for _, value in radios] == [str(n) for n in range(11)]
    for input_id, value in radios:  # each radio's label is its number
        assert re.search(rf'id="{input_id}"[^>]*><span>{value}</span></label>', scale)
    french = client.get("/embed?product_id=42&locale=fr").get_data(as_text=True)
    assert "Nous recommanderiez-vous ?" in french


def test_the_chosen_number_is_sent_as_its_text(app, client):
    assert post(client, answered("7")).status_code == 202
    page = client.post("/embed", data={
        "review_type": "review", "rating": "4", "content": "Good.", "author": "Bo",
        "email": "bo@example.com", "product_id": "43", "integration": "shopify",
        "idempotency_key": "k" * 32, "form_token": form_token("shopify:43"), "q.nps": "0"})
    assert page.status_code == 200
    sent = [body["data"]["attributes"]["custom_questions"] for body in queued_bodies(app)]
    assert sent == [[{"id": "nps", "answers": ["7"]}], [{"id": "nps", "answers": ["0"]}]]


@pytest.mark.parametrize("answer", ["11", "-1", "7.5", "07", "+7", "seven", "1e1", "٣"])
def test_an_answer_off_the_scale_is_a_422_that_names_it(client, answer):
    response = post(client, answered(answer))
    assert response.status_code == 422, answer
    [error] = response.get_json()["errors"]
    assert error["source"]["pointer"] == "/data/attributes/custom_questions/0/answers/0"
    assert error["detail"] == "Must be a whole number from 0 to 10."


def test_a_range_question_takes_one_number_and_a_required_one_needs_it(client):
    two = post(client, answered("3", "4"))
    assert two.status_code == 422
    assert two.get_json()["errors"][0]["detail"] == "Takes one answer only."
    none = post(client, review_body())
    assert none.status_code == 422
    assert none.get_json()["errors"][0]["detail"] == 'Question "nps" needs an answer.'


def test_the_form_without_javascript_keeps_the_text_and_points_at_the_scale(client):
    page = client.post("/embed", data={
        "review_type": "review", "rating": "4", "content": "Kept as typed.", "author": "Bo",
        "email": "bo@example.com", "product_id": "42", "integration": "shopify",
        "idempotency_key": "k" * 32, "form_token": form_token("shopify:42")})
    html = page.get_data(as_text=True)
    assert page.status_code == 422
    assert "Kept as typed." in html
    assert '<a href="#kr-err-questions">Answer this question.</a>' in html


@pytest.mark.parametrize("scale, says", [
    ([1], "range is \\[lowest, highest\\]"),
    ([1, 2, 3], "range is \\[lowest, highest\\]"),
    ([5, 1], "range starts below where it ends"),
    ([3, 3], "range starts below where it ends"),
    ([0, 30], "range has at most 21 points"),
    ([1.5, 5], "range.0 is \\[lowest, highest\\]"),
    (["1", "5"], "range.0 is \\[lowest, highest\\]"),
    ("1-5", "range is \\[lowest, highest\\]"),
])
def test_a_range_the_form_cannot_show_fails_the_boot_and_says_why(settings, scale, says):
    question = {"id": "nps", "label": "Recommend?", "range": scale}
    with pytest.raises(ConfigError, match=f"question 1 {says}"):
        create_app({**settings, "WIDGET_CUSTOM_QUESTIONS": json.dumps([question])})


def test_a_range_question_has_no_choices(settings):
    question = {"id": "nps", "label": "Recommend?", "range": [1, 5], "choices": ["a"]}
    with pytest.raises(ConfigError, match="choices are not for a range question"):
        create_app({**settings, "WIDGET_CUSTOM_QUESTIONS": json.dumps([question])})


def test_a_review_of_the_shop_is_asked_no_product_question_and_needs_none(client):
    assert "kr-scale" not in client.get("/embed").get_data(as_text=True)
    store = review_body(review_type="store", product=...)
    assert post(client, store).status_code == 202
