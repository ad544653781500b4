"""Custom questions from configuration (WIDGET_CUSTOM_QUESTIONS), checked once at boot.

Each question is `{"id", "label", "choices"?, "multiple"?, "required"?}`. A label (or a
choice) is a string, or a mapping of locale to string; a choice may also be
`{"value": ..., "label": ...}` so the answer sent to Klaviyo stays the same in every locale.
Without choices the question takes free text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from widget.config import ConfigError
from widget.i18n import DEFAULT

SETTING = "WIDGET_CUSTOM_QUESTIONS"
# Klaviyo takes at most 20 answered questions per review (see widget/intake/schemas.py).
MAX_QUESTIONS = 20


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

    def label(self, locale: str) -> str:
        return localised(self.labels, locale)


def localised(labels: dict[str, str], locale: str) -> str:
    return labels.get(locale) or labels.get(DEFAULT) or next(iter(labels.values()))


def _labels(raw: Any, where: str) -> dict[str, str]:
    if isinstance(raw, str) and raw.strip():
        return {DEFAULT: raw.strip()}
    if isinstance(raw, dict) and raw and all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in raw.items()
    ):
        return {k.lower(): v.strip() for k, v in raw.items()}
    raise ConfigError(f"{SETTING}: {where} must be text or a mapping of locale to text")


def _choice(raw: Any, where: str) -> Choice:
    if isinstance(raw, dict) and "value" in raw:
        value = raw["value"]
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{SETTING}: {where}.value must be text")
        return Choice(value.strip(), _labels(raw.get("label", value), where))
    labels = _labels(raw, where)
    return Choice(localised(labels, DEFAULT), labels)


def _question(raw: Any, index: int) -> Question:
    where = f"question {index + 1}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{SETTING}: {where} must be an object with id and label")
    unknown = set(raw) - {"id", "label", "choices", "multiple", "required"}
    if unknown:
        raise ConfigError(f"{SETTING}: {where} has unknown keys {sorted(unknown)}")
    if not isinstance(raw.get("id"), str) or not raw["id"].strip():
        raise ConfigError(f"{SETTING}: {where} needs an id (Klaviyo's custom question id)")
    choices = raw.get("choices") or []
    if not isinstance(choices, list):
        raise ConfigError(f"{SETTING}: {where}.choices must be a list")
    flags = {name: raw.get(name, False) for name in ("multiple", "required")}
    if not all(isinstance(flag, bool) for flag in flags.values()):
        raise ConfigError(f"{SETTING}: {where}: multiple and required are true or false")
    return Question(
        id=raw["id"].strip(),
        labels=_labels(raw.get("label"), f"{where}.label"),
        choices=tuple(_choice(c, f"{where}.choices[{i}]") for i, c in enumerate(choices)),
        **flags,
    )


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
    questions = tuple(_question(item, i) for i, item in enumerate(raw))
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{SETTING}: question ids must be distinct")
    return questions
