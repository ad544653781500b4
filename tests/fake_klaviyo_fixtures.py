"""Reviews and events the fake Klaviyo's read side serves, shaped like Klaviyo's answers.

Every status (rejected with each rejection reason), null product/email/author/content,
questions (rating null), public replies, smart quotes, photos (https and data: URIs),
unicode, and HTML/script payloads in every text field.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

# A valid 1x1 PNG: the data: URI photo.
PNG_1PX = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
           "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
XSS_TITLE = "<script>window.__pwned = 'title'; alert('title')</script>"
XSS_CONTENT = "Nice <img src=x onerror=\"window.__pwned='content'; alert('content')\"> shirt"
START = datetime(2025, 1, 6, 9, 30, tzinfo=UTC)
REASONS = ["fake", "false_or_misleading", "private_information", "profanity_or_inappropriate",
           "unrelated"]


def product(external_id: str = "7549950034135", name: str = "Linen shirt") -> dict[str, Any]:
    return {"url": f"https://shop.example.com/products/{external_id}", "name": name,
            "image_url": f"https://cdn.example.com/products/{external_id}.jpg",
            "external_id": external_id}


def review(review_id: str, day: int, status: str = "published", **attributes: Any) -> dict:
    """One review resource as Klaviyo returns it (without the links the fake adds)."""
    created = START + timedelta(days=day, minutes=day * 7)
    status_value: dict[str, Any] = {"value": status}
    if status == "rejected":
        status_value["rejection_reason"] = attributes.pop("rejection_reason", {"reason": "fake"})
    attrs: dict[str, Any] = {
        "email": f"{review_id}@example.com",
        "status": status_value,
        "verified": True,
        "review_type": "review",
        "created": created.isoformat(),
        "updated": (created + timedelta(hours=5)).isoformat(),
        "images": [],
        "product": product(),
        "rating": 4,
        "author": "Ann B.",
        "content": "Lovely shirt, true to size.",
        "title": "Great fit",
        "smart_quote": None,
        "public_reply": None,
    }
    attrs.update(attributes)
    item_id = (attrs["product"] or {}).get("external_id") or "none"
    return {"type": "review", "id": review_id, "attributes": attrs,
            "relationships": {"item": {"data": {"type": "catalog-item",
                                                "id": f"$shopify:::$default:::{item_id}"}}}}


def reviews() -> list[dict[str, Any]]:
    """A fresh copy of every fixture review (tests may change their own copy)."""
    rejected_one_star = [
        review(f"rej1-{n}", day=10 + n, status="rejected", rating=1, verified=n % 2 == 0,
               title=f"Awful, number {n}", content=f"Fell apart after {n + 1} washes.",
               rejection_reason={"reason": reason})
        for n, reason in enumerate(REASONS)
    ]
    return [
        review("pub-unicode", 1, rating=5, author="Zoë Ångström 🌟", title="Très bien — 很好",
               content="Perfekt passform. „Schön“ ✓ 👕", images=[
                   "https://images.example.com/reviews/pub-unicode-1.jpg",
                   "https://images.example.com/reviews/pub-unicode-2.jpg",
               ],
               smart_quote="Perfekt passform",
               public_reply={"content": "Danke, Zoë!", "author": "Linen & Co",
                             "updated": "2025-01-09T10:00:00+00:00"}),
        review("featured-store", 2, status="featured", rating=5, review_type="store",
               product=None, title="Fast shipping", content="Arrived in two days."),
        review("unpublished-3", 3, status="unpublished", rating=3, verified=False),
        review("pending-anon", 4, status="pending", rating=2, email=None, author=None),
        review("question-size", 5, review_type="question", rating=None, title=None,
               content="Does it run large?",
               public_reply={"content": "It runs true to size.", "author": "Linen & Co",
                             "updated": "2025-01-12T08:00:00+00:00"}),
        review("rej-other", 6, status="rejected", rating=1, title="Same as before",
               content="Copy of my other review.", smart_quote="Copy of my other review",
               rejection_reason={"reason": "other",
                                 "status_explanation": "Duplicate of review pub-unicode"}),
        review("empty-fields", 7, status="published", rating=3, content=None, title=None,
               product=None, email=None, author=None),
        review("photo-data-uri", 8, rating=4, images=[PNG_1PX, "http://insecure.example.com/x.jpg",
                                                      "javascript:alert('photo')"]),
        review("xss-payload", 9, status="pending", rating=2, title=XSS_TITLE, content=XSS_CONTENT,
               author="\"><svg onload=\"window.__pwned='author'\">",
               smart_quote="<b onmouseover=\"window.__pwned='quote'\">bold</b>",
               product={"url": "javascript:window.__pwned='link'", "external_id": "xss-1",
                        "name": "<script>window.__pwned='product'</script>",
                        "image_url": "javascript:alert('product image')"},
               public_reply={"content": "<iframe src=\"javascript:alert('reply')\"></iframe>",
                             "author": "<i>Shop</i>", "updated": "2025-01-20T08:00:00+00:00"}),
        *rejected_one_star,
        review("rej2-two-stars", 16, status="rejected", rating=2,
               rejection_reason={"reason": "unrelated"}),
        review("pub-one-star", 17, rating=1, title="Not for me"),
    ]


def events_for() -> dict[str, list[dict[str, Any]]]:
    """Related events by review id (served with include=events)."""
    events: dict[str, list[dict[str, Any]]] = {}
    for item in reviews():
        created = datetime.fromisoformat(item["attributes"]["created"])
        events[item["id"]] = [{
            "type": "event", "id": f"evt-{item['id']}",
            "attributes": {
                "timestamp": int(created.timestamp()),
                "datetime": created.isoformat(),
                "uuid": f"uuid-{item['id']}",
                "event_properties": {"Rating": item["attributes"]["rating"],
                                     "Source": "<script>window.__pwned='event'</script>"
                                     if item["id"] == "xss-payload" else "Review widget"},
            },
            "relationships": {
                "metric": {"data": {"type": "metric", "id": "SubmittedReview"}},
                "profile": {"data": {"type": "profile", "id": f"profile-{item['id']}"}},
            },
            "links": {"self": f"https://a.klaviyo.com/api/events/evt-{item['id']}/"},
        }]
    return events
