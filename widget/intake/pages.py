"""Rendering the form's pages: the embed's context, the form with its values and errors, and
the blank form kept per shape."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from babel.numbers import format_decimal
from flask import current_app, render_template, request, url_for
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
    back to their defaults, an unknown integration is a setup error. An order's page (its
    products repeated in the query, or `type=order`) has them in `order`, else None."""
    try:
        context = EMBED_QUERY.load(args.to_dict())
    except ValidationError as error:
        detail = "; ".join(f"{pointer.lstrip('/')}: {message}"
                           for pointer, message in pointers(error.messages))
        raise SetupError(detail) from None
    context["order"] = order_from(args, context)
    context["mode"] = context.pop("type") if context["type"] in MODES else "review"
    context["theme"] = context["theme"] if context["theme"] in THEMES else "auto"
    context["locale"] = i18n.choose(context["locale"], request.accept_languages.values())
    return context


def order_from(args: MultiDict[str, str], context: dict[str, Any]) -> list[Product] | None:
    """An order's products, in the query's order: `product_id` repeated, each followed by
    its `product_name` (names are optional, but then none is given)."""
    ids = args.getlist("product_id")
    if len(ids) < 2 and context["type"] != "order":
        return None
    if not context["order_id"]:
        raise SetupError("order_id: an order's page needs the id of the order its products "
                         "are from")
    limit = current_app.config["WIDGET_MAX_ORDER_PRODUCTS"]
    if not 1 <= len(ids) <= limit:
        raise SetupError(f"product_id: an order's page lists from 1 to {limit} products "
                         f"(WIDGET_MAX_ORDER_PRODUCTS); this one lists {len(ids)}")
    names = args.getlist("product_name")
    if names and len(names) != len(ids):
        raise SetupError(f"product_name: give one per product_id, in the same order, or "
                         f"none; this order has {len(ids)} products and {len(names)} names")
    products = [Product(id, name or None) for id, name in zip(ids, names or [""] * len(ids),
                                                               strict=True)]
    for number, product in enumerate(products, 1):
        if not 1 <= len(product.id) <= 255:
            raise SetupError(f"product_id: product {number} has an id of 1 to 255 characters")
        if len(product.name or "") > 200:
            raise SetupError(f"product_name: product {number} has a name of at most 200 "
                             "characters")
    return products


@dataclass(frozen=True)
class Product:
    id: str
    name: str | None


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
    return render_page(
        "form/form.html", context, values=values, errors=errors, idempotency_key=key,
        form_token=token,
        # A store review when the storefront names no product (Klaviyo's review_type).
        review_value="review" if context["product_id"] else "store",
        **form_settings(context["locale"]))


def form_settings(locale: str) -> dict[str, Any]:
    """What every form of a page is rendered with: limits, questions, the script's
    settings and strings (plural ones by number: photo_count[n])."""
    config = current_app.config
    max_photos = config["WIDGET_MAX_PHOTOS"]
    t = strings(locale)
    script_strings: dict[str, Any] = {key: t[key] for key in i18n.SCRIPT_KEYS}
    script_strings["photo_count"] = [i18n.plural(locale, "photo_count", n)
                                     for n in range(max_photos + 1)]
    script_strings["photo_too_many"] = i18n.plural(locale, "photo_too_many", max_photos)
    return dict(
        token_header=defences.TOKEN_HEADER, honeypot_header=defences.HONEYPOT_HEADER,
        limits=LIMITS, token_max_age=config["WIDGET_TOKEN_MAX_AGE_SECONDS"],
        timeout=ANSWER_TIMEOUT_SECONDS, questions=questions.current(),
        incentives=INCENTIVE_TYPES, max_photos=max_photos, max_edge=config["PHOTO_MAX_EDGE"],
        body_limit=int(config["KLAVIYO_MAX_BODY_BYTES"] * BODY_TARGET_SHARE),
        script_strings=script_strings,
        photos_hint=i18n.plural(locale, "photos_hint", max_photos),
        number=lambda value: format_decimal(value, locale=locale),
    )


def render_page(template: str, context: dict[str, Any], **extra: Any) -> str:
    return render_template(template, c=context, locale=context["locale"],
                           theme=context["theme"], t=strings(context["locale"]),
                           theme_css=bool(current_app.config["WIDGET_THEME"]), **extra)


# -- an order's page: a form per product, then the shop's ------------------------------------
STORE_ITEM = "store"


def order_items(context: dict[str, Any]) -> list[str]:
    """The names of an order page's forms: "1".."n" for its products, then "store"."""
    return [str(number) for number in range(1, len(context["order"]) + 1)] + [STORE_ITEM]


def item_context(context: dict[str, Any], item: str) -> dict[str, Any]:
    """The context one form of an order's page is for (its product, or none: the shop)."""
    product = None if item == STORE_ITEM else context["order"][int(item) - 1]
    return {**context, "order": None, "mode": "review",
            "product_id": product.id if product else None,
            "product_name": product.name if product else None}


def order_action(context: dict[str, Any], sent: set[str]) -> str:
    """Where an order's forms post without JavaScript: the page's own query (so the answer
    is the order's page again) with the forms sent so far."""
    query: list[tuple[str, str]] = [("order_id", context["order_id"]),
                                    ("integration", context["integration"])]
    for product in context["order"]:
        query.append(("product_id", product.id))
    if any(product.name for product in context["order"]):
        query.extend(("product_name", product.name or "") for product in context["order"])
    query += [(name, context[name]) for name in ("locale", "theme")]
    query += [("type", "order")] + [("sent", item) for item in order_items(context)
                                     if item in sent]
    return url_for("form.submit") + "?" + urlencode(query)


def render_order(context: dict[str, Any], keys: dict[str, str], tokens: dict[str, str],
                 sent: set[str] = frozenset(), posted: str | None = None,
                 values: MultiDict[str, str] | None = None,
                 errors: dict[str, str] | None = None, action: str | None = None) -> str:
    """An order's page; the form `posted` (if any) with what was typed and its errors."""
    t = strings(context["locale"])
    items = []
    for item in order_items(context):
        c = item_context(context, item)
        mine = item == posted
        items.append({
            "name": item, "p": f"kr-{item}", "c": c, "key": keys[item], "token": tokens[item],
            "typed": values if mine and values is not None else MultiDict(),
            "errors": errors if mine and errors else {}, "sent": item in sent,
            "review_value": "store" if item == STORE_ITEM else "review",
            "heading": t["store_review_heading"] if item == STORE_ITEM
            else c["product_name"] or t["order_product"].format(n=item),
        })
    return render_page(
        "form/order.html", context, items=items,
        action=action or order_action(context, sent), all_sent=len(sent) == len(items),
        order_intro=i18n.plural(context["locale"], "order_intro", len(context["order"])),
        **form_settings(context["locale"]))


def order_tokens(context: dict[str, Any]) -> dict[str, str]:
    """A form token per form of an order's page, each bound to its product."""
    return {item: defences.issue_token(product_of(item_context(context, item)))
            for item in order_items(context)}


def blank_order(context: dict[str, Any]) -> OrderPage:
    if current_app.debug:
        return OrderPage.render(context)
    pages: ReadCache = current_app.extensions["form_pages"]
    return pages.fetch(OrderPage.shape_of(context), lambda: OrderPage.render(context))


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
        return cls.split(render_form(marked, values=MultiDict(), errors={},
                                     key=_marker("key"), token=_marker("token")))

    @classmethod
    def split(cls, text: str) -> FormPage:
        pieces = SLOT.split(text)  # text, slot name, text, slot name, ..., text
        return cls(pieces[0::2], pieces[1::2])

    def fill(self, context: dict[str, Any], key: str, token: str) -> str:
        return self.fill_slots(
            {**{name: context[name] for name in self.VALUES}, "key": key, "token": token})

    def fill_slots(self, values: dict[str, Any]) -> str:
        out = [self.parts[0]]
        for slot, text in zip(self.slots, self.parts[1:], strict=True):
            out.append(escape(values[slot]))
            out.append(text)
        return "".join(out)


class OrderPage(FormPage):
    """An order's empty page, kept the same way: by locale, theme, integration and which of
    its products have names, with slots for the order, each product, its key and token,
    and the no-JavaScript action (which holds them all)."""

    @staticmethod
    def shape_of(context: dict[str, Any]) -> tuple[Any, ...]:
        return ("order", context["locale"], context["theme"], context["integration"],
                tuple(bool(product.name) for product in context["order"]))

    @classmethod
    def render(cls, context: dict[str, Any]) -> OrderPage:
        items = order_items(context)
        marked = {**context, "order_id": _marker("order_id"),
                  "order": [Product(_marker(f"product_id_{number}"),
                                    product.name and _marker(f"product_name_{number}"))
                            for number, product in enumerate(context["order"], 1)]}
        text = render_order(marked, keys={item: _marker(f"key_{item}") for item in items},
                            tokens={item: _marker(f"token_{item}") for item in items},
                            action=_marker("action"))
        return cls.split(text)

    def fill_order(self, context: dict[str, Any], keys: dict[str, str],
                   tokens: dict[str, str]) -> str:
        values: dict[str, Any] = {"order_id": context["order_id"],
                                  "action": order_action(context, set())}
        for number, product in enumerate(context["order"], 1):
            values[f"product_id_{number}"] = product.id
            values[f"product_name_{number}"] = product.name
        for item in order_items(context):
            values[f"key_{item}"], values[f"token_{item}"] = keys[item], tokens[item]
        return self.fill_slots(values)


def _marker(name: str) -> str:
    # Private-use characters: HTML escaping leaves them alone, and no query can hold them
    # in the blank page (it is rendered from markers only).
    return f"\ue000{name}\ue001"


SLOT = re.compile("\ue000(\\w+)\ue001")
