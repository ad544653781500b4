"""GET /openapi.json: this service's own API description, built from the schemas' own rules.

The request body is described from the same constants and Text patterns that ReviewSchema
validates with, so what the description calls valid is accepted and what it calls invalid is
refused (schemathesis checks both). Photos are described as https URLs; data-URIs are
accepted too but cannot be described by a pattern (their bytes must be a real image).
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from flask import Blueprint, Flask, Response, current_app, jsonify
from marshmallow.validate import Length

from widget.errors import JSONAPI
from widget.intake.api import MEDIA_TYPES
from widget.intake.photos import MAX_URL_CHARS, URL_PATTERN
from widget.intake.schemas import (
    INCENTIVE_TYPES,
    INTEGRATIONS,
    MAX_EMAIL,
    RATED_TYPES,
    AttributesSchema,
    CustomQuestionSchema,
    OrderDataSchema,
    ProductSchema,
)
from widget.reviews.display import KINDS, SORTS

bp = Blueprint("openapi", __name__)

# Addresses are checked by email_validator (syntax, international addresses, no reserved
# domains); no pattern says all that. This one describes the common case, and every address
# it matches is accepted.
EMAIL_PATTERN = (r"^[A-Za-z0-9]{1,20}([._+-][A-Za-z0-9]{1,20})?"
                 r"@([A-Za-z0-9]{1,20}(-[A-Za-z0-9]{1,20})?\.){1,3}([A-Za-z]{2}|com|net|org)$")
REFUSALS = {
    "400": "Malformed JSON, a foreign `company_id`, or a malformed header",
    "403": "No valid form token (closed API), a foreign `Origin`, or a filled honeypot",
    "404": "No such resource",
    "405": "Method not allowed (see `Allow`)",
    "411": "No `Content-Length`",
    "409": "The same email, product and text were sent before with other details; the "
           "error names the earlier submission",
    "413": "Body too large, or photos that cannot be made to fit Klaviyo's 5 MB cap",
    "415": "Not JSON",
    "422": "Invalid fields; each error points at one with `source.pointer`",
    "429": "Too many submissions from this client or address; see `Retry-After`",
    "503": "Too many reviews waiting for Klaviyo, the outbox cannot be written, or no room "
           "to decode photos now; see `Retry-After`",
}


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def _text(schema_class: type, name: str) -> dict[str, Any]:
    return schema_class().fields[name].json_schema()


def _items(schema_class: type, name: str) -> dict[str, int]:
    """minItems/maxItems of a list field, from its Length validator."""
    bounds: dict[str, int] = {}
    for validator in schema_class._declared_fields[name].validators:
        if isinstance(validator, Length):
            if validator.min is not None:
                bounds["minItems"] = validator.min
            if validator.max is not None:
                bounds["maxItems"] = validator.max
    return bounds


def _attributes(review_types: tuple[str, ...], rated: bool, max_photos: int
                ) -> dict[str, Any]:
    product = _object({"external_id": _text(ProductSchema, "external_id"),
                       "integration_key": {"type": "string", "enum": list(INTEGRATIONS)}},
                      ["external_id", "integration_key"])
    question = _object({
        "id": _text(CustomQuestionSchema, "id"),
        "answers": {"type": "array", **_items(CustomQuestionSchema, "answers"),
                    "items": CustomQuestionSchema().fields["answers"].inner.json_schema()},
    }, ["id", "answers"])
    rating = {"type": "integer", "enum": [1, 2, 3, 4, 5]}
    properties = {
        "review_type": {"type": "string", "enum": list(review_types)},
        "email": {"type": "string", "format": "email", "maxLength": MAX_EMAIL,
                  "pattern": EMAIL_PATTERN},
        "author": _text(AttributesSchema, "author"),
        "content": _text(AttributesSchema, "content"),
        "title": _nullable(_text(AttributesSchema, "title")),
        "rating": rating if rated else {"type": "integer", "nullable": True, "enum": [None]},
        "incentive_type": _nullable({"type": "string", "enum": list(INCENTIVE_TYPES)}),
        "product": _nullable(product),
        "custom_questions": _nullable({"type": "array", **_items(AttributesSchema,
                                                                 "custom_questions"),
                                       "items": question}),
        "images": _nullable({
            "type": "array", "maxItems": max_photos,
            "items": {"type": "string", "maxLength": MAX_URL_CHARS, "pattern": URL_PATTERN},
            "description": "https URLs (never fetched by us), or base64 data-URIs of JPEG, "
                           "PNG or WebP photos, which are decoded and re-encoded.",
        }),
    }
    required = ["review_type", "email", "author", "content"] + (["rating"] if rated else [])
    return _object(properties, required)


def review_create(max_photos: int) -> dict[str, Any]:
    order = _object({"type": {"type": "string", "enum": ["order"]},
                     "id": _text(OrderDataSchema, "id")}, ["type", "id"])
    resource = _object({
        "type": {"type": "string", "enum": ["review"]},
        "attributes": {"oneOf": [_attributes(("question",), False, max_photos),
                                 _attributes(RATED_TYPES, True, max_photos)]},
        "relationships": _object({"order": _object({"data": order}, ["data"])}, ["order"]),
    }, ["type", "attributes"])
    return _object({"data": resource}, ["data"])


ERRORS = _object({"errors": {"type": "array", "minItems": 1, "items": {
    "type": "object",
    "required": ["id", "status", "code", "title", "detail"],
    "properties": {
        "id": {"type": "string"}, "status": {"type": "string"}, "code": {"type": "string"},
        "title": {"type": "string"}, "detail": {"type": "string"},
        "source": {"type": "object", "properties": {"pointer": {"type": "string"},
                                                     "parameter": {"type": "string"}}},
    },
}}}, ["errors"])

SUBMISSION = _object({"data": _object({
    "type": {"type": "string", "enum": ["review-submission"]},
    "id": {"type": "string"},
    "attributes": _object({"status": {"type": "string", "enum": ["queued"]}}, ["status"]),
}, ["type", "id", "attributes"])}, ["data"])

REVIEW = {"type": "object", "required": ["id", "type", "author", "created", "rating", "title",
                                         "content", "images", "verified", "featured",
                                         "smart_quote", "reply"],
          "properties": {"id": {"type": "string"},
                         "type": {"type": "string", "enum": ["review", "rating", "question",
                                                             "store"]},
                         "created": {"type": "string", "format": "date-time"},
                         "rating": {"type": "integer", "nullable": True, "minimum": 1,
                                    "maximum": 5},
                         "images": {"type": "array", "items": {"type": "string"}},
                         "verified": {"type": "boolean"}, "featured": {"type": "boolean"},
                         "reply": {"type": "object", "nullable": True}}}
REVIEWS_PAGE = {"type": "object",
                "required": ["product", "type", "summary", "reviews", "page", "links", "jsonld"],
                "properties": {
                    "product": {"type": "object", "nullable": True},
                    "type": {"type": "string", "enum": list(KINDS)},
                    "summary": _object({
                        "average": {"type": "number", "nullable": True},
                        "count": {"type": "integer"}, "questions": {"type": "integer"},
                        "histogram": {"type": "object", "additionalProperties":
                                      {"type": "integer"}}},
                        ["average", "count", "questions", "histogram"]),
                    "reviews": {"type": "array", "items": REVIEW},
                    "page": {"type": "object"}, "links": {"type": "object"},
                    "jsonld": {"type": "object", "nullable": True,
                               "description": "schema.org Product with aggregateRating, to "
                                              "print in the page as it is; null when "
                                              "nothing is rated, and for store reviews"},
                }}
DISPLAY_PARAMETERS = [{**parameter, "allowEmptyValue": True} for parameter in [  # empty: absent
    {"name": "product_id", "in": "query", "schema": {"type": "string", "maxLength": 255},
     "description": "The product (Klaviyo's product.external_id); without it (or empty), "
                    "the shop's store reviews"},
    {"name": "integration", "in": "query",
     "schema": {"type": "string", "enum": list(INTEGRATIONS)}},
    {"name": "product_name", "in": "query", "schema": {"type": "string", "maxLength": 200}},
    {"name": "type", "in": "query", "schema": {"type": "string", "enum": list(KINDS)}},
    {"name": "sort", "in": "query", "schema": {"type": "string", "enum": list(SORTS)}},
    {"name": "rating", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 5}},
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                "maximum": 100_000}},
    {"name": "locale", "in": "query", "schema": {"type": "string", "maxLength": 35}},
]]

HEALTH = {"type": "object", "properties": {"status": {"type": "string"},
                                           "checks": {"type": "object"}},
          "required": ["status"]}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSONAPI: {"schema": {"$ref":
            "#/components/schemas/Errors"}}}}


def build(config: Any) -> dict[str, Any]:
    """The description for this configuration (public key, photo count, revision)."""
    spec = APISpec(title="Klaviyo review widget", version="1", openapi_version="3.0.3",
                   info={"description": "Drop-in compatible with Klaviyo's "
                                        "create_client_review (revision "
                                        f"{config['KLAVIYO_REVISION']})."})
    spec.components.schema("ReviewCreate", review_create(config["WIDGET_MAX_PHOTOS"]))
    spec.components.schema("Submission", SUBMISSION)
    spec.components.schema("Errors", ERRORS)
    spec.components.schema("Health", HEALTH)
    spec.components.schema("ReviewsPage", REVIEWS_PAGE)
    parameters = []
    if config["KLAVIYO_PUBLIC_KEY"]:
        parameters.append({
            "name": "company_id", "in": "query", "required": False,
            "description": "Optional; when given it must be this service's public key.",
            "schema": {"type": "string", "enum": [config["KLAVIYO_PUBLIC_KEY"]]},
        })
    body = {"$ref": "#/components/schemas/ReviewCreate"}
    spec.path("/client/reviews", operations={"post": {
        "operationId": "create_review",
        "summary": "Submit a review (Klaviyo create_client_review body)",
        "description": "Optional headers: `Idempotency-Key` (a replay answers the first 202; "
                       "the same key with another body is a 422), `X-Review-Token` (the "
                       "form's signed token; required unless WIDGET_OPEN_API is on).",
        "parameters": parameters,
        "requestBody": {"required": True,
                        "content": {media: {"schema": body} for media in MEDIA_TYPES}},
        "responses": {
            "202": {"description": "Stored; it will be delivered to Klaviyo",
                    "content": {JSONAPI: {"schema": {"$ref": "#/components/schemas/Submission"}}}},
            **{status: _error(text) for status, text in REFUSALS.items()},
        },
    }})
    spec.path("/reviews.json", operations={"get": {
        "operationId": "list_reviews",
        "summary": "A product's published reviews (or the shop's store reviews), from the "
                   "mirror",
        "parameters": DISPLAY_PARAMETERS,
        "responses": {
            "200": {"description": "The summary, one page of reviews, and schema.org data",
                    "content": {"application/json": {"schema": {
                        "$ref": "#/components/schemas/ReviewsPage"}}}},
            "304": {"description": "Not modified (If-None-Match)"},
            "400": _error("A query parameter that cannot be shown; `source.parameter` "
                          "names it"),
            "405": _error("Method not allowed")}}})
    health = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}
    spec.path("/healthz", operations={"get": {"operationId": "healthz", "responses": {
        "200": {"description": "The process is alive", **health},
        "405": _error("Method not allowed")}}})
    spec.path("/readyz", operations={"get": {"operationId": "readyz", "responses": {
        "200": {"description": "Ready to accept reviews", **health},
        "503": {"description": "The outbox cannot be reached", **health},
        "405": _error("Method not allowed")}}})
    return spec.to_dict()


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(current_app.extensions["openapi"])


def init_app(app: Flask) -> None:
    """Describe the API once, for this configuration, and serve it."""
    app.extensions["openapi"] = build(app.config)
    app.register_blueprint(bp)
