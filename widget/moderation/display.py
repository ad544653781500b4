"""How the moderation templates show Klaviyo's values: stars, dates, safe links and photos.

A link or photo address is used only when its scheme is harmless (no `javascript:`). The
pieces each row of the list repeats are built here rather than in macros (a page of 20 rows
cost 500 macro calls, most of its time): they return Markup, every value in it passed
through markupsafe.escape, as Jinja would have escaped it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Undefined
from markupsafe import Markup, escape

# The attributes Klaviyo documents for a review (get_review, revision 2026-07-15); the detail
# page shows any other attribute too, as text, so nothing Klaviyo returns goes unseen.
KNOWN_ATTRIBUTES = frozenset({
    "email", "status", "verified", "review_type", "created", "updated", "images", "product",
    "rating", "author", "content", "title", "smart_quote", "public_reply",
})
DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=]+$")
# What werkzeug leaves unquoted in a path segment and in a query string, so the links built
# here read exactly as url_for's (which cost a third of the list page, one per row link).
PATH_SAFE = "!$&'()*+,/:;=@"
QUERY_SAFE = "!$'()*,/:;?@"
# What a key a resource lacks reads as here, as in a template: it prints as "", is false and
# equals nothing. So an absent email (the client API sends none) shows as nothing, a null
# one as "(no email)", as the list's template showed them.
ABSENT = Undefined()
# The list shows this much of a review's text (Jinja's truncate: 5 more are let through).
EXCERPT = 160


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


def with_segment(url: str, segment: Any) -> str:
    """`url` with one more path segment, quoted as url_for quotes it."""
    return url + quote(str(segment), safe=PATH_SAFE)


def with_query(url: str, query: Mapping[str, Any]) -> str:
    """`url` with this query string (None values left out), encoded as url_for encodes it."""
    items = [(name, value) for name, value in query.items() if value is not None]
    return f"{url}?{urlencode(items, safe=QUERY_SAFE)}" if items else url


def _get(mapping: Any, key: str) -> Any:
    """mapping[key] as a template reads it: ABSENT when missing or not a mapping."""
    return mapping.get(key, ABSENT) if isinstance(mapping, dict) else ABSENT


def excerpt(text: str, length: int = EXCERPT) -> str:
    """The text cut at a word boundary with '...', as Jinja's truncate(length) cuts it."""
    if len(text) <= length + 5:
        return text
    return text[:length - 3].rsplit(" ", 1)[0] + "..."


def text_or(value: Any, missing: str = "—") -> Markup:
    """The value, or a muted placeholder when it is None or empty."""
    if value is None or value == "":
        return Markup(f'<span class="muted">{escape(missing)}</span>')
    return escape(value)


def rating_label(value: Any, review_type: Any) -> Markup:
    """The stars, read out as 'n of 5 stars', or why there are none."""
    shown = stars(value)
    if shown:
        return Markup(f'<span class="stars" role="img" aria-label="{escape(value)} of 5 stars">'
                      f"{shown}</span>")
    if review_type == "question":
        return Markup('<span class="muted">question (no rating)</span>')
    return Markup('<span class="muted">no rating</span>')


def status_label(value: Any) -> Markup:
    """Klaviyo's status of a review, with the rejection reason and its explanation if any."""
    if not value:
        return Markup('<span class="muted">no status</span>')
    name = escape(_get(value, "value"))
    shown = f'<span class="status status-{name}">{name}</span>'
    reason = _get(value, "rejection_reason")
    if reason:
        explanation = _get(reason, "status_explanation")
        shown += (f' <span class="reason">reason: {escape(_get(reason, "reason"))}'
                  + (f" ({escape(explanation)})" if explanation else "") + "</span>")
    return Markup(shown)


def link_or_text(url: Any, label: Any) -> Markup:
    """The label as a link when the address is http(s), else with the address as text."""
    link = web_link(url)
    if link:
        return Markup(f'<a href="{escape(link)}" rel="noopener noreferrer" target="_blank">'
                      f"{escape(label)}</a>")
    if url:
        return Markup(f'{escape(label)} <span class="muted">(link not shown: {escape(url)})'
                      "</span>")
    return escape(label)


def photo_list(images: Any, size: str = "thumb") -> Markup:
    """The review's photos as linked <img>s (`size` is their class); others as text."""
    if not images:
        return Markup('<span class="muted">none</span>')
    shown = []
    for number, url in enumerate(images, 1):
        src = photo_src(url)
        if src:
            shown.append(f'<li><a href="{escape(web_link(url) or "#")}" rel="noopener noreferrer"'
                         f' target="_blank"><img class="{escape(size)}" src="{escape(src)}"'
                         f' alt="Photo {number}" loading="lazy" referrerpolicy="no-referrer">'
                         "</a></li>")
        else:
            shown.append(f'<li><span class="muted">photo not shown (not https): {escape(url)}'
                         "</span></li>")
    return Markup(f'<ul class="photos">{"".join(shown)}</ul>')


def review_row(item: dict[str, Any], list_url: str, review_url: str) -> Markup:
    """One <tr> of the list, its cells in the order of index.html's column heads; links to
    the review (`review_url` + id) and to the list filtered by its email or product."""
    a = _get(item, "attributes") or {}
    review_id, review_type = _get(item, "id"), _get(a, "review_type")
    email, content = _get(a, "email"), _get(a, "content")
    if email:
        email_shown = (f'<a href="{escape(with_query(list_url, {"email": email}))}" '
                       f'title="Every review from this email">{escape(email)}</a>')
    else:
        email_shown = text_or(email, "(no email)")
    return Markup(
        f'<tr class="review" data-review-id="{escape(review_id)}">'
        f"<td>{rating_label(_get(a, 'rating'), review_type)}<br>"
        f'<span class="muted">{escape(review_type)}</span></td>'
        f'<td><a class="title" href="{escape(with_segment(review_url, review_id))}">'
        f'{text_or(_get(a, "title"), "(no title)")}</a>'
        f'<p class="excerpt">{text_or(excerpt(content) if content else None, "(no text)")}</p>'
        f"</td><td>{text_or(_get(a, 'author'), '(no author)')}<br>"
        f'<span class="email">{email_shown}</span></td>'
        f"<td>{_product(_get(a, 'product'), list_url)}</td>"
        f"<td>{status_label(_get(a, 'status'))}</td>"
        f"<td>{'yes' if _get(a, 'verified') else 'no'}</td>"
        f"<td>{photo_list(_get(a, 'images'))}</td>"
        f'<td class="dates"><span title="created">{escape(when(_get(a, "created")))}</span><br>'
        f'<span class="muted" title="updated">updated {escape(when(_get(a, "updated")))}</span>'
        "</td></tr>")


def _product(product: Any, list_url: str) -> str:
    """The product's name (linked to the shop when https) and its id, linked to its reviews."""
    if not product:
        return '<span class="muted">(no product)</span>'
    shown = str(link_or_text(_get(product, "url"), _get(product, "name")))
    external_id = _get(product, "external_id")
    if external_id:
        link = with_query(list_url, {"product": external_id})
        shown += (f'<br><a class="muted product-id" href="{escape(link)}" '
                  f'title="Every review of this product">id {escape(external_id)}</a>')
    return shown


def options(choices: Iterable[str | tuple[str, str]], selected: Any) -> Markup:
    """A filter's <option>s, each a value or (value, label); the form's value is selected."""
    selected = selected or ""
    shown = []
    for choice in choices:
        value, label = (choice, choice) if isinstance(choice, str) else choice
        mark = " selected" if selected == value else ""
        shown.append(f'<option value="{escape(value)}"{mark}>{escape(label)}</option>')
    return Markup("".join(shown))


def extra_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in attributes.items() if key not in KNOWN_ATTRIBUTES}


HELPERS = {"stars": stars, "when": when, "web_link": web_link, "photo_src": photo_src,
           "age": age, "count_of": count_of, "with_segment": with_segment,
           "with_query": with_query, "text_or": text_or, "rating_label": rating_label,
           "status_label": status_label, "link_or_text": link_or_text,
           "photo_list": photo_list, "options": options, "review_row": review_row}
