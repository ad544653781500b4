"""The list's query string -> Klaviyo's filter, sort and paging, and the fake's filter parser."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from tests.fake_klaviyo_fixtures import reviews
from tests.fake_klaviyo_reads import FilterError, matches, parse_filter
from widget.moderation.query import ListQuery, ReviewPath


def load(**query):
    return ListQuery().load(query)


def errors(**query):
    with pytest.raises(ValidationError) as caught:
        load(**query)
    return caught.value.messages


def test_an_empty_query_asks_for_every_status_newest_first_twenty_a_page():
    assert load().params() == {"filter": 'equals(status,"all")', "sort": "-created",
                               "page[size]": "20"}


def test_blank_form_fields_mean_unset_and_text_is_trimmed():
    listing = load(status="", rating="", verified="", q="  wash  ", created_to="")
    assert listing.filter() == 'and(equals(status,"all"),contains(content,"wash"))'
    assert listing.query() == {"status": "all", "q": "wash", "sort": "-created", "size": "20"}


@pytest.mark.parametrize("query,condition", [
    ({"status": "featured"}, 'equals(status,"featured")'),
    ({"rating": "3"}, "equals(rating,3)"),
    ({"rating_min": "4"}, "greater-or-equal(rating,4)"),
    ({"rating_max": "2"}, "less-or-equal(rating,2)"),
    ({"review_type": "question"}, 'equals(review_type,"question")'),
    ({"verified": "false"}, "equals(verified,false)"),
    ({"created_from": "2025-02-01"}, "greater-or-equal(created,2025-02-01T00:00:00+00:00)"),
    ({"created_to": "2025-02-01"}, "less-or-equal(created,2025-02-01T23:59:59+00:00)"),
    ({"q": "true to size"}, 'contains(content,"true to size")'),
])
def test_each_filter_becomes_the_condition_klaviyo_documents(query, condition):
    assert condition in load(**query).filter()


def test_every_expression_we_build_parses_in_klaviyo_syntax_and_selects_the_right_reviews():
    listing = load(status="rejected", rating_min="1", rating_max="1", verified="true",
                   created_from="2025-01-10", created_to="2025-01-31", q="WASHES",
                   review_type="review")
    conditions = parse_filter(listing.filter())
    assert len(conditions) == 8
    chosen = [r["id"] for r in reviews() if all(matches(r, c) for c in conditions)]
    assert chosen == ["rej1-0", "rej1-2", "rej1-4"]


def test_the_cursor_travels_to_klaviyo_and_back_into_our_links():
    listing = load(status="pending", cursor="eyJvIjogMn0")
    assert listing.params()["page[cursor]"] == "eyJvIjogMn0"
    assert listing.query(cursor="abc")["cursor"] == "abc"
    assert "cursor" not in listing.query()


@pytest.mark.parametrize("query,field", [
    ({"status": "deleted"}, "status"),
    ({"rating": "0"}, "rating"),
    ({"rating": "4.5"}, "rating"),
    ({"rating_min": "5", "rating_max": "1"}, "rating_min"),
    ({"review_type": "video"}, "review_type"),
    ({"verified": "maybe"}, "verified"),
    ({"created_from": "yesterday"}, "created_from"),
    ({"created_from": "2025-03-02", "created_to": "2025-03-01"}, "created_from"),
    ({"q": 'say "hi"'}, "q"),
    ({"q": "back\\slash"}, "q"),
    ({"q": "x" * 201}, "q"),
    ({"sort": "title"}, "sort"),
    ({"size": "101"}, "size"),
    ({"size": "0"}, "size"),
    ({"cursor": "has space"}, "cursor"),
    ({"page": "2"}, "page"),
])
def test_values_klaviyo_would_refuse_or_that_could_break_the_expression_are_errors(
        query, field):
    assert field in errors(**query)


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
