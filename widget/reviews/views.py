"""The public display: `/reviews` (the page storefronts frame) and `/reviews.json` (the same
for storefronts that render on their server), both from the mirror, never from Klaviyo."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from babel.dates import format_date
from babel.numbers import format_decimal
from flask import Blueprint, Flask, Response, current_app, render_template, request, url_for
from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_load
from marshmallow.validate import Length, OneOf, Range
from werkzeug.datastructures import MultiDict

from widget import i18n
from widget.errors import ApiError, Problem, api_response, log_refusal, pointers
from widget.intake.pages import THEMES, strings
from widget.intake.schemas import INTEGRATIONS
from widget.reviews import display
from widget.reviews.display import KINDS, SORTS, Shelf
from widget.security import frameable

bp = Blueprint("reviews", __name__)

# Browsers and shared caches may keep a page a minute, and show it for ten more while they
# fetch it again: a review Klaviyo publishes shows within the sync's time plus this.
CACHE_CONTROL = "public, max-age=60, stale-while-revalidate=600"
# The query a page keeps in its links (the view's own parameters are set per link).
KEPT = ("product_id", "integration", "product_name", "locale", "theme")


class DisplayQuery(Schema):
    """What a storefront may put in the /reviews query."""

    class Meta:
        unknown = EXCLUDE  # storefronts add their own tracking parameters

    product_id = fields.String(load_default=None, validate=Length(min=1, max=255))
    integration = fields.String(load_default="shopify", validate=OneOf(INTEGRATIONS))
    product_name = fields.String(load_default=None, validate=Length(max=200))
    type = fields.String(load_default=None, validate=OneOf(KINDS))
    sort = fields.String(load_default="newest", validate=OneOf(SORTS))
    rating = fields.Integer(load_default=None, strict=False, validate=Range(min=1, max=5))
    page = fields.Integer(load_default=1, strict=False, validate=Range(min=1, max=100_000))
    locale = fields.String(load_default=None, validate=Length(max=35))
    theme = fields.String(load_default="auto")

    @pre_load
    def drop_blanks(self, query: Any, **kwargs: Any) -> dict[str, str]:
        return {key: value for key, value in query.items() if value != ""}

    @post_load
    def settle(self, view: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """A product's reviews when a product is named, else the shop's store reviews."""
        if view["type"] is None:
            view["type"] = "review" if view["product_id"] else "store"
        if view["type"] != "store" and not view["product_id"]:
            raise ValidationError("Name the product (product_id), or ask for the shop's "
                                  "store reviews with type=store.", "product_id")
        if view["type"] == "store":  # the shop's: no product, nor its name in the heading
            view["product_id"] = view["product_name"] = None
        if view["type"] == "question":
            view["rating"], view["sort"] = None, "newest"
        view["theme"] = view["theme"] if view["theme"] in THEMES else "auto"
        return view


QUERY = DisplayQuery()


class DisplayQueryError(ValueError):
    """A /reviews query we cannot show (its messages by JSON pointer)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{p.lstrip('/')}: {m}" for p, m in problems))
        self.problems = problems


def view_from(args: MultiDict[str, str]) -> dict[str, Any]:
    try:
        view = QUERY.load(args.to_dict())
    except ValidationError as error:
        raise DisplayQueryError(list(pointers(error.messages))) from None
    view["locale"] = i18n.choose(view["locale"], request.accept_languages.values())
    return view


def key_of(view: dict[str, Any], what: str) -> tuple[Any, ...]:
    return (what, *(view[name] for name in sorted(view)))


@bp.get("/reviews")
@frameable
def page() -> Response:
    return answer("html", "text/html", render)


@bp.get("/reviews.json")
def page_json() -> Response:
    response = answer("json", "application/json", lambda view, shelf: script_safe(json.dumps(
        document(view, shelf), ensure_ascii=False, separators=(",", ":"))))
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def answer(what: str, mimetype: str, build: Callable[[dict[str, Any], Shelf], str]
           ) -> Response:
    """The page for this query, built once per mirror generation. It is kept under the
    query as it came (and the Accept-Language its locale may come from), so a repeated view
    costs a lookup; the first view of a query is parsed and kept under the view it means,
    which other spellings of the same query share."""
    shelves = display.current()

    def make() -> tuple[bytes, str]:
        view = view_from(request.args)
        return shelves.page(key_of(view, what), lambda: tagged(
            build(view, shelves.shelf(view["type"], view["product_id"])).encode()))
    body, etag = shelves.page(
        (what, request.query_string, request.headers.get("Accept-Language")), make)
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL,
               "Vary": "Accept-Language"}  # the locale may come from it
    if request.if_none_match.contains(etag[1:-1]):
        return Response(status=304, headers=headers)
    return Response(body, mimetype=mimetype, headers=headers)


def script_safe(text: str) -> str:
    """The same JSON with <, > and & as \\u escapes, so that a storefront printing `jsonld`
    into a <script> as it is cannot have it ended by a review's text (as Jinja's tojson)."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def tagged(body: bytes) -> tuple[bytes, str]:
    """The body and its ETag header's value."""
    return body, '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


# -- what a page says -------------------------------------------------------------------------
def document(view: dict[str, Any], shelf: Shelf) -> dict[str, Any]:
    """/reviews.json: the summary, the page asked for, its links and the schema.org data."""
    listed = shelf.page(view["type"], view["sort"], view["rating"], view["page"])
    links = {"self": link(view, page=listed.number, absolute=True),
             "prev": link(view, page=listed.number - 1, absolute=True)
             if listed.number > 1 else None,
             "next": link(view, page=listed.number + 1, absolute=True)
             if listed.number < listed.pages else None}
    return {
        "product": None if view["type"] == "store" else {
            "id": view["product_id"], "integration": view["integration"],
            "name": view["product_name"] or shelf.product_name},
        "type": view["type"],
        "summary": shelf.summary.as_json(),
        "reviews": [review.as_json() for review in listed.items],
        "page": {"number": listed.number, "pages": listed.pages, "size": display.PAGE_SIZE,
                 "total": listed.total},
        "links": links,
        "jsonld": structured(view, shelf),
    }


def structured(view: dict[str, Any], shelf: Shelf) -> dict[str, Any] | None:
    """Product data for search engines: never for store reviews (Google's rule against
    self-serving reviews), and counted over reviews only, never questions."""
    if view["type"] == "store":
        return None
    return display.structured_data(shelf, view["product_name"])


def render(view: dict[str, Any], shelf: Shelf) -> str:
    locale = view["locale"]
    t = strings(locale)
    listed = shelf.page(view["type"], view["sort"], view["rating"], view["page"])
    summary = shelf.summary
    return render_template(
        "reviews/reviews.html", t=t, locale=locale, theme=view["theme"], view=view,
        shelf=shelf, summary=summary, listed=listed, jsonld=structured(view, shelf),
        average=decimal(summary.average, locale),
        count_text=i18n.plural(locale, "count", summary.count),
        date=lambda moment: format_date(moment, format="medium", locale=locale),
        link=lambda **changes: link(view, **changes),
        form_link=form_link(view), sorts=SORTS, kept=KEPT,
        product_name=view["product_name"] or shelf.product_name,
        theme_css=bool(current_app.config["WIDGET_THEME"]),
    )


def decimal(value: float | None, locale: str) -> str:
    return "" if value is None else format_decimal(value, format="0.0", locale=locale)


def link(view: dict[str, Any], absolute: bool = False, **changes: Any) -> str:
    """This view's address with `changes` (None drops a parameter); defaults are left out."""
    values = {**view, **changes}
    defaults = {"integration": "shopify", "sort": "newest", "page": 1, "theme": "auto",
                "type": "review" if values["product_id"] else "store"}
    query = {name: values[name] for name in (*KEPT, "type", "sort", "rating", "page")
             if values.get(name) is not None and values[name] != defaults.get(name)}
    return url_for("reviews.page" if not absolute else "reviews.page_json",
                   _external=absolute, **query)


def form_link(view: dict[str, Any]) -> str:
    """The form for this product (or a store review), in the same frame."""
    query = {name: view[name] for name in KEPT if view.get(name)}
    if view["type"] == "question":
        query["type"] = "question"
    return url_for("form.form") + ("?" + urlencode(query) if query else "")


# -- refusals ---------------------------------------------------------------------------------
@bp.errorhandler(DisplayQueryError)
def bad_query(error: DisplayQueryError) -> tuple[Any, int]:
    problems = [Problem(message, code="invalid_parameter", title="Invalid parameter",
                        parameter=pointer.lstrip("/")) for pointer, message in error.problems]
    refusal = ApiError(400, problems)
    log_refusal(refusal)
    if request.endpoint == "reviews.page_json":
        response = api_response(refusal)
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response, 400
    locale = i18n.choose(request.args.get("locale"), request.accept_languages.values())
    t = strings(locale)
    return render_template("form/setup_error.html", t=t, locale=locale, theme="auto",
                           message=t["err_setup"].format(detail=error)), 400


def init_app(app: Flask) -> None:
    display.init_app(app)
    app.register_blueprint(bp)
