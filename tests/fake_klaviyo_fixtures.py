"""Reviews and events the fake Klaviyo's read side serves, shaped like Klaviyo's answers.

Every status (rejected with each rejection reason), null product/email/author/content,
questions (rating null), public replies, smart quotes, photos (https and data: URIs),
unicode, and HTML/script payloads in every text field. `many_reviews` makes thousands of
ordinary ones for the mirror's sync, `touch` changes one as a moderation or an edit would.
"""

from __future__ import annotations

import random
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
# A review's facts that get_client_reviews filters on but no answer shows ({"incentivized":
# bool, "edited": bool}); the fake strips this entry from every answer, absent means false.
UNSHOWN = "unshown"


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


# -- many reviews, for the mirror's sync --------------------------------------------------
FIRST_NAMES = ["Ann", "Ben", "Chloé", "Dev", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jon",
               "Kai", "Lena", "Mia", "Noah", "Olu", "Priya", "Quinn", "Rosa", "Sam", "Tomás"]
LAST_NAMES = ["Baker", "Chen", "Dubois", "Evans", "Fischer", "García", "Haddad", "Ito",
              "Jensen", "Kowalski", "Lopez", "Murphy", "Nakamura", "Okafor", "Patel", "Rossi"]
ADJECTIVES = ["Linen", "Wool", "Cotton", "Merino", "Denim", "Silk", "Canvas", "Fleece"]
NOUNS = ["shirt", "scarf", "jacket", "socks", "tote bag", "beanie", "dress", "trousers",
         "hoodie", "apron", "blanket", "cardigan"]
OPENINGS = {
    5: ["Absolutely love it.", "Best purchase this year.", "Perfect in every way.",
        "Exceeded my expectations."],
    4: ["Really nice overall.", "Very happy with it.", "Good quality for the price.",
        "Would buy again."],
    3: ["It is fine.", "Decent, nothing special.", "Mixed feelings about this one.",
        "Okay for everyday use."],
    2: ["Not what I hoped for.", "Rather disappointed.", "Quality could be better.",
        "Had some problems with it."],
    1: ["Would not recommend.", "Fell apart quickly.", "Very poor quality.",
        "Sent it straight back."],
}
DETAILS = ["The fabric feels soft and sturdy.", "Fits true to size.", "Runs a little small.",
           "The colour is exactly as pictured.", "Washed well without shrinking.",
           "Shipping took longer than expected.", "Arrived well packed and on time.",
           "The stitching is neat.", "Keeps me warm on cold mornings.",
           "My partner borrowed it and will not give it back."]
TITLES = {5: ["Love it", "Perfect", "Five stars"], 4: ["Great value", "Very good"],
          3: ["Average", "It's okay"], 2: ["Meh", "Not great"], 1: ["Poor", "Disappointing"]}
QUESTIONS = ["Does it run large?", "Is it machine washable?", "Will it shrink in the dryer?",
             "Is the colour true to the photos?", "How long does delivery take?"]
STORE_NOTES = ["Fast shipping and friendly support.", "Easy returns, would order again.",
               "Lovely packaging and a handwritten note.", "Order arrived a day early."]
REPLIES = {"good": ["Thank you for your review!", "Glad you like it!"],
           "bad": ["Sorry to hear that, we have emailed you.", "A replacement is on its way."],
           "question": ["It runs true to size.", "Yes, it is machine washable at 30°C."]}
# Most are published; the weights of the mix many_reviews draws from.
STATUS_MIX = {"published": 70, "pending": 10, "featured": 6, "unpublished": 6, "rejected": 8}
TYPE_MIX = {"review": 78, "question": 9, "store": 8, "rating": 5}
RATING_MIX = {1: 5, 2: 5, 3: 10, 4: 25, 5: 55}
SPREAD = timedelta(weeks=16)


def catalogue(products: int) -> list[dict[str, Any]]:
    """`products` distinct products (external ids and names), the first ones the most
    reviewed."""
    return [product(str(7549950034135 + 7919 * k),
                    f"{ADJECTIVES[k % len(ADJECTIVES)]} {NOUNS[k % len(NOUNS)]}"
                    + (f" {k // (len(ADJECTIVES) * len(NOUNS)) + 1}"
                       if k >= len(ADJECTIVES) * len(NOUNS) else ""))
            for k in range(products)]


def many_reviews(count: int, start: datetime | None = None, products: int = 20,
                 seed: int = 1) -> list[dict[str, Any]]:
    """`count` ordinary review resources, the same for the same seed and `start`: mostly
    published (some pending, featured, unpublished, rejected with a reason), mostly reviews
    (some questions with rating null, store reviews without product, bare ratings), ratings
    skewed high, created over the 16 weeks before `start` (default now) and updated at or
    after that (never after `start`), some with https photos, public replies, smart quotes,
    or an incentive or edit that only the filters see (UNSHOWN)."""
    rng = random.Random(seed)
    end = start or datetime.now(UTC)
    end = end if end.tzinfo is not None else end.replace(tzinfo=UTC)
    end = end.replace(microsecond=0)
    items = catalogue(max(1, products))
    popular = [1 / (k + 1) ** 0.8 for k in range(len(items))]
    statuses = rng.choices(list(STATUS_MIX), list(STATUS_MIX.values()), k=count)
    types = rng.choices(list(TYPE_MIX), list(TYPE_MIX.values()), k=count)
    ratings = rng.choices(list(RATING_MIX), list(RATING_MIX.values()), k=count)
    chosen = rng.choices(items, popular, k=count)
    seen: set[str] = set()
    made: list[dict[str, Any]] = []
    for n in range(count):
        review_id = f"{rng.getrandbits(128):032x}"
        while review_id in seen:
            review_id = f"{rng.getrandbits(128):032x}"
        seen.add(review_id)
        status, review_type, rating = statuses[n], types[n], ratings[n]
        created = end - timedelta(seconds=rng.randrange(60, int(SPREAD.total_seconds())))
        if status == "pending" and rng.random() < 0.8:
            updated = created  # not looked at yet
        else:
            hours = min(rng.expovariate(1 / 30), (end - created).total_seconds() / 3600)
            updated = created + timedelta(seconds=int(hours * 3600))
        status_value: dict[str, Any] = {"value": status}
        if status == "rejected":
            reason = rng.choice([*REASONS, "other"])
            status_value["rejection_reason"] = {"reason": reason}
            if reason == "other":
                status_value["rejection_reason"]["status_explanation"] = "Duplicate review"
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = (f"{first.lower()}.{last.lower()}{rng.randrange(10_000)}@example.com"
                 .replace("é", "e").replace("á", "a").replace("í", "i"))
        item: dict[str, Any] | None = dict(chosen[n])
        title: str | None = rng.choice(TITLES[rating])
        content: str | None = (f"{rng.choice(OPENINGS[rating])} {rng.choice(DETAILS)}"
                               + (f" {rng.choice(DETAILS)}" if rng.random() < 0.4 else ""))
        stars: int | None = rating
        if review_type == "question":
            stars, title, content = None, None, rng.choice(QUESTIONS)
        elif review_type == "store":
            item, content = None, f"{rng.choice(OPENINGS[rating])} {rng.choice(STORE_NOTES)}"
        elif review_type == "rating":
            title = content = None
        images = ([f"https://images.example.com/reviews/{review_id}-{k}.jpg"
                   for k in range(1, rng.randint(1, 3) + 1)]
                  if review_type == "review" and rng.random() < 0.12 else [])
        shown = status in ("published", "featured")
        reply = None
        if (shown or status == "unpublished") and (
                review_type == "question" or rng.random() < 0.12) and updated > created:
            tone = ("question" if review_type == "question" else
                    "good" if rating >= 3 else "bad")
            reply = {"content": rng.choice(REPLIES[tone]), "author": "Linen & Co",
                     "updated": updated.isoformat()}
        quote = (content.split(".")[0] if shown and content and review_type == "review"
                 and rng.random() < 0.2 else None)
        made.append({
            "type": "review", "id": review_id,
            "attributes": {
                "email": email if rng.random() > 0.01 else None,
                "status": status_value,
                "verified": rng.random() < 0.75,
                "review_type": review_type,
                "created": created.isoformat(),
                "updated": updated.isoformat(),
                "images": images,
                "product": item,
                "rating": stars,
                "author": f"{first} {last[0]}.",
                "content": content,
                "title": title,
                "smart_quote": quote,
                "public_reply": reply,
            },
            "relationships": {"item": {"data": {
                "type": "catalog-item",
                "id": f"$shopify:::$default:::{item['external_id'] if item else 'none'}",
            }}},
            UNSHOWN: {"incentivized": rng.random() < 0.06, "edited": rng.random() < 0.04},
        })
    return made


def touch(review: dict[str, Any], **attributes: Any) -> dict[str, Any]:
    """Change a review as a moderation or an edit does in Klaviyo, and move its `updated` to
    now (ISO, +00:00; just after the old value if that is not earlier, so that it is always
    the newest change). A str `status` becomes `{"value": ...}` (rejected: reason "fake");
    `incentivized` / `edited` go to UNSHOWN. Returns the review."""
    attrs = review["attributes"]
    status = attributes.get("status")
    if isinstance(status, str):
        attributes["status"] = {"value": status}
        if status == "rejected":
            attributes["status"]["rejection_reason"] = {"reason": "fake"}
    for name in ("incentivized", "edited"):
        if name in attributes:
            review.setdefault(UNSHOWN, {})[name] = bool(attributes.pop(name))
    attrs.update(attributes)
    now = datetime.now(UTC)
    before = datetime.fromisoformat(attrs["updated"]) if attrs.get("updated") else None
    if before is not None:
        before = before if before.tzinfo is not None else before.replace(tzinfo=UTC)
        now = max(now, before + timedelta(microseconds=1))
    attrs["updated"] = now.astimezone(UTC).isoformat()
    return review
