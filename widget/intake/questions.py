"""Custom questions from configuration (WIDGET_CUSTOM_QUESTIONS), checked once at boot.

Each question is `{"id", "label", "choices"?, "multiple"?, "range"?, "required"?}`, held to
`QuestionSchema`. A label (or a choice) is a string, or a mapping of locale to string; a
choice may also be `{"value": ..., "label": ...}` so the answer sent to Klaviyo stays the
same in every locale. A `range` of `[min, max]` (whole numbers) asks for one number on that
scale, shown as a row of radio buttons and sent as the number's text ("7"), like Klaviyo's
own range questions.
Without choices or a range the question takes free text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validates,
    validates_schema,
)
from marshmallow.validate import Length, Regexp

from widget.config import ConfigError
from widget.errors import pointers
from widget.i18n import DEFAULT

SETTING = "WIDGET_CUSTOM_QUESTIONS"
# Klaviyo takes at most 20 answered questions per review (see widget/intake/schemas.py).
MAX_QUESTIONS = 20
# A scale wider than this is no longer a row of buttons anyone can read (0-10 has 11).
MAX_RANGE_POINTS = 21


@dataclass(frozen=True)
class Choice:
    value: str
    labels: dict[str, str]


@dataclass(frozen=True)
class Question:
    id: str
    labels: dict[str, str]
    choices: tuple[Choice, ...] = ()
    multiple: bool = False
    required: bool = False
    range: tuple[int, int] | None = None

    def label(self, locale: str) -> str:
        return localised(self.labels, locale)

    @property
    def points(self) -> range:
        """A range question's answers, lowest first."""
        assert self.range is not None
        return range(self.range[0], self.range[1] + 1)

    def fits(self, answer: str) -> bool:
        """Whether an answer is one this question takes (free text takes any)."""
        if self.range is not None:  # the number as the form sends it: "7", "-2", not "07"
            return re.fullmatch(r"-?[1-9][0-9]{0,3}|0", answer) is not None \
                and int(answer) in self.points
        return not self.choices or answer in [choice.value for choice in self.choices]

    def expected(self) -> str:
        """What fits, in words, for a refusal."""
        if self.range is not None:
            return f"Must be a whole number from {self.range[0]} to {self.range[1]}."
        return f"Must be one of: {', '.join(choice.value for choice in self.choices)}."


def localised(labels: dict[str, str], locale: str) -> str:
    return labels.get(locale) or labels.get(DEFAULT) or next(iter(labels.values()))


class Labels(fields.Field):
    """Text, or a mapping of locale to text: {"en": ..., "fr": ...}."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dict[str, str]:
        if isinstance(value, str) and value.strip():
            return {DEFAULT: value.strip()}
        if isinstance(value, dict) and value and all(
                isinstance(k, str) and isinstance(v, str) and v.strip()
                for k, v in value.items()):
            return {k.lower(): v.strip() for k, v in value.items()}
        raise ValidationError("must be text or a mapping of locale to text")


class ChoiceField(fields.Field):
    """A choice: its label (text or by locale), or {"value", "label"?} so that the answer
    sent to Klaviyo stays the same in every locale."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Choice:
        if isinstance(value, dict) and "value" in value:
            if set(value) - {"value", "label"}:
                raise ValidationError("a choice has only value and label")
            raw = value["value"]
            if not isinstance(raw, str) or not raw.strip():
                raise ValidationError("value must be text")
            return Choice(raw.strip(), Labels()._deserialize(value.get("label", raw), attr,
                                                             data))
        labels = Labels()._deserialize(value, attr, data)
        return Choice(localised(labels, DEFAULT), labels)


class QuestionSchema(Schema):
    """One question of the setting."""

    class Meta:
        unknown = RAISE

    error_messages = {"unknown": "is one of the unknown keys; a question has id, label, "
                                 "choices, multiple, range and required"}
    NEEDS_ID = "needs an id (Klaviyo's custom question id)"
    id = fields.String(required=True, validate=Regexp(r"\S", error=NEEDS_ID),
                       error_messages={"required": NEEDS_ID})
    label = Labels(required=True, error_messages={
        "required": "needs a label: text or a mapping of locale to text"})
    choices = fields.List(ChoiceField(), load_default=list)
    multiple = fields.Boolean(load_default=False, truthy={True}, falsy={False},
                              error_messages={"invalid": "is true or false"})
    required = fields.Boolean(load_default=False, truthy={True}, falsy={False},
                              error_messages={"invalid": "is true or false"})
    RANGE = "is [lowest, highest]: two whole numbers, like [1, 10]"
    range = fields.List(fields.Integer(strict=True, error_messages={"invalid": RANGE}),
                        load_default=None, validate=Length(equal=2, error=RANGE),
                        error_messages={"invalid": RANGE})

    @validates("range")
    def scale_readable(self, value: list[int] | None, **kwargs: Any) -> None:
        if value is None or len(value) != 2:  # Length says so
            return
        low, high = value
        if not low < high:
            raise ValidationError("starts below where it ends, like [1, 10]")
        if high - low + 1 > MAX_RANGE_POINTS:
            raise ValidationError(f"has at most {MAX_RANGE_POINTS} points, like [0, 10]")
        if min(low, high) < -999 or max(low, high) > 9999:
            raise ValidationError("stays within -999 and 9999")

    @validates_schema
    def one_kind(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("range") is not None and (data.get("choices") or data.get("multiple")):
            raise ValidationError("are not for a range question, which takes one number",
                                  "choices")

    @post_load
    def question(self, data: dict[str, Any], **kwargs: Any) -> Question:
        return Question(id=data["id"].strip(), labels=data["label"],
                        choices=tuple(data["choices"]), multiple=data["multiple"],
                        required=data["required"],
                        range=tuple(data["range"]) if data["range"] else None)


QUESTIONS = QuestionSchema(many=True)


def load(raw: str | list[Any] | None) -> tuple[Question, ...]:
    """Parse the setting (JSON text, or an already parsed list in tests)."""
    if raw is None or raw == "":
        return ()
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as error:
            raise ConfigError(f"{SETTING} is not valid JSON: {error}") from None
    if not isinstance(raw, list) or len(raw) > MAX_QUESTIONS:
        raise ConfigError(f"{SETTING} must be a JSON list of at most {MAX_QUESTIONS} questions")
    try:
        questions = tuple(QUESTIONS.load(raw))
    except ValidationError as error:
        raise ConfigError(f"{SETTING}: " + "; ".join(
            f"question {int(where.split('/')[1]) + 1}{_field(where)} {message}"
            for where, message in pointers(error.messages))) from None
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{SETTING}: question ids must be distinct")
    return questions


def _field(pointer: str) -> str:
    rest = pointer.split("/")[2:]
    return f" {'.'.join(rest)}" if rest else ""


def init_app(app: Flask) -> None:
    """Check the merchant's questions at boot, so a typo fails the deploy, not a shopper."""
    app.extensions["custom_questions"] = load(app.config[SETTING])


def current() -> tuple[Question, ...]:
    return current_app.extensions["custom_questions"]
