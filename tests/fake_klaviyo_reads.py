"""The fake Klaviyo's read side: `GET /api/reviews`, `GET /api/reviews/<id>` and the public
`GET /client/reviews`.

Held to Klaviyo's get_reviews / get_review / get_client_reviews descriptions (revision
2026-07-15):
- `/api/reviews`: `Authorization: Klaviyo-API-Key <private key>`: missing or unknown key 401,
  a key without the `reviews:read` scope 403; every status. `/client/reviews`: no key,
  `company_id` must be the public key (else 400); only published and featured reviews, as
  Klaviyo's client review resource (no `email`, no relationships). The revision header is
  required on both.
- `filter` in Klaviyo's syntax, each endpoint with its own table of fields and operators (its
  `x-klaviyo-filters`: `REVIEWS`, `CLIENT_REVIEWS`), an operator taking one value, a list or
  none as the table says: `created` (both) and `updated` (client only) ge/le with unquoted
  datetimes, `rating` any/equals/ge/le, `id` any/equals, `item.id` any/equals (private
  only), `content` contains (a quoted string), `status`, `review_type`, `verified` equals;
  on the client also `incentivized` / `edited` equals and `has(smart_quote)`,
  `has(public_reply)`, `has(media)`. `and(...)` or a comma-separated list combines them.
  `sort` is created|rating|updated with `-`; `page[size]` 1 to 100 (default 20);
  `page[cursor]` is opaque; `links.next` / `links.prev` carry every other parameter.
  `include=events` (private only) adds the related events.
- Reviews never carry the incentive, custom answers or order id (only our outbox has them);
  what the client filters on but no answer shows (`incentivized`, `edited`) sits in a
  review's `UNSHOWN` entry, stripped from every answer (absent: false).
- Reviews created through `POST /client/reviews` join `reviews` as pending ones; each is
  served only from its time in `visible_from` (Klaviyo creates asynchronously). Datetimes
  without an offset, in a filter or in the data, are read as UTC (never a 500 for comparing
  naive with aware).

The fixtures (tests/fake_klaviyo_fixtures.py) cover every status, rejection reasons, null
fields, questions, public replies, photos, unicode and HTML/script payloads; `many_reviews`
makes thousands for the mirror's sync.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, request

from tests.fake_klaviyo import JSONAPI, REVISION, problem
from tests.fake_klaviyo_fixtures import UNSHOWN, events_for, reviews

PRIVATE_KEY = "pk_test_private_key_never_shown"
UNSCOPED_KEY = "pk_test_key_without_reviews_read"
TOKEN = re.compile(r'\s*("(?:[^"\\]|\\.)*"|[(),\[\]]|[^(),\[\]"\s]+)')
RANGE = frozenset({"greater-or-equal", "less-or-equal"})
STATUSES = frozenset({"published", "unpublished", "rejected", "featured", "pending", "all"})
REVIEW_TYPES = frozenset({"question", "review", "rating", "store"})
PUBLIC_STATUSES = frozenset({"published", "featured"})
# The attributes of Klaviyo's ClientReviewResponseDTOObjectResource, in its order.
CLIENT_ATTRIBUTES = ("status", "verified", "review_type", "created", "updated", "images",
                     "product", "rating", "author", "content", "title", "smart_quote",
                     "public_reply")


@dataclass(frozen=True)
class Field:
    """One filterable field as an `x-klaviyo-filters` entry describes it: the type of its value
    (datetime, integer, boolean, string) and its operators that take one value (`single`),
    a list (`lists`) or none (`none`: `has(media)`)."""

    kind: str = "string"
    single: frozenset[str] = frozenset()
    lists: frozenset[str] = frozenset()
    none: frozenset[str] = frozenset()
    enum: frozenset[str] = frozenset()

    @property
    def operators(self) -> frozenset[str]:
        return self.single | self.lists | self.none


@dataclass(frozen=True)
class Listing:
    """What one list endpoint accepts: its filter table and its sort fields (each also with
    `-`)."""

    filters: dict[str, Field]
    sorts: frozenset[str] = frozenset({"created", "rating", "updated"})


EQUALS = frozenset({"equals"})
ANY_EQUALS = frozenset({"any", "equals"})
HAS = Field(kind="", none=frozenset({"has"}))
COMMON = {
    "rating": Field("integer", single=EQUALS | RANGE, lists=ANY_EQUALS),
    "id": Field("string", single=EQUALS, lists=ANY_EQUALS),
    "content": Field("string", single=frozenset({"contains"})),
    "status": Field("string", single=EQUALS, enum=STATUSES),
    "review_type": Field("string", single=EQUALS, enum=REVIEW_TYPES),
    "verified": Field("boolean", single=EQUALS),
    "created": Field("datetime", single=RANGE),
}
# get_reviews: no `updated` filter (a sync sorts by -updated and stops at its watermark).
REVIEWS = Listing({**COMMON, "item.id": Field("string", single=EQUALS, lists=ANY_EQUALS)})
# get_client_reviews: no `item.id`, but `updated` and the has/flag filters.
CLIENT_REVIEWS = Listing({
    **COMMON, "smart_quote": HAS, "public_reply": HAS, "media": HAS,
    "incentivized": Field("boolean", single=EQUALS), "edited": Field("boolean", single=EQUALS),
    "updated": Field("datetime", single=RANGE),
})


# A kept sort order: the values sorted on, the ids, and the indices in order.
Order = tuple[list[Any], list[str], list[int]]


class FilterError(ValueError):
    """The filter is not one Klaviyo would accept; the message is Klaviyo-like."""


@dataclass
class ReadSide:
    """What the read endpoints serve; tests may change `reviews`, `events` or `keys`."""

    reviews: list[dict[str, Any]] = field(default_factory=reviews)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=events_for)
    keys: dict[str, set[str]] = field(default_factory=lambda: {
        PRIVATE_KEY: {"reviews:read"}, UNSCOPED_KEY: set(),
    })
    # Harsher than Klaviyo: a refused key is quoted back, to prove we never show it.
    echo_key_in_errors: bool = False
    # Review id -> time.time() from which it is served; reviews not here are always served.
    visible_from: dict[str, float] = field(default_factory=dict)
    # Sort orders kept between the pages of a listing (see `ordered`); never stale.
    orders: dict[Any, Order] = field(default_factory=dict, repr=False)

    def visible(self, now: float) -> list[dict[str, Any]]:
        """The reviews a read at `now` sees: fixtures always, creates once they are visible."""
        shown = self.visible_from
        if not shown:
            return list(self.reviews)
        return [r for r in self.reviews if shown.get(r["id"], 0.0) <= now]


@lru_cache(maxsize=1 << 16)
def utc(text: str) -> datetime:
    """An ISO 8601 datetime, read as UTC when it carries no offset. Cached by its text, so a
    filter on `created` / `updated` over thousands does not parse them all again (a touched
    review's new text is a new entry)."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# -- the filter language ------------------------------------------------------------------
def parse_filter(text: str, listing: Listing = REVIEWS) -> list[tuple[str, str, Any]]:
    """`and(equals(rating,1),...)` or `a(...),b(...)` -> [(operator, field, value)], with the
    fields and operators `listing` allows (get_reviews' by default); `has(x)` has value None."""
    tokens, end = [], 0
    for match in TOKEN.finditer(text):
        if match.start() != end:
            break
        tokens.append(match.group(1))
        end = match.end()
    if end != len(text.rstrip()):
        raise FilterError(f"Invalid filter near position {end}: {text!r}")
    position, conditions = 0, []
    while position < len(tokens):
        found, position = _expression(tokens, position, listing)
        conditions.extend(found)
        if position < len(tokens):
            if tokens[position] != ",":
                raise FilterError(f"Unexpected {tokens[position]!r} in filter")
            position += 1
    if not conditions:
        raise FilterError("Empty filter")
    return conditions


def _expression(tokens: list[str], i: int,
                listing: Listing) -> tuple[list[tuple[str, str, Any]], int]:
    if i + 1 >= len(tokens) or tokens[i + 1] != "(":
        at = repr(tokens[i]) if i < len(tokens) else "the end"
        raise FilterError(f"Expected an operator at {at}")
    operator = tokens[i]
    if operator == "and":
        conditions, i = [], i + 2
        while True:
            found, i = _expression(tokens, i, listing)
            conditions.extend(found)
            if i >= len(tokens):
                raise FilterError("Unclosed and(")
            if tokens[i] == ")":
                return conditions, i + 1
            if tokens[i] != ",":
                raise FilterError(f"Unexpected {tokens[i]!r} in and(...)")
            i += 1
    if operator in ("or", "not"):
        raise FilterError(f"'{operator}' is not supported for this endpoint")
    if i + 3 >= len(tokens):
        raise FilterError(f"Incomplete {operator}(")
    name, after = tokens[i + 2], tokens[i + 3]
    spec = listing.filters.get(name)
    if spec is None:
        raise FilterError(f"'{name}' is not a valid field for filtering")
    if operator not in spec.operators:
        raise FilterError(f"'{operator}' is not a valid operator for '{name}'")
    if operator in spec.none:
        if after != ")":
            raise FilterError(f"{operator}({name}) takes no value")
        return [(operator, name, None)], i + 4
    if after != ",":
        raise FilterError(f"{operator}( needs a field and a value")
    i += 4
    value: Any
    if tokens[i:i + 1] == ["["]:
        if operator not in spec.lists:
            raise FilterError(f"'{operator}' does not take a list for '{name}'")
        try:
            end = tokens.index("]", i)
        except ValueError:
            raise FilterError(f"Unclosed [ in {operator}({name},...") from None
        value = [_value(spec, name, t) for t in tokens[i + 1:end] if t != ","]
        i = end + 1
    else:
        if operator not in spec.single:
            raise FilterError(f"'{operator}' needs a list of values for '{name}'")
        if i >= len(tokens) or tokens[i] in ("(", ")", ",", "]"):
            raise FilterError(f"{operator}({name},...) needs a value")
        value, i = _value(spec, name, tokens[i]), i + 1
    if tokens[i:i + 1] != [")"]:
        raise FilterError(f"Expected ')' after {operator}({name},...")
    return [(operator, name, value)], i + 1


def _value(spec: Field, name: str, token: str) -> Any:
    quoted = token.startswith('"')
    if spec.kind == "datetime":
        if quoted:
            raise FilterError("Datetimes in filters are not quoted")
        try:
            return utc(token)
        except ValueError:
            raise FilterError(f"Invalid datetime {token!r}") from None
    if spec.kind == "integer":
        if quoted or not token.isdigit():
            raise FilterError(f"Invalid integer {token!r}")
        return int(token)
    if spec.kind == "boolean":
        if token not in ("true", "false"):
            raise FilterError(f"Invalid boolean {token!r}")
        return token == "true"
    if not quoted:
        raise FilterError(f"String values must be quoted: {token!r}")
    try:
        text = json.loads(token)
    except ValueError:
        raise FilterError(f"Invalid string {token}") from None
    if spec.enum and text not in spec.enum:
        raise FilterError(f"{text!r} is not a valid {name}")
    return text


def matches(review: dict[str, Any], condition: tuple[str, str, Any]) -> bool:
    operator, name, wanted = condition
    attrs = review["attributes"]
    if name == "id":
        actual: Any = review["id"]
    elif name == "item.id":
        actual = review["relationships"]["item"]["data"]["id"]
    elif name == "status":
        return wanted == "all" or (attrs["status"] or {}).get("value") == wanted
    elif name in ("created", "updated"):
        actual = utc(attrs[name]) if attrs.get(name) is not None else None
    elif name == "media":
        actual = attrs.get("images")
    elif name in ("incentivized", "edited"):
        actual = bool((review.get(UNSHOWN) or {}).get(name))
    else:
        actual = attrs.get(name)
    if operator == "has":
        return bool(actual)
    if actual is None:
        return False
    if operator == "contains":
        return wanted.casefold() in actual.casefold()
    if isinstance(wanted, list):
        return actual in wanted
    if operator == "greater-or-equal":
        return actual >= wanted
    if operator == "less-or-equal":
        return actual <= wanted
    return actual == wanted


# -- paging -------------------------------------------------------------------------------
def cursor_for(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def offset_of(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        offset = json.loads(base64.urlsafe_b64decode(padded))["o"]
    except (ValueError, KeyError, TypeError):
        raise FilterError("Invalid page cursor") from None
    if not isinstance(offset, int) or offset < 0:
        raise FilterError("Invalid page cursor")
    return offset


def link(offset: int) -> str:
    params = {k: v for k, v in request.args.items() if k != "page[cursor]"}
    if offset:
        params["page[cursor]"] = cursor_for(offset)
    return request.base_url + ("?" + urlencode(params) if params else "")


@lru_cache(maxsize=1 << 16)
def sortable(text: str | None) -> str:
    """A datetime's text as a string that sorts as the instant does ("1" for none, after every
    other), cached by its text: thousands sort on string comparisons instead of parsed
    datetimes. A `+00:00` text (all Klaviyo sends) is its own key: its fields are fixed-width,
    and "+" sorts below "." and the digits, so a shorter fraction sorts first."""
    if text is None:
        return "1"
    if len(text) >= 25 and text[10] == "T" and text.endswith("+00:00"):
        return "0" + text
    return "0" + utc(text).astimezone(UTC).isoformat()


def ordered(found: list[dict[str, Any]], name: str, reverse: bool,
            orders: dict[Any, Order] | None = None, slot: Any = None) -> list[int]:
    """The indices of `found` sorted by `name`, nulls last (first when reversed), ties broken
    by id so that pages never overlap. With `orders`, the order is kept in `orders[slot]` and
    reused while the ids and values are the same ones: following links.next through 10,000
    reviews takes two list passes a page, not a sort (a change, even in place, is seen)."""
    values = [r["attributes"].get(name) for r in found]
    ids = [r["id"] for r in found]
    kept = orders.get(slot) if orders is not None else None
    if kept is not None and kept[0] == values and kept[1] == ids:
        return kept[2]
    keys: list[tuple] = ([(v is None, v or 0, i) for v, i in zip(values, ids, strict=True)]
                         if name == "rating" else
                         [(sortable(v), i) for v, i in zip(values, ids, strict=True)])
    order = sorted(range(len(found)), key=keys.__getitem__, reverse=reverse)
    if orders is not None:
        orders[slot] = (values, ids, order)
    return order


class ParameterError(FilterError):
    """A query parameter Klaviyo would refuse; `parameter` goes into the error's source."""

    def __init__(self, detail: str, parameter: str) -> None:
        super().__init__(detail)
        self.parameter = parameter


def select(listing: Listing, candidates: list[dict[str, Any]], args: Any,
           orders: dict[Any, Order] | None = None) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """One page of `candidates` as `args` (filter, sort, page[size], page[cursor]) ask for
    it, and its links; raises ParameterError as Klaviyo would refuse the request. `orders`
    keeps sort orders between the pages of one listing (see `ordered`)."""
    try:
        conditions = parse_filter(args["filter"], listing) if "filter" in args else []
    except FilterError as error:
        raise ParameterError(str(error), "filter") from None
    sort = args.get("sort", "created")
    if sort.lstrip("-") not in listing.sorts or sort.count("-") > 1:
        raise ParameterError(f"'{sort}' is not a valid sort", "sort")
    size = args.get("page[size]", "20")
    if not size.isdigit() or not 1 <= int(size) <= 100:
        raise ParameterError("page[size] must be an integer from 1 to 100", "page[size]")
    size_n = int(size)
    try:
        offset = offset_of(args["page[cursor]"]) if "page[cursor]" in args else 0
    except FilterError as error:
        raise ParameterError(str(error), "page[cursor]") from None
    found = ([r for r in candidates if all(matches(r, c) for c in conditions)]
             if conditions else candidates)
    slot = (id(listing), sort, args.get("filter"))
    order = ordered(found, sort.lstrip("-"), sort.startswith("-"), orders, slot)
    links = {"self": link(offset)}
    if offset + size_n < len(found):
        links["next"] = link(offset + size_n)
    if offset > 0:
        links["prev"] = link(max(0, offset - size_n))
    return [found[i] for i in order[offset:offset + size_n]], links


# -- the endpoints ------------------------------------------------------------------------
def register_reads(app: Flask, fake: Any) -> None:
    """Add the read endpoints to the fake's app; its data lives in `fake.reads`."""
    fake.reads = ReadSide()

    def wrong_revision() -> Response | None:
        if request.headers.get("revision") != REVISION:
            return problem(400, "invalid", "Invalid revision",
                           f"revision header must be {REVISION}")
        return None

    def refused() -> Response | None:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Klaviyo-API-Key" or key not in fake.reads.keys:
            quoted = f" {key}" if fake.reads.echo_key_in_errors else ""
            return problem(401, "not_authenticated", "Authentication credentials were not "
                           "provided.", f"Missing or invalid private key{quoted}.")
        if "reviews:read" not in fake.reads.keys[key]:
            return problem(403, "permission_denied", "You do not have permission to perform "
                           "this action.", "This API key is missing required scopes: "
                           "reviews:read")
        return wrong_revision()

    def bad(detail: str, parameter: str) -> Response:
        response = problem(400, "invalid", "Invalid input.", detail)
        body = json.loads(response.get_data())
        body["errors"][0]["source"] = {"parameter": parameter}
        response.set_data(json.dumps(body))
        return response

    def resource(review: dict[str, Any]) -> dict[str, Any]:
        """The review as get_reviews serves it: new dicts where links are added, the stored
        values shared (answers are serialised at once; a deep copy of 100 costs ms)."""
        item = {k: v for k, v in review.items() if k != UNSHOWN}
        self_link = f"{request.host_url}api/reviews/{review['id']}/"
        item["links"] = {"self": self_link}
        events: dict[str, Any] = {"links": {
            "self": self_link + "relationships/events/", "related": self_link + "events/",
        }}
        item["relationships"] = {**review["relationships"], "events": events}
        if "events" in request.args.get("include", "").split(","):
            events["data"] = [{"type": "event", "id": e["id"]}
                              for e in fake.reads.events.get(review["id"], [])]
        return item

    def client_resource(review: dict[str, Any]) -> dict[str, Any]:
        """Klaviyo's client review resource: the schema's attributes only (no email), no
        relationships."""
        attrs = review["attributes"]
        return {"type": "review", "id": review["id"],
                "attributes": {name: attrs[name] for name in CLIENT_ATTRIBUTES if name in attrs},
                "links": {"self": f"{request.host_url}client/reviews/{review['id']}/"}}

    def included(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if "events" not in request.args.get("include", "").split(","):
            return []
        return [copy.deepcopy(e) for r in items for e in fake.reads.events.get(r["id"], [])]

    def document(body: dict[str, Any]) -> Response:
        return Response(json.dumps(body), 200, content_type=JSONAPI)

    def shown() -> list[dict[str, Any]]:
        with fake.lock:
            return fake.reads.visible(time.time())

    @app.get("/api/reviews")
    def get_reviews() -> Response:
        if (refusal := refused()) is not None:
            return refusal
        try:
            page, links = select(REVIEWS, shown(), request.args, fake.reads.orders)
        except ParameterError as error:
            return bad(str(error), error.parameter)
        body: dict[str, Any] = {"data": [resource(r) for r in page], "links": links}
        if extra := included(page):
            body["included"] = extra
        return document(body)

    @app.get("/api/reviews/<review_id>")
    @app.get("/api/reviews/<review_id>/")
    def get_review(review_id: str) -> Response:
        if (refusal := refused()) is not None:
            return refusal
        for review in shown():
            if review["id"] == review_id:
                body = {"data": resource(review), "links": {"self": request.base_url}}
                if extra := included([review]):
                    body["included"] = extra
                return document(body)
        return problem(404, "not_found", "Not found.", f"A review with id {review_id} does "
                       "not exist.")

    @app.get("/client/reviews")
    def get_client_reviews() -> Response:
        if (refusal := wrong_revision()) is not None:
            return refusal
        if request.args.get("company_id") != fake.public_key:
            return bad("company_id is missing or unknown", "company_id")
        if "include" in request.args:
            return bad("'include' is not a valid parameter for this endpoint", "include")
        public = [r for r in shown()
                  if ((r["attributes"].get("status") or {}).get("value")) in PUBLIC_STATUSES]
        try:
            page, links = select(CLIENT_REVIEWS, public, request.args, fake.reads.orders)
        except ParameterError as error:
            return bad(str(error), error.parameter)
        return document({"data": [client_resource(r) for r in page], "links": links})
