"""The fake Klaviyo's read side: `GET /api/reviews` and `GET /api/reviews/<id>`.

Held to Klaviyo's get_reviews / get_review descriptions (revision 2026-07-15):
- `Authorization: Klaviyo-API-Key <private key>`: missing or unknown key 401, a key without
  the `reviews:read` scope 403; the revision header is required.
- `filter` in Klaviyo's syntax, only the operators each field allows: `created` ge/le with
  unquoted datetimes, `rating` any/equals/ge/le, `id` and `item.id` any/equals, `content`
  contains (a quoted string), `status`, `review_type`, `verified` equals; `and(...)` or a
  comma-separated list combines them. `sort` is created|rating|updated with `-`;
  `page[size]` 1 to 100 (default 20); `page[cursor]` is opaque; `links.next` / `links.prev`
  carry every other parameter. `include=events` adds the related events.
- Reviews never carry the incentive, custom answers or order id (only our outbox has them).
- Reviews created through `POST /client/reviews` join `reviews` as pending ones; each is
  served only from its time in `visible_from` (Klaviyo creates asynchronously). Datetimes
  without an offset, in a filter or in the data, are read as UTC (never a 500 for comparing
  naive with aware).

The fixtures (tests/fake_klaviyo_fixtures.py) cover every status, rejection reasons, null
fields, questions, public replies, photos, unicode and HTML/script payloads.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, request

from tests.fake_klaviyo import JSONAPI, REVISION, problem
from tests.fake_klaviyo_fixtures import events_for, reviews

PRIVATE_KEY = "pk_test_private_key_never_shown"
UNSCOPED_KEY = "pk_test_key_without_reviews_read"
OPERATORS = {
    "created": {"greater-or-equal", "less-or-equal"},
    "rating": {"any", "equals", "greater-or-equal", "less-or-equal"},
    "id": {"any", "equals"},
    "item.id": {"any", "equals"},
    "content": {"contains"},
    "status": {"equals"},
    "review_type": {"equals"},
    "verified": {"equals"},
}
ENUMS = {
    "status": {"published", "unpublished", "rejected", "featured", "pending", "all"},
    "review_type": {"question", "review", "rating", "store"},
}
SORTS = {"created", "rating", "updated"}
TOKEN = re.compile(r'\s*("(?:[^"\\]|\\.)*"|[(),\[\]]|[^(),\[\]"\s]+)')


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

    def visible(self, now: float) -> list[dict[str, Any]]:
        """The reviews a read at `now` sees: fixtures always, creates once they are visible."""
        return [r for r in self.reviews if self.visible_from.get(r["id"], 0.0) <= now]


def utc(text: str) -> datetime:
    """An ISO 8601 datetime, read as UTC when it carries no offset."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# -- the filter language ------------------------------------------------------------------
def parse_filter(text: str) -> list[tuple[str, str, Any]]:
    """`and(equals(rating,1),...)` or `a(...),b(...)` -> [(operator, field, value)]."""
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
        found, position = _expression(tokens, position)
        conditions.extend(found)
        if position < len(tokens):
            if tokens[position] != ",":
                raise FilterError(f"Unexpected {tokens[position]!r} in filter")
            position += 1
    if not conditions:
        raise FilterError("Empty filter")
    return conditions


def _expression(tokens: list[str], i: int) -> tuple[list[tuple[str, str, Any]], int]:
    if i + 1 >= len(tokens) or tokens[i + 1] != "(":
        raise FilterError(f"Expected an operator at {tokens[i]!r}")
    operator = tokens[i]
    if operator == "and":
        conditions, i = [], i + 2
        while True:
            found, i = _expression(tokens, i)
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
    try:
        name, comma = tokens[i + 2], tokens[i + 3]
    except IndexError:
        raise FilterError(f"Incomplete {operator}(") from None
    if comma != ",":
        raise FilterError(f"{operator}( needs a field and a value")
    if name not in OPERATORS:
        raise FilterError(f"'{name}' is not a valid field for filtering")
    if operator not in OPERATORS[name]:
        raise FilterError(f"'{operator}' is not a valid operator for '{name}'")
    i += 4
    if tokens[i:i + 1] == ["["]:
        end = tokens.index("]", i)
        values = [_value(name, t) for t in tokens[i + 1:end] if t != ","]
        value: Any = values
        i = end + 1
    else:
        value, i = _value(name, tokens[i]), i + 1
    if tokens[i:i + 1] != [")"]:
        raise FilterError(f"Expected ')' after {operator}({name},...")
    return [(operator, name, value)], i + 1


def _value(name: str, token: str) -> Any:
    quoted = token.startswith('"')
    if name == "created":
        if quoted:
            raise FilterError("Datetimes in filters are not quoted")
        try:
            return utc(token)
        except ValueError:
            raise FilterError(f"Invalid datetime {token!r}") from None
    if name == "rating":
        if quoted or not token.isdigit():
            raise FilterError(f"Invalid integer {token!r}")
        return int(token)
    if name == "verified":
        if token not in ("true", "false"):
            raise FilterError(f"Invalid boolean {token!r}")
        return token == "true"
    if not quoted:
        raise FilterError(f"String values must be quoted: {token!r}")
    text = json.loads(token)
    if name in ENUMS and text not in ENUMS[name]:
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
    elif name == "created":
        actual = utc(attrs["created"]) if attrs["created"] is not None else None
    else:
        actual = attrs[name]
    if actual is None:
        return False
    if operator == "contains":
        return wanted.casefold() in actual.casefold()
    if operator == "any" or isinstance(wanted, list):
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


def sort_key(name: str):
    def key(review: dict[str, Any]) -> tuple:
        value = review["attributes"][name]
        if name != "rating" and value is not None:
            value = utc(value)
        return (value is None, value if value is not None else 0, review["id"])
    return key


# -- the endpoints ------------------------------------------------------------------------
def register_reads(app: Flask, fake: Any) -> None:
    """Add the read endpoints to the fake's app; its data lives in `fake.reads`."""
    fake.reads = ReadSide()

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
        if request.headers.get("revision") != REVISION:
            return problem(400, "invalid", "Invalid revision",
                           f"revision header must be {REVISION}")
        return None

    def bad(detail: str, parameter: str) -> Response:
        response = problem(400, "invalid", "Invalid input.", detail)
        body = json.loads(response.get_data())
        body["errors"][0]["source"] = {"parameter": parameter}
        response.set_data(json.dumps(body))
        return response

    def resource(review: dict[str, Any]) -> dict[str, Any]:
        item = copy.deepcopy(review)
        self_link = f"{request.host_url}api/reviews/{review['id']}/"
        item["links"] = {"self": self_link}
        item["relationships"]["events"] = {"links": {
            "self": self_link + "relationships/events/", "related": self_link + "events/",
        }}
        if "events" in request.args.get("include", "").split(","):
            events = fake.reads.events.get(review["id"], [])
            item["relationships"]["events"]["data"] = [
                {"type": "event", "id": e["id"]} for e in events
            ]
        return item

    def included(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if "events" not in request.args.get("include", "").split(","):
            return []
        return [copy.deepcopy(e) for r in items for e in fake.reads.events.get(r["id"], [])]

    def document(body: dict[str, Any]) -> Response:
        return Response(json.dumps(body), 200, content_type=JSONAPI)

    @app.get("/api/reviews")
    def get_reviews() -> Response:
        if (refusal := refused()) is not None:
            return refusal
        args = request.args
        try:
            conditions = parse_filter(args["filter"]) if "filter" in args else []
        except FilterError as error:
            return bad(str(error), "filter")
        sort = args.get("sort", "created")
        if sort.lstrip("-") not in SORTS or sort.count("-") > 1:
            return bad(f"'{sort}' is not a valid sort", "sort")
        size = args.get("page[size]", "20")
        if not size.isdigit() or not 1 <= int(size) <= 100:
            return bad("page[size] must be an integer from 1 to 100", "page[size]")
        try:
            offset = offset_of(args["page[cursor]"]) if "page[cursor]" in args else 0
        except FilterError as error:
            return bad(str(error), "page[cursor]")
        with fake.lock:
            shown = fake.reads.visible(time.time())
        found = [r for r in shown if all(matches(r, c) for c in conditions)]
        found.sort(key=sort_key(sort.lstrip("-")), reverse=sort.startswith("-"))
        page = found[offset:offset + int(size)]
        links = {"self": link(offset)}
        if offset + int(size) < len(found):
            links["next"] = link(offset + int(size))
        if offset > 0:
            links["prev"] = link(max(0, offset - int(size)))
        body: dict[str, Any] = {"data": [resource(r) for r in page], "links": links}
        if extra := included(page):
            body["included"] = extra
        return document(body)

    @app.get("/api/reviews/<review_id>")
    @app.get("/api/reviews/<review_id>/")
    def get_review(review_id: str) -> Response:
        if (refusal := refused()) is not None:
            return refusal
        with fake.lock:
            shown = fake.reads.visible(time.time())
        for review in shown:
            if review["id"] == review_id:
                body = {"data": resource(review), "links": {"self": request.base_url}}
                if extra := included([review]):
                    body["included"] = extra
                return document(body)
        return problem(404, "not_found", "Not found.", f"A review with id {review_id} does "
                       "not exist.")
