"""Looking up a send whose outcome is unknown, before sending it again.

Klaviyo's create answers 202 with no id and takes no idempotency key, so a send left
unanswered (a read timeout, a connection lost after the body went, a sender killed mid-send)
may or may not have created the review. With the private key, the sender asks
`GET /api/reviews` for reviews created since the first attempt (less a skew for clocks that
disagree) whose content contains a distinctive snippet of ours, and matches them on email,
product, rating and title. A match is the review: the row is delivered, with Klaviyo's id.
Klaviyo creates asynchronously, so a miss is asked again until SENDER_RECONCILE_SECONDS have
passed; only then is the review sent again (flagged as a possible duplicate).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from widget.delivery.outbox import Submission

# Our clock and Klaviyo's may disagree by this much.
CLOCK_SKEW = timedelta(minutes=5)
# A page holds this many reviews (Klaviyo's most); a lookup reads at most MAX_PAGES.
PAGE_SIZE = 100
MAX_PAGES = 5
# Characters a snippet may hold: letters, digits, spaces and plain punctuation, so that it
# needs no escaping inside Klaviyo's quoted filter value.
SNIPPET_PART = re.compile(r"[\w .!?'&:;/-]+")
SNIPPET_CHARS = 80


def snippet(content: str) -> str:
    """The longest run of plain characters in the content (at most SNIPPET_CHARS)."""
    runs = sorted((run.strip() for run in SNIPPET_PART.findall(content)), key=len, reverse=True)
    return runs[0][:SNIPPET_CHARS].strip() if runs else ""


def item_id(product: dict[str, Any]) -> str:
    """Klaviyo's catalog item id of a product we sent."""
    return f"${product['integration_key']}:::$default:::{product['external_id']}"


def lookup_filter(attributes: dict[str, Any], since: datetime) -> str:
    """Klaviyo's filter for reviews that could be this one (created since `since`, UTC)."""
    # Every status: a review Klaviyo has just created is pending, and may be moderated since.
    parts = [f"greater-or-equal(created,{(since - CLOCK_SKEW).isoformat()}+00:00)",
             'equals(status,"all")']
    if text := snippet(attributes.get("content") or ""):
        parts.append(f'contains(content,"{text}")')
    if attributes.get("rating") is not None:
        parts.append(f"equals(rating,{int(attributes['rating'])})")
    if attributes.get("product"):
        parts.append(f'equals(item.id,"{item_id(attributes["product"])}")')
    return f"and({','.join(parts)})"


def same_review(found: dict[str, Any], attributes: dict[str, Any]) -> bool:
    """Klaviyo's review `found` is ours: the same email, product, rating and title."""
    theirs = found.get("attributes") or {}
    product = theirs.get("product") or {}
    ours = attributes.get("product") or {}
    return ((theirs.get("email") or "").casefold() == (attributes.get("email") or "").casefold()
            and product.get("external_id") == ours.get("external_id")
            and theirs.get("rating") == attributes.get("rating")
            and (theirs.get("title") or None) == (attributes.get("title") or None))


def attributes_of(submission: Submission) -> dict[str, Any]:
    return json.loads(submission.body)["data"]["attributes"]


def lookup_params(submission: Submission) -> dict[str, str]:
    """The first page's query: reviews created since the first attempt that could be it."""
    since = (submission.first_sent_at or submission.created_at).replace(microsecond=0)
    return {"filter": lookup_filter(attributes_of(submission), since), "sort": "created",
            "page[size]": str(PAGE_SIZE)}


def matches(document: dict[str, Any], submission: Submission) -> list[str]:
    """The ids of the reviews on this page that are the submission."""
    attributes = attributes_of(submission)
    return [review["id"] for review in document.get("data") or []
            if same_review(review, attributes)]
