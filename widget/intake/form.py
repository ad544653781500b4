"""The shopper's side: the form (`/embed`), its no-JavaScript post, the loader, the demo page."""

from __future__ import annotations

import base64
import math
import re
import uuid
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, render_template, request
from markupsafe import escape
from marshmallow import EXCLUDE, Schema, ValidationError, fields
from marshmallow.validate import Length, OneOf
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.exceptions import TooManyRequests

from widget import assets, i18n
from widget.cache import ReadCache
from widget.config import ConfigError
from widget.delivery.outbox import request_hash
from widget.errors import ApiError, pointers
from widget.extensions import limiter
from widget.intake import defences, questions
from widget.intake.api import BODY_TARGET_SHARE, accept, submit_limit
from widget.intake.schemas import INCENTIVE_TYPES, INTEGRATIONS, serialise
from widget.security import frameable

bp = Blueprint("form", __name__)
Page = tuple[str, int, dict[str, str]]  # body, status, headers

# The form's anti-abuse fields (widget/intake/defences.py); the script sends them as headers.
TOKEN_FIELD = "form_token"
HONEYPOT_FIELD = "website"
THEMES = ("light", "dark", "auto")
MODES = ("review", "question")
# Merchant theme overrides: custom-property declarations only, nothing that could end the
# rule or load anything (no braces, quotes, backslashes, url() or @-rules).
THEME_DECLARATION = re.compile(r"\s*--kr-[a-z0-9-]+\s*:\s*[#%(),.\w\s-]+\s*")
# The pointer's field in the form; anything else goes to the error summary only.
FIELDS = {"rating", "title", "content", "author", "email", "images", "incentive_type",
          "review_type", "custom_questions"}


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


EMBED_QUERY = EmbedQuery()  # schemas keep no state between loads; building one costs more


def context_from(args: MultiDict[str, str]) -> dict[str, Any]:
    """The embed's product, order, mode, locale and theme; unknown modes and themes fall
    back to their defaults, an unknown integration is a setup error."""
    values = {key: value for key, value in args.items() if value != ""}
    try:
        context = EMBED_QUERY.load(values)
    except ValidationError as error:
        detail = "; ".join(f"{pointer.lstrip('/')}: {message}"
                           for pointer, message in pointers(error.messages))
        raise SetupError(detail) from None
    context["mode"] = context.pop("type") if context["type"] in MODES else "review"
    context["theme"] = context["theme"] if context["theme"] in THEMES else "auto"
    context["locale"] = i18n.choose(context["locale"], request.accept_languages.values())
    return context


class SetupError(ValueError):
    """The storefront embedded the form with query values we cannot use."""


@bp.errorhandler(SetupError)
def setup_error(error: SetupError) -> tuple[str, int]:
    locale = i18n.choose(request.args.get("locale"), request.accept_languages.values())
    t = i18n.strings(locale)
    return render_template("form/setup_error.html", t=t, locale=locale, theme="auto",
                           message=t["err_setup"].format(detail=error)), 400


@bp.get("/embed")
@frameable
def form() -> str:
    context = context_from(request.args)
    return blank_form(context).fill(context, key=uuid.uuid4().hex,
                                    token=defences.issue_token())


@bp.post("/embed")
@frameable
@limiter.limit(submit_limit)
def submit() -> str:
    """The same review as the script would send, from a plain form post (no JavaScript)."""
    context = context_from(request.form)
    defences.check_origin()
    defences.check_token(request.form.get(TOKEN_FIELD), required=True)
    defences.check_honeypot(request.form.get(HONEYPOT_FIELD))
    body = review_from_form(request.form, request.files.getlist("photos"), context)
    accept(request_hash(serialise(body)), lambda: body, form_key())
    mode = "question" if body["data"]["attributes"]["review_type"] == "question" else "review"
    return render_page("form/thanks.html", context, mode=mode)


@bp.errorhandler(ValidationError)
def invalid_form(error: ValidationError) -> Page:
    return form_with_errors(422, pointers(error.messages))


@bp.errorhandler(ApiError)
def refused_form(error: ApiError) -> Page:
    if any(problem.code == "idempotency_key_reused" for problem in error.problems):
        # This page's form was sent before (the back button) and is now different: say so,
        # and give it a new key so that sending again makes a new review.
        return form_with_errors(error.status, notice="err_resent", new_key=True)
    problems = ((problem.pointer or "/", problem.detail) for problem in error.problems)
    return form_with_errors(error.status, problems, headers=error.headers)


@bp.errorhandler(TooManyRequests)
def throttled_form(error: TooManyRequests) -> Page:
    retry_after = str(getattr(error, "retry_after", None) or 60)
    return form_with_errors(429, notice="err_throttled", headers={"Retry-After": retry_after})


def form_with_errors(status: int, problems: Iterable[tuple[str, str]] = (),
                     notice: str | None = None, new_key: bool = False,
                     headers: dict[str, str] | None = None) -> Page:
    """The form again, as typed, with each problem next to its field (and `notice`, a
    message for the whole form, in the summary)."""
    context = context_from(request.form)
    t = i18n.strings(context["locale"])
    errors: dict[str, str] = {"other": t[notice]} if notice else {}
    for pointer, detail in problems:
        field, message = error_for(pointer, detail, t)
        errors.setdefault(field, message)
    key = None if new_key else form_key()
    page = render_form(context, request.form.copy(), errors, key or uuid.uuid4().hex)
    return page, status, headers or {}


@bp.after_request
def never_cached(response: Response) -> Response:
    """Each form page carries its own idempotency key: a shared cache must not keep it."""
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def error_for(pointer: str, detail: str, t: Any) -> tuple[str, str]:
    """The form field a JSON pointer names, and the shopper's message for it."""
    parts = pointer.strip("/").split("/")
    name = parts[2] if len(parts) > 2 and parts[:2] == ["data", "attributes"] else ""
    if name not in FIELDS:
        return "other", t["err_other"].format(detail=detail)
    if name == "images":
        index = int(parts[3]) + 1 if len(parts) > 3 and parts[3].isdigit() else 1
        return "photos", t["err_photos"].format(n=index)
    if name == "custom_questions":
        return "questions", t["err_question"]
    key = {"incentive_type": "incentive", "review_type": "type"}.get(name, name)
    return key, t[f"err_{key}"]


def form_key() -> str | None:
    key = (request.form.get("idempotency_key") or "").strip()
    return key if 0 < len(key) <= 64 and key.isalnum() else None


def review_from_form(form: MultiDict[str, str], photos: list[FileStorage],
                     context: dict[str, Any]) -> dict[str, Any]:
    """The Klaviyo-format body for a posted form (the same one the script builds)."""
    review_type = form.get("review_type", "review")
    attributes: dict[str, Any] = {
        "review_type": review_type,
        "email": form.get("email", ""),
        "author": form.get("author", ""),
        "content": form.get("content", ""),
    }
    if review_type != "question":
        rating = form.get("rating", "")
        attributes["rating"] = int(rating) if rating.isdecimal() else None
        attributes["title"] = form.get("title") or None
        attributes["incentive_type"] = form.get("incentive_type") or None
        answered = [{"id": q.id, "answers": answers} for q in current_questions()
                    if (answers := [a for a in form.getlist(f"q.{q.id}") if a.strip()])]
        attributes["custom_questions"] = answered or None
        images = [photo_reference(photo) for photo in photos if photo.filename]
        attributes["images"] = images or None
    if context["product_id"]:
        attributes["product"] = {"external_id": context["product_id"],
                                 "integration_key": context["integration"]}
    data: dict[str, Any] = {"type": "review", "attributes": attributes}
    if context["order_id"]:
        data["relationships"] = {"order": {"data": {"type": "order", "id": context["order_id"]}}}
    return {"data": data}


def photo_reference(photo: FileStorage) -> str:
    """A posted file as a data-URI; widget/images checks that the bytes match the type."""
    data = base64.b64encode(photo.read()).decode("ascii")
    return f"data:{photo.mimetype or 'application/octet-stream'};base64,{data}"


def render_form(context: dict[str, Any], values: MultiDict[str, str], errors: dict[str, str],
                key: str, token: str | None = None) -> str:
    config = current_app.config
    return render_page(
        "form/form.html", context, values=values, errors=errors, idempotency_key=key,
        form_token=token or defences.issue_token(), token_header=defences.TOKEN_HEADER,
        honeypot_header=defences.HONEYPOT_HEADER,
        questions=current_questions(), incentives=INCENTIVE_TYPES,
        max_photos=config["WIDGET_MAX_PHOTOS"], max_edge=config["PHOTO_MAX_EDGE"],
        body_limit=int(config["KLAVIYO_MAX_BODY_BYTES"] * BODY_TARGET_SHARE),
        script_strings=i18n.script_strings(context["locale"]),
        # A store review when the storefront names no product (Klaviyo's review_type).
        review_value="review" if context["product_id"] else "store",
    )


def blank_form(context: dict[str, Any]) -> FormPage:
    """The empty form for this context, rendered once per shape (see FormPage)."""
    if current_app.debug:  # template edits show up without a restart while developing
        return FormPage.render(context)
    pages: ReadCache = current_app.extensions["embed_pages"]
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


def render_page(template: str, context: dict[str, Any], **extra: Any) -> str:
    return render_template(template, c=context, locale=context["locale"],
                           theme=context["theme"], t=i18n.strings(context["locale"]),
                           theme_css=bool(current_app.config["WIDGET_THEME"]), **extra)


def current_questions() -> tuple[questions.Question, ...]:
    return current_app.extensions["custom_questions"]


@bp.get("/embed.js")
def loader() -> Response:
    """The host-page loader at a fixed URL, so storefronts cache it only briefly."""
    return assets.respond("embed.js", assets.LOADER_MAX_AGE)


@bp.get("/embed/theme.css")
def theme_css() -> Response:
    """The merchant's custom-property overrides (WIDGET_THEME), after the built-in themes."""
    css = ":root,:root[data-theme]{" + current_app.config["WIDGET_THEME"] + "}\n"
    return Response(css, mimetype="text/css",
                    headers={"Cache-Control": "public, max-age=300"})


@bp.get("/")
def demo() -> str:
    """A storefront page that embeds the form through the loader, as a shop would."""
    locale = i18n.choose(request.args.get("locale"), request.accept_languages.values())
    return render_template("form/demo.html", t=i18n.strings(locale), locale=locale)


def check_theme(theme: str) -> None:
    for declaration in filter(str.strip, theme.split(";")):
        if not THEME_DECLARATION.fullmatch(declaration):
            raise ConfigError(
                f"WIDGET_THEME: {declaration.strip()!r} is not a --kr-* custom property "
                "with a plain value (like --kr-accent: #7a1fa2)"
            )


def init_app(app: Flask) -> None:
    """Check the form's settings at boot and register the routes."""
    app.extensions["custom_questions"] = questions.load(app.config["WIDGET_CUSTOM_QUESTIONS"])
    # Blank forms by shape: a few locales x themes x modes x integrations x 8 at most.
    app.extensions["embed_pages"] = ReadCache(math.inf, max_entries=512)
    check_theme(app.config["WIDGET_THEME"])
    app.add_template_global(assets.asset_url)
    app.register_blueprint(assets.bp)
    app.register_blueprint(bp)
