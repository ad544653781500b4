"""Marshmallow schemas: the only place request data is validated.

`ReviewSchema` mirrors Klaviyo's `ReviewCreateDTO` field by field, with stricter rules of
ours on top (real email addresses, bounded and trimmed text, strict ratings, safe photos).
Loading it returns the body we send upstream, photos as sent (the pipeline re-encodes them).
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from email_validator import EmailNotValidError, validate_email
from marshmallow import EXCLUDE, Schema, ValidationError, fields
from marshmallow.decorators import post_load, pre_load, validates_schema
from marshmallow.validate import Length, OneOf

from widget.intake.questions import Question

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

    max_length = MAX_EMAIL

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if len(text) > self.max_length:
            raise ValidationError(f"Must be at most {self.max_length} characters.")
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
    """A create_client_review body; loads to the body we send to Klaviyo (photos as sent:
    the pipeline re-encodes them, widget/intake/photos.py).

    `questions` are the merchant's custom questions (WIDGET_CUSTOM_QUESTIONS): when there
    are any, answers must fit them."""

    data = fields.Nested(ResourceSchema, required=True)

    def __init__(self, max_photos: int = 5, questions: tuple[Question, ...] = (),
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_photos = max_photos
        self.questions = {question.id: question for question in questions}

    @validates_schema
    def photos_and_answers_fit(self, review: dict[str, Any], **kwargs: Any) -> None:
        attributes = review["data"]["attributes"]
        images = attributes.get("images") or []
        if len(images) > self.max_photos:
            raise ValidationError({"data": {"attributes": {"images": [
                f"At most {self.max_photos} photos, not {len(images)}."]}}})
        if self.questions:
            problems = answer_problems(self.questions, attributes)
            if problems:
                raise ValidationError({"data": {"attributes": {"custom_questions": problems}}})

    @post_load
    def upstream_body(self, review: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        attributes = review["data"]["attributes"]
        for key in [key for key, value in attributes.items() if value is None]:
            del attributes[key]
        return review


def answer_problems(questions: dict[str, Question], attributes: dict[str, Any]) -> Any:
    """Marshmallow-shaped messages for answers that do not fit the merchant's questions:
    by answer index, or as a list for questions left unanswered."""
    answered = attributes.get("custom_questions") or []
    problems: dict[Any, Any] = {}
    seen = set()
    for index, entry in enumerate(answered):
        question = questions.get(entry["id"])
        if question is None:
            problems[index] = {"id": ["Not a question of this form."]}
            continue
        if question.id in seen:
            problems[index] = {"id": ["This question is answered twice."]}
            continue
        seen.add(question.id)
        answers = entry["answers"]
        if len(answers) > 1 and not question.multiple:
            problems[index] = {"answers": ["Takes one answer only."]}
            continue
        wrong = {i: [question.expected()]
                 for i, answer in enumerate(answers) if not question.fits(answer)}
        if wrong:
            problems[index] = {"answers": wrong}
    # The merchant's questions are about a product: a review of the shop needs none.
    if attributes.get("review_type") in RATED_TYPES and attributes["review_type"] != "store":
        missing = [f'Question "{q.id}" needs an answer.' for q in questions.values()
                   if q.required and q.id not in seen]
        if missing:
            problems["_schema"] = missing
    return problems


def _max_length(schema: type[Schema], name: str) -> int:
    field = schema._declared_fields[name]
    return getattr(field, "inner", field).max_length


# The longest text each field takes, as declared above: the form's maxlength attributes and
# its messages ("at most 150 characters") come from here.
LIMITS = {
    "title": _max_length(AttributesSchema, "title"),
    "content": _max_length(AttributesSchema, "content"),
    "author": _max_length(AttributesSchema, "author"),
    "email": _max_length(AttributesSchema, "email"),
    "answer": _max_length(CustomQuestionSchema, "answers"),
}


class EmbedQuery(Schema):
    """What a storefront may put in the /embed query (and the form echoes back)."""

    class Meta:
        unknown = EXCLUDE  # storefronts add their own tracking parameters

    product_id = fields.String(load_default=None, validate=Length(min=1, max=255))
    integration = fields.String(load_default="shopify", validate=OneOf(INTEGRATIONS))
    order_id = fields.String(load_default=None, validate=Length(min=1, max=255))
    type = fields.String(load_default="review")
    product_name = fields.String(load_default=None, validate=Length(max=200))
    locale = fields.String(load_default=None)
    theme = fields.String(load_default="auto")

    @pre_load
    def drop_blanks(self, query: Any, **kwargs: Any) -> dict[str, str]:
        """An empty value (an untouched hidden field) means the parameter is absent."""
        return {key: value for key, value in query.items() if value != ""}


QUESTION_FIELD = "q."  # the form names a custom question's inputs "q.<question id>"


class ReviewForm(Schema):
    """The shopper's fields of the form's no-JavaScript post -> the attributes the script
    would send. The product and order come from the post's EmbedQuery fields, and the
    photos as data-URIs; ReviewSchema then holds the whole body to its rules."""

    class Meta:
        unknown = EXCLUDE  # the EmbedQuery fields, the token, the honeypot and the key

    review_type = fields.String(load_default="review")
    rating = fields.String(load_default="")
    title = fields.String(load_default="")
    content = fields.String(load_default="")
    author = fields.String(load_default="")
    email = fields.String(load_default="")
    incentive_type = fields.String(load_default="")
    answers = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                          load_default=dict)
    images = fields.List(fields.String(), load_default=list)

    @pre_load
    def gather(self, form: Any, **kwargs: Any) -> dict[str, Any]:
        """One value per field; every answer to each custom question, blanks left out."""
        data = {name: form.get(name) for name in self.fields if name in form}
        data["answers"] = {key[len(QUESTION_FIELD):]: picked for key in form
                           if key.startswith(QUESTION_FIELD)
                           and (picked := [a for a in form.getlist(key) if a.strip()])}
        if "images" in form:
            data["images"] = form.getlist("images")
        return data

    @post_load
    def attributes(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        attributes: dict[str, Any] = {key: data[key] for key in (
            "review_type", "email", "author", "content")}
        if data["review_type"] != "question":  # the form hides these for a question
            rating = data["rating"]
            attributes["rating"] = int(rating) if rating.isdecimal() else None
            attributes["title"] = data["title"] or None
            attributes["incentive_type"] = data["incentive_type"] or None
            attributes["custom_questions"] = [
                {"id": key, "answers": answers} for key, answers in data["answers"].items()
            ] or None
            attributes["images"] = data["images"] or None
        return attributes


def serialise(body: dict[str, Any]) -> bytes:
    """The exact bytes stored in the outbox and sent upstream (UTF-8, compact): those of
    `json.dumps(body, ensure_ascii=False, separators=(",", ":"))`, which the outbox has
    always held and content digests are made of, written by orjson (a photo's 500 KB body
    in 0.03 ms instead of 3; tests/intake/test_schemas.py holds the two to the same bytes)."""
    return orjson.dumps(body)
