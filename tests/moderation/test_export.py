"""GET /moderation/reviews.csv: every match of the list's filters, streamed, never stored,
with cells a spreadsheet would run as formulas neutralised."""

from __future__ import annotations

import csv
import io
import re

import pytest

from tests.fake_klaviyo_fixtures import XSS_CONTENT, XSS_TITLE, review, reviews
from tests.moderation.mirror import ids_on, store
from tests.moderation.test_views import MODERATOR
from widget.moderation.export import COLUMNS, cell


def download(app, query="", expect=200):
    response = app.test_client().get(f"/moderation/reviews.csv{query}", headers=MODERATOR)
    assert response.status_code == expect, response.get_data(as_text=True)[:2000]
    return response


def table(response):
    """The CSV's rows as dicts by column, after checking its header."""
    header, *rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert tuple(header) == COLUMNS
    return [dict(zip(header, row, strict=True)) for row in rows]


def test_the_csv_is_a_streamed_attachment_that_is_never_stored(moderation, fake_klaviyo):
    response = download(moderation)
    assert response.is_streamed
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="reviews.csv"'
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert len(table(response)) == len(reviews())
    assert fake_klaviyo.received == []


def test_it_holds_the_list_s_matches_in_the_list_s_order(moderation):
    query = "?status=rejected&sort=rating"
    listed = ids_on(moderation.test_client().get(f"/moderation/{query}&size=100",
                                                 headers=MODERATOR).get_data(as_text=True))
    assert [row["id"] for row in table(download(moderation, query))] == listed
    assert [row["id"] for row in table(download(moderation, "?media=with&reply=with"))] == \
        ["pub-unicode"]
    assert table(download(moderation, "?product=none-such")) == []


def test_each_column_holds_what_klaviyo_said(moderation):
    rows = {row["id"]: row for row in table(download(moderation))}
    assert rows["rej-other"] == {
        "id": "rej-other", "status": "rejected",
        "rejection_reason": "other (Duplicate of review pub-unicode)", "type": "review",
        "rating": "1", "verified": "true", "created": "2025-01-12T10:12:00+00:00",
        "updated": "2025-01-12T15:12:00+00:00", "product_id": "7549950034135",
        "product_name": "Linen shirt", "author": "Ann B.", "email": "rej-other@example.com",
        "title": "Same as before", "content": "Copy of my other review.", "photos": "0",
        "public_reply": "", "smart_quote": "Copy of my other review",
    }
    unicode = rows["pub-unicode"]
    assert (unicode["author"], unicode["photos"], unicode["public_reply"]) == \
        ("Zoë Ångström 🌟", "2", "Danke, Zoë!")
    assert (rows["question-size"]["rating"], rows["question-size"]["type"]) == ("", "question")
    assert rows["empty-fields"]["email"] == "" and rows["empty-fields"]["product_id"] == ""


def test_every_match_is_exported_beyond_one_batch(moderation):
    store(moderation, [review(f"bulk-{n:04d}", n % 40) for n in range(1234)])
    ids = [row["id"] for row in table(download(moderation))]
    assert len(ids) == len(set(ids)) == 1234 + len(reviews())


def test_cells_a_spreadsheet_would_run_as_formulas_get_a_leading_quote(moderation):
    store(moderation, [review(
        "formulas", 1, author='=HYPERLINK("https://evil.example","click")', title="+SUM(A1)",
        content="-2+3", smart_quote="@cmd|' /C calc'!A0", email="ann@example.com",
        product={"external_id": "\t=1", "name": "\r=2", "url": None, "image_url": None},
        public_reply={"content": "=1+1", "author": "x", "updated": None})])
    row = {r["id"]: r for r in table(download(moderation))}["formulas"]
    assert row["author"] == '\'=HYPERLINK("https://evil.example","click")'
    assert (row["title"], row["content"], row["smart_quote"]) == \
        ("'+SUM(A1)", "'-2+3", "'@cmd|' /C calc'!A0")
    assert (row["product_id"], row["product_name"], row["public_reply"]) == \
        ("'\t=1", "'\r=2", "'=1+1")
    assert row["email"] == "ann@example.com" and row["rating"] == "4"


@pytest.mark.parametrize("value,expected", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(1)", "'@SUM(1)"),
    ("\tx", "'\tx"), ("\rx", "'\rx"), ("a=b", "a=b"), ("", ""), (None, ""), (3, 3),
    (True, "true"), ("2025-01-07", "2025-01-07"),
])
def test_a_cell_is_neutralised_only_when_it_starts_like_a_formula(value, expected):
    assert cell(value) == expected


def test_review_text_is_plain_text_in_the_csv_as_it_was_written(moderation):
    response = download(moderation, "?status=pending")
    row = {r["id"]: r for r in table(response)}["xss-payload"]
    assert (row["title"], row["content"]) == (XSS_TITLE, XSS_CONTENT)
    assert response.mimetype == "text/csv"  # never rendered as a page


def test_bad_filters_explain_themselves_instead_of_a_file(moderation):
    response = download(moderation, "?rating=9&page=2", expect=400)
    page = response.get_data(as_text=True)
    assert response.mimetype == "text/html"
    assert "These filters cannot be used" in page and re.search(r"rating: Must be", page)
