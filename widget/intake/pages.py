"""Rendering the form's pages: the embed's context, the form with its values and errors, and
the blank form kept per shape."""

from __future__ import annotations

import re
from typing import Any

from flask import current_app, render_template, request
from markupsafe import escape
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from widget import i18n
from widget.cache import ReadCache
from widget.errors import pointers
from widget.intake import defences, questions
from widget.intake.schemas import INCENTIVE_TYPES, LIMITS, EmbedQuery
from widget.intake.submissions import BODY_TARGET_SHARE

THEMES = ("light", "dark", "auto")
# Seconds the form's script waits for an answer (plus the upload's own time) before it says
# the send failed and keeps the review for another try.
ANSWER_TIMEOUT_SECONDS = 15
MODES = ("review", "question")
EMBED_QUERY = EmbedQuery()  # schemas keep no state between loads; building one costs more


class SetupError(ValueError):
    """The storefront embedded the form with query values we cannot use."""


def context_from(args: MultiDict[str, str]) -> dict[str, Any]:
    """The embed's product, order, mode, locale and theme; unknown modes and themes fall
    back to their defaults, an unknown integration is a setup error."""
    try:
        context = EMBED_QUERY.load(args.to_dict())
    except ValidationError as error:
        detail = "; ".join(f"{pointer.lstrip('/')}: {message}"
                           for pointer, message in pointers(error.messages))
        raise SetupError(detail) from None
    context["mode"] = context.pop("type") if context["type"] in MODES else "review"
    context["theme"] = context["theme"] if context["theme"] in THEMES else "auto"
    context["locale"] = i18n.choose(context["locale"], request.accept_languages.values())
    return context


def product_of(context: dict[str, Any]) -> str:
    """The product a form token of this context is issued for."""
    return defences.product_key(context["integration"], context["product_id"])


# Each locale's strings with the schemas' text limits filled in ("at most 150 characters"),
# numbers written as the locale writes them.
STRINGS = {locale: i18n.fill(i18n.strings(locale), locale,
                             {f"{name}_max": limit for name, limit in LIMITS.items()})
           for locale in i18n.LOCALES}


def strings(locale: str) -> dict[str, str]:
    return STRINGS.get(locale, STRINGS[i18n.DEFAULT])


def render_form(context: dict[str, Any], values: MultiDict[str, str], errors: dict[str, str],
                key: str, token: str) -> str:
    config = current_app.config
    t = strings(context["locale"])
    return render_page(
        "form/form.html", context, values=values, errors=errors, idempotency_key=key,
        form_token=token, token_header=defences.TOKEN_HEADER,
        honeypot_header=defences.HONEYPOT_HEADER, limits=LIMITS,
        token_max_age=config["WIDGET_TOKEN_MAX_AGE_SECONDS"], timeout=ANSWER_TIMEOUT_SECONDS,
        questions=questions.current(), incentives=INCENTIVE_TYPES,
        max_photos=config["WIDGET_MAX_PHOTOS"], max_edge=config["PHOTO_MAX_EDGE"],
        body_limit=int(config["KLAVIYO_MAX_BODY_BYTES"] * BODY_TARGET_SHARE),
        script_strings={key: t[key] for key in i18n.SCRIPT_KEYS},
        # A store review when the storefront names no product (Klaviyo's review_type).
        review_value="review" if context["product_id"] else "store",
    )


def render_page(template: str, context: dict[str, Any], **extra: Any) -> str:
    return render_template(template, c=context, locale=context["locale"],
                           theme=context["theme"], t=strings(context["locale"]),
                           theme_css=bool(current_app.config["WIDGET_THEME"]), **extra)


def blank_form(context: dict[str, Any]) -> FormPage:
    """The empty form for this context, rendered once per shape (see FormPage)."""
    if current_app.debug:  # template edits show up without a restart while developing
        return FormPage.render(context)
    pages: ReadCache = current_app.extensions["form_pages"]
    return pages.fetch(FormPage.shape_of(context), lambda: FormPage.render(context))


class FormPage:
    """The empty form as text with slots for what differs between shoppers and products.

    Rendering the template costs most of a form request. The page depends on the query
    only through the locale, theme, mode and integration, and through whether a product,
    an order and a product name are given; their values are only ever printed,
    HTML-escaped. So the page is rendered once per such shape with markers in place of the
    values (and of the per-page key and token), and each request escapes its values into
    the slots (tests/intake/test_form.py checks it against a full render)."""

    VALUES = ("product_id", "order_id", "product_name")

    def __init__(self, parts: list[str], slots: list[str]) -> None:
        self.parts, self.slots = parts, slots

    @staticmethod
    def shape_of(context: dict[str, Any]) -> tuple[Any, ...]:
        return (context["locale"], context["theme"], context["mode"], context["integration"],
                *(bool(context[name]) for name in FormPage.VALUES))

    @classmethod
    def render(cls, context: dict[str, Any]) -> FormPage:
        marked = {**context, **{name: _marker(name) for name in cls.VALUES if context[name]}}
        text = render_form(marked, values=MultiDict(), errors={}, key=_marker("key"),
                           token=_marker("token"))
        pieces = SLOT.split(text)  # text, slot name, text, slot name, ..., text
        return cls(pieces[0::2], pieces[1::2])

    def fill(self, context: dict[str, Any], key: str, token: str) -> str:
        values = {**{name: context[name] for name in self.VALUES}, "key": key, "token": token}
        out = [self.parts[0]]
        for slot, text in zip(self.slots, self.parts[1:], strict=True):
            out.append(escape(values[slot]))
            out.append(text)
        return "".join(out)


def _marker(name: str) -> str:
    # Private-use characters: HTML escaping leaves them alone, and no query can hold them
    # in the blank page (it is rendered from markers only).
    return f"\ue000{name}\ue001"


SLOT = re.compile("\ue000(\\w+)\ue001")
