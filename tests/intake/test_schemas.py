"""ReviewSchema mirrors Klaviyo's ReviewCreateDTO, with stricter rules of ours."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from tests.reviews import review_body
from widget.errors import pointers
from widget.intake.schemas import INCENTIVE_TYPES, AttributesSchema, ReviewSchema, serialise


def load(body):
    return ReviewSchema().load(body)


def errors_of(body) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        load(body)
    return dict(pointers(caught.value.messages))


def test_valid_review_loads_to_the_same_body():
    assert load(review_body()) == review_body()


def test_every_klaviyo_field_is_accepted():
    body = review_body(
        incentive_type="free_product",
        custom_questions=[{"id": "fit", "answers": ["M", "L"]}],
        images=["https://cdn.example.com/a.jpg"],
    )
    body["data"]["relationships"] = {"order": {"data": {"type": "order", "id": "42439497119686"}}}
    assert load(body) == body


@pytest.mark.parametrize("review_type", ["review", "rating", "store"])
def test_rated_types_need_a_rating(review_type):
    errors = errors_of(review_body(review_type=review_type, rating=...))
    assert errors == {"/data/attributes/rating": f"A {review_type} needs a rating from 1 to 5."}


def test_question_takes_no_rating():
    assert "/data/attributes/rating" in errors_of(review_body(review_type="question", rating=4))
    assert "rating" not in load(review_body(review_type="question", rating=None))["data"][
        "attributes"]
    assert load(review_body(review_type="question", rating=...))


@pytest.mark.parametrize("rating", [0, 6, True, 4.0, "5", None])
def test_rating_must_be_an_integer_from_one_to_five(rating):
    assert "/data/attributes/rating" in errors_of(review_body(rating=rating))


@pytest.mark.parametrize("email", ["", "ann", "ann@", "@example.com", "a b@example.com",
                                   "ann@example", "x" * 250 + "@example.com", 42])
def test_email_must_be_a_real_address(email):
    assert "/data/attributes/email" in errors_of(review_body(email=email))


def test_text_is_trimmed_and_line_endings_normalised():
    attrs = load(review_body(author="  Ann  ", content=" Good\r\nshirt \n"))["data"]["attributes"]
    assert attrs["author"] == "Ann"
    assert attrs["content"] == "Good\nshirt"


@pytest.mark.parametrize("field", ["author", "content"])
def test_required_text_must_not_be_blank(field):
    assert errors_of(review_body(**{field: "   "})) == {
        f"/data/attributes/{field}": "Must not be blank."}


def test_blank_title_becomes_absent():
    assert "title" not in load(review_body(title="  "))["data"]["attributes"]


@pytest.mark.parametrize("field, text", [
    ("author", "Ann\x00"), ("content", "bell\x07"), ("title", "new\nline"),
    ("content", "\u202eevil"), ("author", "\ud800"), ("content", "\x85"),
])
def test_control_characters_are_refused(field, text):
    assert errors_of(review_body(**{field: text})) == {
        f"/data/attributes/{field}": "Must not contain control characters."}


def test_limits_apply_to_the_text_as_sent_before_trimming():
    assert "/data/attributes/author" in errors_of(review_body(author=" " + "x" * 100))
    assert "/data/attributes/author" in errors_of(review_body(author="Ann\n"))


def test_text_rules_in_the_api_description_match_the_schema():
    fields = AttributesSchema().fields
    author, title = fields["author"].json_schema(), fields["title"].json_schema()
    assert author["maxLength"] == 100
    for text, accepted in [("Ann", True), ("   ", False), ("A\nB", False), ("A\x85", False)]:
        assert bool(re.match(author["pattern"], text)) is accepted
    assert re.match(title["pattern"], "   ")  # optional text may be blank: it becomes null


def test_content_may_hold_newlines_and_tabs():
    assert load(review_body(content="a\n\tb"))["data"]["attributes"]["content"] == "a\n\tb"


@pytest.mark.parametrize("field, limit", [("author", 100), ("title", 150), ("content", 10_000)])
def test_text_lengths_are_bounded(field, limit):
    assert load(review_body(**{field: "x" * limit}))
    assert errors_of(review_body(**{field: "x" * (limit + 1)})) == {
        f"/data/attributes/{field}": f"Must be at most {limit} characters."}


def test_unknown_fields_are_refused_wherever_they_are():
    body = review_body(colour="red")
    body["data"]["extra"] = 1
    body["meta"] = {}
    errors = errors_of(body)
    assert errors == {
        "/data/attributes/colour": "Unknown field.",
        "/data/extra": "Unknown field.",
        "/meta": "Unknown field.",
    }


@pytest.mark.parametrize("value", [None, [], "review", 3])
def test_body_must_be_an_object_with_data(value):
    errors = errors_of(value if value is not None else {})
    assert errors in ({"/data": "Missing data for required field."},
                      {"/": "Invalid input type."})


def test_wrong_types_are_refused_with_pointers():
    errors = errors_of({"data": {"type": "reviews", "attributes": {
        "review_type": "opinion", "email": ["a"], "author": 1, "content": {}, "rating": 5}}})
    assert set(errors) == {"/data/type", "/data/attributes/review_type", "/data/attributes/email",
                           "/data/attributes/author", "/data/attributes/content"}


def test_enums_are_exactly_klaviyos():
    for incentive in INCENTIVE_TYPES:
        assert load(review_body(incentive_type=incentive))
    assert "/data/attributes/incentive_type" in errors_of(review_body(incentive_type="bribe"))
    product = {"external_id": "1", "integration_key": "Shopify"}
    assert "/data/attributes/product/integration_key" in errors_of(review_body(product=product))


def test_product_needs_both_ids():
    errors = errors_of(review_body(product={"external_id": "1"}))
    assert errors == {"/data/attributes/product/integration_key":
                      "Missing data for required field."}


def test_order_relationship_must_be_an_order():
    body = review_body()
    body["data"]["relationships"] = {"order": {"data": {"type": "cart", "id": "1"}}}
    assert "/data/relationships/order/data/type" in errors_of(body)


def test_custom_questions_are_bounded():
    many = [{"id": f"q{i}", "answers": ["a"]} for i in range(21)]
    assert "/data/attributes/custom_questions" in errors_of(review_body(custom_questions=many))
    blank = [{"id": "q", "answers": [" "]}]
    assert errors_of(review_body(custom_questions=blank)) == {
        "/data/attributes/custom_questions/0/answers/0": "Must not be blank."}
    assert "/data/attributes/custom_questions/0/answers" in errors_of(
        review_body(custom_questions=[{"id": "q", "answers": []}]))


def test_too_many_photos_are_refused():
    photos = ["https://cdn.example.com/a.jpg"] * 6
    assert errors_of(review_body(images=photos)) == {
        "/data/attributes/images": "At most 5 photos, not 6."}


def test_photo_errors_point_at_the_photo():
    errors = errors_of(review_body(images=["https://ok.example.com/a.jpg", "ftp://x/y"]))
    assert errors == {
        "/data/attributes/images/1": "A photo must be an https:// URL or a base64 data-URI."}


def _json_values() -> st.SearchStrategy:
    """What a loaded review can hold: text (any but lone surrogates, which the schemas
    refuse), whole numbers, booleans and null, in lists and objects."""
    leaves = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text()
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(), _json_values(), max_size=6))
def test_serialised_bodies_are_the_bytes_the_outbox_always_held(body):
    # Stored bodies and content digests were json.dumps's: a digest made before the change
    # must still match the same review sent again after it.
    assert serialise(body) == json.dumps(body, ensure_ascii=False,
                                         separators=(",", ":")).encode("utf-8")


def test_a_review_serialises_to_the_same_bytes_with_every_kind_of_character():
    text = "".join(chr(c) for c in range(0x20, 0x3000)) + "\t\n😀\u2028\u2029\x7f\x85"
    body = review_body(content=text, title=text, author="Zoë", custom_questions=[
        {"id": "fit", "answers": ["true to size", "ça va"]}])
    assert serialise(body) == json.dumps(body, ensure_ascii=False,
                                         separators=(",", ":")).encode("utf-8")
