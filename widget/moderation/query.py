"""Schemas for the moderation pages' URLs: the list's filters -> Klaviyo's query parameters.

The filter state lives in the query string so a view can be bookmarked. Klaviyo's operators
per field (get_reviews, revision 2026-07-15): `status`, `review_type`, `verified` equals;
`rating` equals / greater-or-equal / less-or-equal; `created` greater-or-equal /
less-or-equal with unquoted datetimes; `content` contains a quoted string.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validates_schema,
)
from marshmallow.validate import Length, OneOf, Range, Regexp

STATUSES = ("all", "published", "unpublished", "rejected", "featured", "pending")
REVIEW_TYPES = ("review", "question", "rating", "store")
SORTS = ("-created", "created", "-rating", "rating", "-updated", "updated")
# Klaviyo's review ids are hex or decimal strings; anything else never reaches a URL path.
REVIEW_ID = r"^[A-Za-z0-9_-]{1,64}$"
# A quote or backslash could end the quoted string in the filter expression early.
SEARCH_TEXT = r'^[^"\\\x00-\x1f\x7f]*$'


@dataclass(frozen=True)
class Listing:
    """One validated view of the list: what to ask Klaviyo, and how to link to it again."""

    status: str = "all"
    rating: int | None = None
    rating_min: int | None = None
    rating_max: int | None = None
    review_type: str | None = None
    verified: bool | None = None
    created_from: date | None = None
    created_to: date | None = None
    q: str | None = None
    sort: str = "-created"
    size: int = 20
    cursor: str | None = None

    def filter(self) -> str:
        """Klaviyo's filter expression; `and(...)` when there is more than one condition."""
        parts = [f'equals(status,"{self.status}")']
        if self.rating is not None:
            parts.append(f"equals(rating,{self.rating})")
        if self.rating_min is not None:
            parts.append(f"greater-or-equal(rating,{self.rating_min})")
        if self.rating_max is not None:
            parts.append(f"less-or-equal(rating,{self.rating_max})")
        if self.review_type:
            parts.append(f'equals(review_type,"{self.review_type}")')
        if self.verified is not None:
            parts.append(f"equals(verified,{'true' if self.verified else 'false'})")
        if self.created_from:
            parts.append(f"greater-or-equal(created,{self.created_from}T00:00:00+00:00)")
        if self.created_to:
            parts.append(f"less-or-equal(created,{self.created_to}T23:59:59+00:00)")
        if self.q:
            parts.append(f'contains(content,"{self.q}")')
        return parts[0] if len(parts) == 1 else f"and({','.join(parts)})"

    def params(self) -> dict[str, str]:
        """The query parameters of Klaviyo's GET /api/reviews for this view."""
        params = {"filter": self.filter(), "sort": self.sort, "page[size]": str(self.size)}
        if self.cursor:
            params["page[cursor]"] = self.cursor
        return params

    def query(self, cursor: str | None = None) -> dict[str, str]:
        """Our own query string for this view at another page (None: the first page)."""
        values = {**self.__dict__, "cursor": cursor}
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
    q = fields.String(validate=[
        Length(max=200),
        Regexp(SEARCH_TEXT, error="Search text cannot contain quotes, backslashes or "
                                  "control characters."),
    ])
    sort = fields.String(load_default="-created", validate=OneOf(SORTS))
    size = fields.Integer(load_default=20, validate=Range(1, 100))  # Klaviyo's page[size]
    # Klaviyo's cursor, copied from its links.next / links.prev: opaque, printable, bounded.
    cursor = fields.String(validate=[Length(max=1000), Regexp(r"^[!-~]+$")])

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

    @post_load
    def listing(self, data: dict[str, Any], **_: Any) -> Listing:
        return Listing(**data)


class ReviewPath(Schema):
    """The review id in /moderation/reviews/<id>."""

    class Meta:
        unknown = RAISE

    id = fields.String(required=True, validate=Regexp(REVIEW_ID, error="Not a review id."))
