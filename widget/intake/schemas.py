"""Marshmallow schemas: the only place request data is validated.

`ReviewSchema` mirrors Klaviyo's `ReviewCreateDTO` field by field, with stricter rules of
ours on top (real email addresses, bounded and trimmed text, strict ratings, safe photos).
Loading it returns the exact body we send upstream.
"""

from __future__ import annotations

import json
import re
from typing import Any

from email_validator import EmailNotValidError, validate_email
from marshmallow import Schema, ValidationError, fields, post_load, validates_schema
from marshmallow.validate import Length, OneOf

from widget.errors import ApiError, Problem
from widget.intake import photos as images
from widget.intake.photos import PhotoError, PhotoPolicy, PhotoTooLarge

REVIEW_TYPES = ("question", "rating", "review", "store")
RATED_TYPES = ("rating", "review", "store")
INCENTIVE_TYPES = (
    "coupon_or_discount",
    "employee_review",
    "free_product",
    "loyalty_points",
    "other",
    "paid_promotion",
    "sweepstakes_entry",
)
INTEGRATIONS = ("shopify", "woocommerce")
MAX_EMAIL = 254

# C0 and C1 controls, DEL, lone surrogates (they cannot be encoded), bidi overrides (they
# disguise text). Multi-line fields may still hold tab and newline. The same character
# classes, as JSON Schema patterns, describe these fields in /openapi.json.
_FORBIDDEN = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_SURROGATES = r"\ud800-\udfff"  # not characters at all: a regex engine may refuse them
_LINE = _FORBIDDEN + r"\t\n\r"


def _pattern(forbidden: str, blank: bool) -> str:
    """Any text free of the forbidden characters; unless `blank`, with one non-space."""
    if blank:
        return f"^[^{forbidden}]*$"
    return rf"^[^{forbidden}]*[^{forbidden}\s][^{forbidden}]*$"


class Text(fields.String):
    """A bounded string with no control characters, trimmed of surrounding space.

    Blank text is an error, unless `blank=True` (optional text), where it becomes null.
    """

    default_error_messages = {
        "blank": "Must not be blank.",
        "control": "Must not contain control characters.",
        "too_long": "Must be at most {max} characters.",
    }

    def __init__(self, *, max_length: int, multiline: bool = False, blank: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_length = max_length
        self.multiline = multiline
        self.blank = blank
        self.forbidden = re.compile(f"[{_FORBIDDEN if multiline else _LINE}{_SURROGATES}]")

    def json_schema(self) -> dict[str, Any]:
        """This field's rules for /openapi.json: exactly what _deserialize accepts."""
        forbidden = _FORBIDDEN if self.multiline else _LINE
        return {"type": "string", "maxLength": self.max_length,
                "pattern": _pattern(forbidden, self.blank)}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str | None:
        # The rules apply to the text as sent, so they mean the same in /openapi.json.
        text = super()._deserialize(value, attr, data, **kwargs)
        if self.forbidden.search(text):
            raise self.make_error("control")
        if len(text) > self.max_length:
            raise self.make_error("too_long", max=self.max_length)
        if self.multiline:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        text = text.strip()
        if not text:
            if not self.blank:
                raise self.make_error("blank")
            return None
        return text


class Email(fields.String):
    """An address that could receive mail (syntax only: no DNS lookups on the request path)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if len(text) > MAX_EMAIL:
            raise ValidationError(f"Must be at most {MAX_EMAIL} characters.")
        text = text.strip()
        try:
            return validate_email(text, check_deliverability=False).normalized
        except EmailNotValidError as error:
            raise ValidationError(f"Not a valid email address: {error}") from None


class Rating(fields.Field):
    """An integer 1 to 5: not a bool, a float or a string."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError("Must be a whole number from 1 to 5.")
        if not 1 <= value <= 5:
            raise ValidationError("Must be from 1 to 5.")
        return value


class PhotoReference(fields.String):
    """An https:// URL or a base64 data-URI; decoding waits until the text is valid."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not text.startswith(("data:", "https:", "HTTPS:")):
            raise ValidationError("A photo must be an https:// URL or a base64 data-URI.")
        return text


class ProductSchema(Schema):
    external_id = Text(required=True, max_length=255)
    integration_key = fields.String(required=True, validate=OneOf(INTEGRATIONS))


class CustomQuestionSchema(Schema):
    id = Text(required=True, max_length=255)
    answers = fields.List(
        Text(max_length=500, multiline=True), required=True, validate=Length(min=1, max=10)
    )


class AttributesSchema(Schema):
    review_type = fields.String(required=True, validate=OneOf(REVIEW_TYPES))
    email = Email(required=True)
    author = Text(required=True, max_length=100)
    content = Text(required=True, max_length=10_000, multiline=True)
    title = Text(max_length=150, blank=True, allow_none=True)
    rating = Rating(allow_none=True)
    incentive_type = fields.String(allow_none=True, validate=OneOf(INCENTIVE_TYPES))
    product = fields.Nested(ProductSchema, allow_none=True)
    custom_questions = fields.List(
        fields.Nested(CustomQuestionSchema), allow_none=True, validate=Length(max=20)
    )
    images = fields.List(PhotoReference(), allow_none=True)

    @validates_schema
    def rating_fits_review_type(self, data: dict[str, Any], **kwargs: Any) -> None:
        review_type, rating = data.get("review_type"), data.get("rating")
        if review_type == "question" and rating is not None:
            raise ValidationError("A question has no rating; leave it out.", "rating")
        if review_type in RATED_TYPES and rating is None:
            raise ValidationError(f"A {review_type} needs a rating from 1 to 5.", "rating")


class OrderDataSchema(Schema):
    type = fields.String(required=True, validate=OneOf(["order"]))
    id = Text(required=True, max_length=255)


class OrderSchema(Schema):
    data = fields.Nested(OrderDataSchema, required=True)


class RelationshipsSchema(Schema):
    order = fields.Nested(OrderSchema, required=True)


class ResourceSchema(Schema):
    type = fields.String(required=True, validate=OneOf(["review"]))
    attributes = fields.Nested(AttributesSchema, required=True)
    relationships = fields.Nested(RelationshipsSchema)


class ReviewSchema(Schema):
    """A create_client_review body; loads to the exact body we send to Klaviyo."""

    data = fields.Nested(ResourceSchema, required=True)

    def __init__(self, photos: PhotoPolicy | None = None, body_target: int = 4_500_000,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.photos = photos or PhotoPolicy()
        self.body_target = body_target

    @post_load
    def upstream_body(self, review: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        attributes = review["data"]["attributes"]
        for key in [key for key, value in attributes.items() if value is None]:
            del attributes[key]
        if attributes.get("images"):
            attributes["images"] = self._process_photos(review, attributes["images"])
        return review

    def _process_photos(self, review: dict[str, Any], references: list[str]) -> list[str]:
        pointer = "/data/attributes/images"
        if len(references) > self.photos.max_photos:
            raise ValidationError(
                {"data": {"attributes": {"images": [
                    f"At most {self.photos.max_photos} photos, not {len(references)}."
                ]}}}
            )
        # Each photo gets an equal share of what the text leaves of Klaviyo's body cap,
        # counted in binary bytes (base64 grows them by a third).
        text_bytes = len(serialise({**review, "data": {**review["data"], "attributes": {
            **review["data"]["attributes"], "images": []}}}))
        budget = (self.body_target - text_bytes) * 3 // 4 // len(references)
        processed, invalid, too_large = [], {}, []
        for index, reference in enumerate(references):
            try:
                processed.append(images.off_the_event_loop(
                    images.process, reference, self.photos, budget))
            except PhotoTooLarge as error:
                too_large.append(Problem(f"Photo {index + 1}: {error}", f"{pointer}/{index}",
                                         code="too_large", title="Photo too large"))
            except PhotoError as error:
                invalid[index] = [f"Photo {index + 1}: {error}"]
        if invalid:
            raise ValidationError({"data": {"attributes": {"images": invalid}}})
        if too_large:
            raise ApiError(413, too_large)
        return processed


def serialise(body: dict[str, Any]) -> bytes:
    """The exact bytes stored in the outbox and sent upstream (UTF-8, compact)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
