"""The list as CSV: one row per review, cells a spreadsheet will not run as formulas.

A cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula (or becomes
one) in Excel, LibreOffice and Google Sheets; such cells get a leading `'`, which those
show as text (OWASP's "CSV injection"). Every other cell is written as it came.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

COLUMNS = ("id", "status", "rejection_reason", "type", "rating", "verified", "created",
           "updated", "product_id", "product_name", "author", "email", "title", "content",
           "photos", "public_reply", "smart_quote")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str | int:
    """A value as a CSV cell: numbers as they are, text neutralised, None empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def row(resource: dict[str, Any]) -> list[str | int]:
    """One review's cells, in COLUMNS' order."""
    attributes = resource.get("attributes") or {}
    status = attributes.get("status") or {}
    rejection = status.get("rejection_reason") or {}
    reason = rejection.get("reason")
    if reason and rejection.get("status_explanation"):
        reason = f"{reason} ({rejection['status_explanation']})"
    product = attributes.get("product") or {}
    reply = attributes.get("public_reply") or {}
    rating = attributes.get("rating")
    values = [
        resource.get("id"), status.get("value"), reason, attributes.get("review_type"),
        rating if isinstance(rating, int) and not isinstance(rating, bool) else None,
        bool(attributes.get("verified")), attributes.get("created"), attributes.get("updated"),
        product.get("external_id"), product.get("name"), attributes.get("author"),
        attributes.get("email"), attributes.get("title"), attributes.get("content"),
        len(attributes.get("images") or []), reply.get("content"),
        attributes.get("smart_quote"),
    ]
    return [cell(value) for value in values]


def chunks(batches: Iterable[list[dict[str, Any]]]) -> Iterator[str]:
    """The header line, then one chunk of CSV text per batch of reviews."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for batch in batches:
        writer.writerows(row(resource) for resource in batch)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()  # the header alone, when nothing matched
