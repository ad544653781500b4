"""Schemas for the moderation pages' URLs: the list's filters, sort and page cursor.

The filter state lives in the query string so a view can be bookmarked; the list, its count
and the CSV export read the same `Listing` from the mirror (listing.py). A page cursor is
ours: the last row's sort value and id, signed with SECRET_KEY so a changed or foreign
cursor is refused instead of quietly starting somewhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from flask import current_app
from itsdangerous import BadData, URLSafeSerializer
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validates_schema,
)
from marshmallow.validate import OneOf, Range, Regexp

from widget.intake.schemas import Text

STATUSES = ("all", "published", "unpublished", "rejected", "featured", "pending")
REVIEW_TYPES = ("review", "question", "rating", "store")
SORTS = ("-created", "created", "-rating", "rating", "-updated", "updated")
# Klaviyo's review ids are hex or decimal strings; anything else never reaches a URL path.
REVIEW_ID = r"^[A-Za-z0-9_-]{1,64}$"
MAX_SIZE = 100
CURSOR_SALT = "moderation-list-cursor"
# What URLSafeSerializer makes of a sort, a value, an id of 64 and a flag fits well within.
MAX_CURSOR = 500
CURSOR_TOKEN = re.compile(r"^[A-Za-z0-9_.-]+$")
STALE_CURSOR = ("This page link is not valid any more (it was changed, or the service "
                "restarted with another SECRET_KEY): open the first page again.")


@dataclass(frozen=True)
class Cursor:
    """A place in one sort order: after (or, `backward`, before) the row (`value`, `id`)."""

    sort: str
    value: datetime | int
    id: str
    backward: bool = False

    def token(self) -> str:
        """This cursor as it travels in a URL: opaque and signed."""
        value = self.value.isoformat() if isinstance(self.value, datetime) else self.value
        return _signer().dumps([self.sort, value, self.id, self.backward])

    @classmethod
    def read(cls, token: str) -> Cursor:
        """The cursor a token was made from; ValueError when it is not one of ours."""
        try:
            sort, value, review_id, backward = _signer().loads(token)
            if sort not in SORTS or not isinstance(review_id, str) or \
                    not isinstance(backward, bool):
                raise ValueError(token)
            if sort.lstrip("-") == "rating":
                if type(value) is not int:
                    raise ValueError(token)
                return cls(sort, value, review_id, backward)
            return cls(sort, datetime.fromisoformat(value), review_id, backward)
        except (BadData, TypeError, ValueError) as error:
            raise ValueError("not a cursor of this service") from error


def _signer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=CURSOR_SALT)


class CursorField(fields.String):
    """A page cursor from our own Next / Previous links."""

    default_error_messages = {"stale": STALE_CURSOR}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Cursor:
        token = super()._deserialize(value, attr, data, **kwargs)
        if len(token) > MAX_CURSOR or not CURSOR_TOKEN.match(token):
            raise self.make_error("stale")
        try:
            return Cursor.read(token)
        except ValueError as error:
            raise self.make_error("stale") from error


@dataclass(frozen=True)
class Listing:
    """One validated view of the list: which reviews, in what order, from where."""

    status: str = "all"
    rating: int | None = None
    rating_min: int | None = None
    rating_max: int | None = None
    review_type: str | None = None
    verified: bool | None = None
    created_from: date | None = None
    created_to: date | None = None
    q: str | None = None
    product: str | None = None
    email: str | None = None
    media: str | None = None
    reply: str | None = None
    sort: str = "-created"
    size: int = 20
    cursor: Cursor | None = None

    def query(self, cursor: Cursor | None = None, paged: bool = True) -> dict[str, str]:
        """Our own query string for this view at another page (None: the first page);
        without `paged`, only the filters and sort (the CSV export's link)."""
        values = {**self.__dict__, "cursor": cursor.token() if cursor else None}
        if not paged:
            values |= {"cursor": None, "size": None}
        query = {}
        for name, value in values.items():
            if value is None or value == "":
                continue
            query[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        return query


class ListQuery(Schema):
    """The list page's query string; blank values (an untouched form field) mean unset."""

    class Meta:
        unknown = RAISE

    status = fields.String(load_default="all", validate=OneOf(STATUSES))
    rating = fields.Integer(validate=Range(1, 5))
    rating_min = fields.Integer(validate=Range(1, 5))
    rating_max = fields.Integer(validate=Range(1, 5))
    review_type = fields.String(validate=OneOf(REVIEW_TYPES))
    verified = fields.Boolean(truthy={"true"}, falsy={"false"})
    created_from = fields.Date()
    created_to = fields.Date()
    # Matched with LIKE, its % and _ escaped, so any text is safe to search for.
    q = Text(max_length=200)
    # The same rules as a submitted product's external id and email (intake/schemas.py).
    product = Text(max_length=255)
    email = Text(max_length=320)
    media = fields.String(validate=OneOf(["with"]))
    reply = fields.String(validate=OneOf(["with"]))
    sort = fields.String(load_default="-created", validate=OneOf(SORTS))
    size = fields.Integer(load_default=20, validate=Range(1, MAX_SIZE))
    cursor = CursorField()

    @pre_load
    def drop_blanks(self, data: Any, **_: Any) -> dict[str, str]:
        return {key: value.strip() for key, value in data.items()
                if isinstance(value, str) and value.strip()}

    @validates_schema
    def ranges_in_order(self, data: dict[str, Any], **_: Any) -> None:
        low, high = data.get("rating_min"), data.get("rating_max")
        if low is not None and high is not None and low > high:
            raise ValidationError("Must not be above the highest rating.", "rating_min")
        start, end = data.get("created_from"), data.get("created_to")
        if start and end and start > end:
            raise ValidationError("Must not be after the end date.", "created_from")
        cursor = data.get("cursor")
        if cursor is not None and cursor.sort != data.get("sort", "-created"):
            raise ValidationError("This page link belongs to another sort order: open the "
                                  "first page again.", "cursor")

    @post_load
    def listing(self, data: dict[str, Any], **_: Any) -> Listing:
        return Listing(**data)


class ReviewPath(Schema):
    """The review id in /moderation/reviews/<id>."""

    class Meta:
        unknown = RAISE

    id = fields.String(required=True, validate=Regexp(REVIEW_ID, error="Not a review id."))
