"""The shopper's side: the form (`/embed`), its no-JavaScript post, token renewal, the loader,
the theme and the demo page."""

from __future__ import annotations

import base64
import math
import re
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, render_template, request
from gunicorn.http.errors import ParseException
from marshmallow import ValidationError
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, TooManyRequests
from werkzeug.formparser import FormDataParser

from widget import assets, i18n
from widget.cache import ReadCache
from widget.config import ConfigError
from widget.delivery.outbox import request_hash
from widget.errors import ApiError, Problem, from_validation, log_refusal, pointers
from widget.intake import defences, questions, submissions
from widget.intake.api import submissions_limit
from widget.intake.pages import (
    SetupError,
    blank_form,
    blank_order,
    context_from,
    item_context,
    order_items,
    order_tokens,
    product_of,
    render_form,
    render_order,
    render_page,
    strings,
)
from widget.intake.schemas import QUESTION_FIELD, ReviewForm, serialise
from widget.intake.submissions import Arrival, Body
from widget.security import frameable

bp = Blueprint("form", __name__)
Page = tuple[str, int, dict[str, str]]  # body, status, headers

# The form's anti-abuse fields (widget/intake/defences.py); the script sends them as headers.
TOKEN_FIELD = "form_token"
HONEYPOT_FIELD = "website"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# Merchant theme overrides: custom-property declarations only, nothing that could end the
# rule or load anything (no braces, quotes, backslashes, url() or @-rules).
THEME_DECLARATION = re.compile(r"\s*--kr-[a-z0-9-]+\s*:\s*[#%(),.\w\s-]+\s*")
# Refusals that name no field of the form, each with the shopper's own message (the script
# has the same table, static/form.js).
BY_CODE = {"review_already_sent": "err_already_sent", "outbox_unavailable": "err_unavailable",
           "busy": "err_busy", "backlog_full": "err_unavailable"}
# The pointer's field in the form; anything else goes to the error summary only.
FIELDS = {"rating", "title", "content", "author", "email", "images", "incentive_type",
          "review_type", "custom_questions"}
REVIEW_FORM = ReviewForm()
# A posted photo is held in memory up to this, then in a temporary file (werkzeug's default).
SPOOL_BYTES = 500 * 1024


@bp.get("/embed")
@frameable
def form() -> str:
    context = embed_context()
    if context["order"]:
        return blank_order(context).fill_order(context, fresh_keys(context),
                                               order_tokens(context))
    return blank_form(context).fill(context, key=uuid.uuid4().hex,
                                    token=defences.issue_token(product_of(context)))


def embed_context() -> dict[str, Any]:
    """context_from(request.args), kept per raw query and Accept-Language: a shop's pages
    ask for the same few forms again and again (a setup error is never kept)."""
    key = (request.query_string, request.headers.get("Accept-Language", ""))
    contexts: ReadCache = current_app.extensions["embed_contexts"]
    return contexts.fetch(key, lambda: context_from(request.args))


def fresh_keys(order: dict[str, Any]) -> dict[str, str]:
    return {item: uuid.uuid4().hex for item in order_items(order)}


def order_posted_from() -> tuple[dict[str, Any], str | None, set[str]] | None:
    """For a post from an order's page (its query is the form's action): the order, the
    form that was posted ("1".."n", "store") and those sent before."""
    if "product_id" not in request.args and request.args.get("type") != "order":
        return None
    try:
        order = context_from(request.args)
    except SetupError:
        return None
    if not order["order"]:
        return None
    items = order_items(order)
    item = _posted_or_empty().get("order_item")
    return order, item if item in items else None, set(request.args.getlist("sent")) & set(items)


@bp.post("/embed")
@frameable
@submissions_limit
def submit() -> str:
    """The same review as the script would send, from a plain form post (no JavaScript)."""
    posted = read_posted()
    context = context_from(posted.form)
    body = review_from_form(posted, context)
    submissions.accept(Arrival(
        read=lambda: Body(request_hash(serialise(body)), lambda: body),
        token=posted.form.get(TOKEN_FIELD),
        honeypot=posted.form.get(HONEYPOT_FIELD),
        idempotency_key=form_key(posted.form),
    ))
    order = order_posted_from()
    if order is not None:  # the order's page again, this form thanked, the others as they were
        context, item, sent = order
        return render_order(context, fresh_keys(context), order_tokens(context),
                            sent=sent | {item} if item else sent)
    mode = "question" if body["data"]["attributes"]["review_type"] == "question" else "review"
    return render_page("form/thanks.html", context, mode=mode)


@bp.get("/embed/token")
def token() -> Response:
    """A fresh form token for the script to renew an old one with, before it expires."""
    context = context_from(request.args)
    fresh = defences.renew_token(request.headers.get(defences.TOKEN_HEADER),
                                 product_of(context))
    return jsonify({"token": fresh,
                    "max_age": current_app.config["WIDGET_TOKEN_MAX_AGE_SECONDS"]})


# -- reading the post ---------------------------------------------------------------------
@dataclass(frozen=True)
class Posted:
    form: MultiDict[str, str]
    files: list[FileStorage]


class MalformedForm(BadRequest):
    """The body is not a whole form (a broken chunked or multipart body, another type)."""


class CappedFile(tempfile.SpooledTemporaryFile):  # type: ignore[type-arg]
    """A posted photo, kept while it fits what its form may keep; past that it is read on
    and dropped (`overflowed`), so the form's text still arrives."""

    def __init__(self, room: list[int], per_file: int) -> None:
        super().__init__(max_size=SPOOL_BYTES)
        self.room, self.left, self.overflowed = room, per_file, False

    def write(self, data: Any) -> int:
        size = len(data)
        if not self.overflowed and (size > self.left or size > self.room[0]):
            self.overflowed = True
            self.room[0] += self.tell()  # what it held goes back to the others
            self.seek(0)
            self.truncate()
        if self.overflowed:
            return size
        self.left -= size
        self.room[0] -= size
        return super().write(data)


def read_posted() -> Posted:
    """The posted form, read once and strictly: a body that is not a whole form is refused,
    never taken as an empty one. Photos are kept up to WIDGET_MAX_BODY_BYTES in all (and
    each up to the largest data-URI taken); a body up to twice that is read through, its
    photos past the limit named too large, the text kept."""
    if "posted" in g:
        return g.posted
    if request.mimetype not in FORM_TYPES:
        raise MalformedForm(f"a form post is {' or '.join(FORM_TYPES)}, not "
                            f"{request.mimetype or 'no Content-Type'}")
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    room = [limit]
    per_file = current_app.config["PHOTO_MAX_DATA_URI_CHARS"] * 3 // 4 + 1
    g.photo_files = []  # closed after the answer, even when parsing fails half-way

    def keep(*_: Any, **__: Any) -> CappedFile:
        g.photo_files.append(CappedFile(room, per_file))
        return g.photo_files[-1]

    parser = FormDataParser(
        stream_factory=keep, max_form_memory_size=request.max_form_memory_size,
        max_content_length=2 * limit, max_form_parts=request.max_form_parts, silent=False,
        cls=MultiDict)
    try:  # a body over the limit raises RequestEntityTooLarge (413), answered below
        _, form, files = parser.parse_from_environ(request.environ)
    except (ValueError, OSError, ParseException, BadRequest) as error:
        raise MalformedForm(f"the form did not arrive whole ({type(error).__name__})") from None
    g.posted = Posted(form, files.getlist("photos"))
    return g.posted


@bp.teardown_request
def close_posted(_error: BaseException | None) -> None:
    """The posted photos' spooled files, closed once the answer is made."""
    for photo in g.pop("photo_files", ()):
        photo.close()


def review_from_form(posted: Posted, context: dict[str, Any]) -> dict[str, Any]:
    """The Klaviyo-format body for a posted form (the same one the script builds)."""
    photos = [photo for photo in posted.files if photo.filename]
    too_large = [Problem(f"Photo {index + 1} is larger than this form can send.",
                         f"/data/attributes/images/{index}", code="too_large",
                         title="Photo too large")
                 for index, photo in enumerate(photos) if photo.stream.overflowed]
    if too_large:
        raise ApiError(413, too_large)
    fields = posted.form.copy()
    fields.setlist("images", [photo_reference(photo) for photo in photos])
    attributes = REVIEW_FORM.load(fields)
    if context["product_id"]:
        attributes["product"] = {"external_id": context["product_id"],
                                 "integration_key": context["integration"]}
    data: dict[str, Any] = {"type": "review", "attributes": attributes}
    if context["order_id"]:
        data["relationships"] = {"order": {"data": {"type": "order", "id": context["order_id"]}}}
    return {"data": data}


def photo_reference(photo: FileStorage) -> str:
    """A posted file as a data-URI; the photo pipeline checks that the bytes match the type."""
    data = base64.b64encode(photo.read()).decode("ascii")
    return f"data:{photo.mimetype or 'application/octet-stream'};base64,{data}"


def form_key(form: MultiDict[str, str]) -> str | None:
    key = (form.get("idempotency_key") or "").strip()
    return key if 0 < len(key) <= 64 and key.isalnum() else None


# -- answering a refusal: the form again, as typed ------------------------------------------
@bp.errorhandler(SetupError)
def setup_error(error: SetupError) -> tuple[str, int]:
    locale = i18n.choose(request.args.get("locale"), request.accept_languages.values())
    t = strings(locale)
    return render_template("form/setup_error.html", t=t, locale=locale, theme="auto",
                           message=t["err_setup"].format(detail=error)), 400


@bp.errorhandler(ValidationError)
def invalid_form(error: ValidationError) -> Page:
    log_refusal(from_validation(error))
    return form_with_errors(422, pointers(error.messages))


@bp.errorhandler(ApiError)
def refused_form(error: ApiError) -> Page:
    log_refusal(error)
    if any(problem.code == "idempotency_key_reused" for problem in error.problems):
        # This page's form was sent before (the back button) and is now different: say so,
        # and give it a new key so that sending again makes a new review.
        return form_with_errors(error.status, notice="err_resent", new_key=True)
    notice = next((BY_CODE[p.code] for p in error.problems if p.code in BY_CODE), None)
    problems = [(problem.pointer or "/", problem.detail) for problem in error.problems
                if problem.code not in BY_CODE]
    return form_with_errors(error.status, problems, notice=notice, headers=error.headers)


@bp.errorhandler(TooManyRequests)
def throttled_form(error: TooManyRequests) -> Page:
    retry_after = str(getattr(error, "retry_after", None) or 60)
    return form_with_errors(429, notice="err_throttled", headers={"Retry-After": retry_after})


@bp.errorhandler(MalformedForm)
def malformed_form(error: MalformedForm) -> Page:
    log_refusal(ApiError.one(400, "malformed_form", "Malformed form", str(error.description)))
    return form_with_errors(400, notice="err_malformed", as_typed=False)


@bp.errorhandler(RequestEntityTooLarge)
def too_large_form(error: RequestEntityTooLarge) -> Page:
    return form_with_errors(413, notice="err_too_large", as_typed=False)


def form_with_errors(status: int, problems: Iterable[tuple[str, str]] = (),
                     notice: str | None = None, new_key: bool = False,
                     headers: dict[str, str] | None = None, as_typed: bool = True) -> Page:
    """The form again, as typed, with each problem next to its field (and `notice`, a
    message for the whole form, in the summary), and a fresh token for the same form.
    Without `as_typed` (nothing arrived whole), the form of the page's own query."""
    values = _posted_or_empty() if as_typed else MultiDict()
    try:
        context = context_from(values)
    except SetupError:
        context = context_from(MultiDict())
    order = order_posted_from()
    if order is not None:
        context = order[0]
    t = strings(context["locale"])
    errors: dict[str, str] = {"other": t[notice]} if notice else {}
    for pointer, detail in problems:
        field, message = error_for(pointer, detail, t, values)
        errors.setdefault(field, message)
    key = None if new_key else form_key(values)
    if order is not None:  # the order's page, this form as typed, the others as they were
        context, item, sent = order
        keys, tokens = fresh_keys(context), order_tokens(context)
        if item is not None:
            keys[item] = key or keys[item]
            tokens[item] = defences.renew_token(values.get(TOKEN_FIELD),
                                                product_of(item_context(context, item)))
        page = render_order(context, keys, tokens, sent=sent, posted=item, values=values,
                            errors=errors)
        return page, status, headers or {}
    token = defences.renew_token(values.get(TOKEN_FIELD), product_of(context))
    page = render_form(context, values, errors, key or uuid.uuid4().hex, token)
    return page, status, headers or {}


def _posted_or_empty() -> MultiDict[str, str]:
    """What the shopper typed, when it arrived whole (a refusal before the view read it,
    such as a 429, reads it here)."""
    try:
        return read_posted().form.copy()
    except (MalformedForm, RequestEntityTooLarge):
        return MultiDict()


def error_for(pointer: str, detail: str, t: Any, values: MultiDict[str, str]) -> tuple[str, str]:
    """The form field a JSON pointer names, and the shopper's message for it."""
    parts = pointer.strip("/").split("/")
    name = parts[2] if len(parts) > 2 and parts[:2] == ["data", "attributes"] else ""
    if name not in FIELDS:
        return "other", t["err_other"].format(detail=detail)
    if name == "images":
        index = int(parts[3]) + 1 if len(parts) > 3 and parts[3].isdigit() else 1
        return "photos", t["err_photos"].format(n=index)
    if name == "custom_questions":
        return question_field(parts[3:], values), t["err_question"]
    key = {"incentive_type": "incentive", "review_type": "type"}.get(name, name)
    return key, t[f"err_{key}"]


def question_field(rest: list[str], values: MultiDict[str, str]) -> str:
    """The field of the question an answer index points at: answers are sent in the form's
    order, leaving out unanswered questions."""
    answered = [key[len(QUESTION_FIELD):] for key in values
                if key.startswith(QUESTION_FIELD) and any(a.strip() for a in values.getlist(key))]
    ids = [question.id for question in questions.current()]
    if rest and rest[0].isdigit() and int(rest[0]) < len(answered) \
            and answered[int(rest[0])] in ids:
        return f"q{ids.index(answered[int(rest[0])])}"
    return "questions"


@bp.after_request
def never_cached(response: Response) -> Response:
    """Each form page carries its own idempotency key: a shared cache must not keep it."""
    response.headers.setdefault("Cache-Control", "no-store")
    return response


# -- what the storefront loads --------------------------------------------------------------
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
    return render_template("form/demo.html", t=strings(locale), locale=locale)


def check_theme(theme: str) -> None:
    for declaration in filter(str.strip, theme.split(";")):
        if not THEME_DECLARATION.fullmatch(declaration):
            raise ConfigError(
                f"WIDGET_THEME: {declaration.strip()!r} is not a --kr-* custom property "
                "with a plain value (like --kr-accent: #7a1fa2)"
            )


def init_app(app: Flask) -> None:
    """Check the form's settings at boot, keep blank forms, and register the routes."""
    # Blank forms by shape: a few locales x themes x modes x integrations x 8 at most.
    app.extensions["form_pages"] = ReadCache(math.inf, max_entries=512)
    app.extensions["embed_contexts"] = ReadCache(math.inf, max_entries=1024)
    check_theme(app.config["WIDGET_THEME"])
    assets.init_app(app)
    app.register_blueprint(bp)
