"""The list's SQL over the mirror: every filter, the count, keyset pages in every sort, and
every match in batches; on SQLite and on Postgres."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest

from tests.fake_klaviyo_fixtures import review, reviews
from tests.moderation.mirror import store
from tests.services import postgres_database
from widget.moderation.listing import count_matches, every_match, read_page
from widget.moderation.query import SORTS, Listing
from widget.reviews.store import row_of

NOW = datetime(2025, 3, 1)

# (filters, which mirror rows they pick), the rows as widget/reviews/store.py keeps them.
FILTERS = [
    ({"status": "pending"}, lambda r: r["status"] == "pending"),
    ({"status": "rejected", "rating": 1}, lambda r: r["status"] == "rejected"
     and r["rating"] == 1),
    ({"rating_min": 4}, lambda r: (r["rating"] or 0) >= 4),
    ({"rating_max": 2}, lambda r: r["rating"] is not None and r["rating"] <= 2),
    ({"review_type": "question"}, lambda r: r["review_type"] == "question"),
    ({"verified": False}, lambda r: not r["verified"]),
    ({"created_from": date(2025, 1, 15)}, lambda r: r["created"] >= datetime(2025, 1, 15)),
    ({"created_to": date(2025, 1, 15)}, lambda r: r["created"] < datetime(2025, 1, 16)),
    ({"q": "WASHES"}, lambda r: "washes" in (r["content"] or "").lower()),
    ({"q": "shirt"}, lambda r: "shirt" in (r["content"] or "").lower()),
    ({"product": "xss-1"}, lambda r: r["product_external_id"] == "xss-1"),
    ({"product": "7549950034135"}, lambda r: r["product_external_id"] == "7549950034135"),
    ({"email": "PUB-Unicode@Example.COM"}, lambda r: r["email"] == "pub-unicode@example.com"),
    ({"media": "with"}, lambda r: r["has_media"]),
    ({"reply": "with"}, lambda r: r["has_reply"]),
    ({"media": "with", "reply": "with", "rating": 5}, lambda r: r["has_media"]
     and r["has_reply"] and r["rating"] == 5),
]


def resources():
    """The fake's fixtures, and three reviews created (and updated) at one moment."""
    same = "2025-01-20T08:00:00+00:00"
    return [*reviews(), *[review(f"tie-{n}", 0, rating=3, created=same, updated=same)
                          for n in "cab"]]


def mirrored(resources):
    """The mirror's rows of these resources, with the text the search reads."""
    rows = []
    for resource in resources:
        row = row_of(resource, NOW)
        row["content"] = resource["attributes"].get("content")
        rows.append(row)
    return rows


def sort_key(sort):
    name = sort.lstrip("-")
    return lambda r: ((r[name] or 0) if name == "rating" else r[name], r["id"])


def expected_ids(rows, sort="-created", where=lambda r: True):
    chosen = sorted((r for r in rows if where(r)), key=sort_key(sort),
                    reverse=sort.startswith("-"))
    return [r["id"] for r in chosen]


def engine_of(app):
    return app.extensions["mirror"].engine


def walk(engine, listing):
    """Every page forward from the first, then every page back from the last."""
    page = read_page(engine, listing)
    forward = [[r["id"] for r in page.reviews]]
    while page.next:
        page = read_page(engine, replace(listing, cursor=page.next))
        forward.append([r["id"] for r in page.reviews])
    backward = [forward[-1]]
    while page.prev:
        page = read_page(engine, replace(listing, cursor=page.prev))
        backward.append([r["id"] for r in page.reviews])
    return forward, backward[::-1]


@pytest.fixture
def mirror_app(app):
    """An app whose mirror holds resources()."""
    store(app, resources())
    with app.test_request_context():
        yield app


@pytest.mark.parametrize("filters,where", FILTERS, ids=[str(f) for f, _ in FILTERS])
def test_each_filter_picks_exactly_the_mirror_rows_it_names(mirror_app, filters, where):
    rows = mirrored(resources())
    engine = engine_of(mirror_app)
    listing = Listing(size=100, **filters)
    wanted = set(expected_ids(rows, where=where))
    assert wanted, "a filter that picks nothing proves little"
    assert {r["id"] for r in read_page(engine, listing).reviews} == wanted
    assert count_matches(engine, listing) == len(wanted)


def test_no_filter_and_status_all_count_every_review(mirror_app):
    assert count_matches(engine_of(mirror_app), Listing()) == len(resources())


def test_search_text_is_matched_literally_with_its_percent_and_underscore(app):
    store(app, [review("percent", 1, content="Now 50% off"),
                review("fifty", 2, content="Now 500 off"),
                review("under", 3, content="size a_b"), review("plain", 4, content="size axb"),
                review("slash", 5, content="path a/b\\c"), review("quote", 6, content='say "hi"')])
    engine = engine_of(app)
    for q, wanted in [("50%", {"percent"}), ("a_b", {"under"}), ("a/b\\c", {"slash"}),
                      ('"HI"', {"quote"}), ("%", {"percent"}), ("_", {"under"})]:
        assert {r["id"] for r in read_page(engine, Listing(q=q)).reviews} == wanted, q


@pytest.mark.parametrize("sort", SORTS)
def test_keyset_pages_follow_the_sort_with_ties_broken_by_id_both_ways(mirror_app, sort):
    engine = engine_of(mirror_app)
    rows = mirrored(resources())
    order = expected_ids(rows, sort)
    forward, backward = walk(engine, Listing(sort=sort, size=3))
    assert [i for page in forward for i in page] == order
    assert all(len(page) == 3 for page in forward[:-1])
    assert backward == forward  # Previous goes back through the very same pages


def test_a_page_stays_put_when_newer_reviews_arrive_between_two_loads(app):
    store(app, [review(f"old-{n:02d}", n) for n in range(10)])
    engine = engine_of(app)
    with app.test_request_context():
        first = read_page(engine, Listing(size=4))
        assert [r["id"] for r in first.reviews] == ["old-09", "old-08", "old-07", "old-06"]
        store(app, [review(f"new-{n}", 40 + n) for n in range(3)])  # before the cursor
        second = read_page(engine, Listing(size=4, cursor=first.next))
        assert [r["id"] for r in second.reviews] == ["old-05", "old-04", "old-03", "old-02"]
        back = read_page(engine, Listing(size=4, cursor=second.prev))
        assert [r["id"] for r in back.reviews] == [r["id"] for r in first.reviews]
        newest = read_page(engine, Listing(size=4, cursor=back.prev))
        assert [r["id"] for r in newest.reviews] == ["new-2", "new-1", "new-0"]
        assert newest.prev is None and newest.next is not None


def test_a_page_whose_rows_were_deleted_still_links_back(app):
    store(app, [review(f"r-{n}", n) for n in range(6)])
    engine = engine_of(app)
    first = read_page(engine, Listing(size=3))
    app.extensions["mirror"].drop_unseen(datetime.now() + timedelta(days=1))  # all gone
    empty = read_page(engine, Listing(size=3, cursor=first.next))
    assert empty.reviews == [] and empty.next is None and empty.prev is not None


def test_every_match_comes_in_batches_once_each_in_the_sort_order(mirror_app):
    rows = mirrored(resources())
    batches = list(every_match(engine_of(mirror_app), Listing(sort="rating", size=2), batch=4))
    assert [len(batch) for batch in batches] == [4, 4, 4, 4, 3]
    assert [r["id"] for batch in batches for r in batch] == expected_ids(rows, "rating")
    assert list(every_match(engine_of(mirror_app), Listing(product="none-such"))) == []


def test_the_same_queries_answer_the_same_on_postgres(make_app):
    with postgres_database() as url:
        app = make_app(DATABASE_URL=url)
        try:
            everything = [*resources(), review("percent", 1, content="Très 50% off")]
            store(app, everything)
            rows = mirrored(everything)
            engine = engine_of(app)
            with app.test_request_context():
                for filters, where in FILTERS:
                    listing = Listing(size=100, **filters)
                    assert {r["id"] for r in read_page(engine, listing).reviews} == \
                        set(expected_ids(rows, where=where)), filters
                    assert count_matches(engine, listing) == len(expected_ids(rows, where=where))
                assert [r["id"] for r in read_page(engine, Listing(q="TRÈS 50%")).reviews] \
                    == ["percent"]
                for sort in SORTS:
                    forward, backward = walk(engine, Listing(sort=sort, size=4))
                    assert [i for page in forward for i in page] == expected_ids(rows, sort)
                    assert backward == forward
        finally:
            app.extensions["outbox"].engine.dispose()
