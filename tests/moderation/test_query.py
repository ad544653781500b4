"""The list's query string -> a Listing (filters, sort, our signed cursor); the fake's filter
parser."""

from __future__ import annotations

from datetime import datetime

import pytest
from marshmallow import ValidationError

from tests.fake_klaviyo_reads import FilterError, parse_filter
from widget.moderation.query import Cursor, Listing, ListQuery, ReviewPath


def load(**query):
    return ListQuery().load(query)


def errors(**query):
    with pytest.raises(ValidationError) as caught:
        load(**query)
    return caught.value.messages


def test_an_empty_query_asks_for_every_status_newest_first_twenty_a_page():
    assert load() == Listing(status="all", sort="-created", size=20)
    assert load().query() == {"status": "all", "sort": "-created", "size": "20"}


def test_blank_form_fields_mean_unset_and_text_is_trimmed():
    listing = load(status="", rating="", verified="", q="  wash  ", created_to="", media="")
    assert (listing.q, listing.rating, listing.media) == ("wash", None, None)
    assert listing.query() == {"status": "all", "q": "wash", "sort": "-created", "size": "20"}


@pytest.mark.parametrize("query,expected", [
    ({"product": "7549950034135"}, {"product": "7549950034135"}),
    ({"product": "SKU 12/b"}, {"product": "SKU 12/b"}),
    ({"email": "Ann@Example.com"}, {"email": "Ann@Example.com"}),
    ({"media": "with"}, {"media": "with"}),
    ({"reply": "with"}, {"reply": "with"}),
    ({"q": '50% "off" _now_'}, {"q": '50% "off" _now_'}),
    ({"verified": "false"}, {"verified": False}),
])
def test_the_new_filters_load_as_typed(query, expected):
    listing = load(**query)
    assert {name: getattr(listing, name) for name in expected} == expected
    assert all(listing.query()[name] == value for name, value in query.items())


@pytest.mark.parametrize("query,field", [
    ({"status": "deleted"}, "status"),
    ({"rating": "0"}, "rating"),
    ({"rating": "4.5"}, "rating"),
    ({"rating_min": "5", "rating_max": "1"}, "rating_min"),
    ({"review_type": "video"}, "review_type"),
    ({"verified": "maybe"}, "verified"),
    ({"created_from": "yesterday"}, "created_from"),
    ({"created_from": "2025-03-02", "created_to": "2025-03-01"}, "created_from"),
    ({"q": "bell\x07"}, "q"),
    ({"q": "x" * 201}, "q"),
    ({"product": "x" * 256}, "product"),
    ({"product": "a\nb"}, "product"),
    ({"product": "\u202eevil"}, "product"),
    ({"email": "x" * 321}, "email"),
    ({"email": "ann\x00@example.com"}, "email"),
    ({"media": "without"}, "media"),
    ({"media": "true"}, "media"),
    ({"reply": "none"}, "reply"),
    ({"sort": "title"}, "sort"),
    ({"size": "101"}, "size"),
    ({"size": "0"}, "size"),
    ({"cursor": "has space"}, "cursor"),
    ({"cursor": "eyJvIjogMn0"}, "cursor"),
    ({"page": "2"}, "page"),
])
def test_values_outside_the_rules_are_errors_naming_their_field(app, query, field):
    with app.test_request_context():
        assert field in errors(**query)


def test_a_cursor_goes_round_trip_through_our_links(app):
    with app.test_request_context():
        cursor = Cursor("-created", datetime(2025, 1, 7, 9, 37), "pub-unicode")
        token = load(sort="-created").query(cursor)["cursor"]
        assert "pub-unicode" not in token and "2025" not in token  # opaque
        assert load(cursor=token).cursor == cursor
        back = Cursor("rating", 0, "question-size", backward=True)
        assert load(sort="rating", cursor=back.token()).cursor == back
        assert "cursor" not in load().query() and "cursor" not in load().query(paged=False)
        assert "size" not in load(size="5").query(cursor, paged=False)


def test_a_changed_foreign_or_other_sort_cursor_is_refused(app, make_app):
    with app.test_request_context():
        token = Cursor("-created", datetime(2025, 1, 7), "pub-unicode").token()
        payload, signature = token.rsplit(".", 1)
        forged = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + signature
        assert "not valid any more" in errors(cursor=forged)["cursor"][0]
        assert "another sort order" in errors(cursor=token, sort="rating")["cursor"][0]
    with make_app(SECRET_KEY="another-secret").test_request_context():
        assert "not valid any more" in errors(cursor=token)["cursor"][0]


@pytest.mark.parametrize("review_id", ["", "..", "a/b", "a b", "x" * 65, "<script>"])
def test_only_plain_review_ids_are_accepted(review_id):
    with pytest.raises(ValidationError):
        ReviewPath().load({"id": review_id})
    assert ReviewPath().load({"id": "925e385b52fb405715f3616c337cc65c"})


@pytest.mark.parametrize("expression", [
    "equals(created,2025-01-01T00:00:00+00:00)",
    'greater-or-equal(created,"2025-01-01T00:00:00+00:00")',
    "contains(title,\"x\")",
    "equals(status,rejected)",
    'equals(status,"deleted")',
    "greater-or-equal(status,\"x\")",
    "or(equals(rating,1),equals(rating,2))",
    "equals(rating,1",
    "",
])
def test_the_fake_refuses_filters_klaviyo_documents_as_invalid(expression):
    with pytest.raises(FilterError):
        parse_filter(expression)


def test_the_fake_accepts_klaviyo_list_and_comma_forms():
    assert parse_filter('any(rating,[1,2]),equals(id,"rej-other")') == [
        ("any", "rating", [1, 2]), ("equals", "id", "rej-other"),
    ]
