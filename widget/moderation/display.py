"""How the moderation templates show Klaviyo's values: stars, dates, safe links and photos.

Jinja escapes every value; these helpers add what escaping cannot: a link or photo address
is used only when its scheme is harmless (no `javascript:`), never marked safe.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

# The attributes Klaviyo documents for a review (get_review, revision 2026-07-15); the detail
# page shows any other attribute too, as text, so nothing Klaviyo returns goes unseen.
KNOWN_ATTRIBUTES = frozenset({
    "email", "status", "verified", "review_type", "created", "updated", "images", "product",
    "rating", "author", "content", "title", "smart_quote", "public_reply",
})
DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=]+$")


def stars(rating: Any) -> str:
    """'★★☆☆☆' for 2; empty for a question (rating null) or anything not 1-5."""
    if isinstance(rating, bool) or rating not in (1, 2, 3, 4, 5):
        return ""
    return "★" * rating + "☆" * (5 - rating)


def when(value: Any) -> str:
    """Klaviyo's ISO datetime as 'YYYY-MM-DD HH:MM UTC'; anything else as it came."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return "" if value is None else str(value)
    if moment.tzinfo is not None:  # naive datetimes (the outbox's) are UTC already
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def web_link(url: Any) -> str | None:
    """The address when it is http(s), else None (the page shows it as text instead)."""
    if isinstance(url, str) and url.lower().startswith(("https://", "http://")):
        return url
    return None


def photo_src(url: Any) -> str | None:
    """An <img> source when it is https or an image data: URI, else None."""
    if isinstance(url, str) and (url.lower().startswith("https://") or DATA_IMAGE.match(url)):
        return url
    return None


def age(moment: datetime | None, now: datetime) -> str:
    """'45 s', '12 min', '3 h', '2 d' between two naive UTC datetimes."""
    if moment is None:
        return ""
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def count_of(number: int, one: str, many: str | None = None) -> str:
    """'1 review', '1,234 reviews': the number and the noun that agrees with it."""
    return f"{number:,} {one if number == 1 else many or one + 's'}"


def extra_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in attributes.items() if key not in KNOWN_ATTRIBUTES}


HELPERS = {"stars": stars, "when": when, "web_link": web_link, "photo_src": photo_src,
           "age": age, "count_of": count_of}
