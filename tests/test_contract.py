"""What we send is what Klaviyo's published ReviewCreateDTO describes.

The official OpenAPI file is read from ../shared/klaviyo-openapi/, beside every developer's
and CI's clone: in CI a missing folder fails these tests, elsewhere it skips them (the fake
Klaviyo carries the same rules for runs without it).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema

from tests.fake_klaviyo import review_errors
from tests.reviews import data_uri, image_bytes, review_body
from tests.services import unavailable
from widget.intake.schemas import INCENTIVE_TYPES, INTEGRATIONS, REVIEW_TYPES, AttributesSchema

OFFICIAL = Path(__file__).resolve().parents[2] / "shared/klaviyo-openapi"


def official_file(name: str) -> Path:
    """One of Klaviyo's official OpenAPI files, beside this clone (needed in CI)."""
    path = OFFICIAL / f"{name}.json"
    if not path.exists():
        unavailable(f"Klaviyo's official {path.name}", "../shared/klaviyo-openapi/ beside "
                    "the clone")
    return path


def openapi_document():
    return json.loads(official_file("create_client_review").read_text())


def inline(node, components):
    """Resolve local $refs and turn OpenAPI 3.0 `nullable` into JSON Schema null types."""
    if isinstance(node, list):
        return [inline(item, components) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        resolved = inline(copy.deepcopy(components[name]), components)
        return {"anyOf": [resolved, {"type": "null"}]} if node.get("nullable") else resolved
    out = {key: inline(value, components) for key, value in node.items()}
    if out.pop("nullable", False):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def create_schema():
    document = openapi_document()
    components = document["components"]["schemas"]
    return inline(components["ReviewCreateDTO"], components)


def full_review():
    body = review_body(
        incentive_type="loyalty_points",
        custom_questions=[{"id": "fit", "answers": ["M"]}],
        images=[data_uri(image_bytes())],
    )
    body["data"]["relationships"] = {"order": {"data": {"type": "order", "id": "1001"}}}
    return body


def test_what_klaviyo_receives_validates_against_the_official_schema(make_app, fake_klaviyo):
    schema = create_schema()
    app = make_app(WIDGET_SENDER="thread")
    client = app.test_client()
    for body in (full_review(), review_body(review_type="question", rating=None, title=None)):
        assert client.post("/client/reviews", json=body).status_code == 202
    received = fake_klaviyo.wait_for_reviews(2)
    assert len(received) == 2
    for body in received:
        jsonschema.validate(body, schema)
    assert received[0]["data"]["attributes"]["images"][0].startswith("data:image/jpeg;base64,")


def test_our_schema_has_exactly_klaviyos_attributes_and_enums():
    attributes = create_schema()["properties"]["data"]["properties"]["attributes"]
    properties = attributes["properties"]
    assert set(AttributesSchema().fields) == set(properties)
    assert set(REVIEW_TYPES) == set(properties["review_type"]["enum"])
    assert set(INCENTIVE_TYPES) == set(properties["incentive_type"]["anyOf"][0]["enum"])
    product = properties["product"]["anyOf"][0]
    assert set(INTEGRATIONS) == set(product["properties"]["integration_key"]["enum"])
    required = set(attributes["required"])
    assert required == {name for name, field in AttributesSchema().fields.items()
                        if field.required}


def test_the_fake_klaviyo_agrees_with_the_official_schema():
    schema = create_schema()
    samples = [full_review(), review_body(rating=9), review_body(review_type="opinion"),
               {"data": {"type": "review", "attributes": {"email": "a@b.co"}}}]
    for sample in samples:
        official_ok = jsonschema.Draft7Validator(schema).is_valid(sample)
        assert official_ok == (review_errors(sample) == []), sample
