"""The public display (/reviews, /reviews.json): what it shows of the mirror, and what never."""

from __future__ import annotations

import gzip
import json
import re
import time
from html import unescape

import pytest

from tests.fake_klaviyo_fixtures import XSS_CONTENT, XSS_TITLE, many_reviews, product, review
from tests.moderation.mirror import CHECK_SECONDS, sync
from widget.reviews.display import PAGE_SIZE

SHIRT = "7549950034135"


def fill(app, resources):
    app.extensions["mirror"].upsert(resources)


def shirt_reviews():
    """Eight shown reviews of the shirt (ratings 5,5,4,4,3,2,1,5 from newest to oldest), two
    questions, one store review, and one of each status that is never shown."""
    ratings = [5, 5, 4, 4, 3, 2, 1, 5]
    shown = [review(f"r{n}", day=100 - n, rating=rating, author=f"Author {n}",
                    title=f"Title {n}", content=f"Text {n}", email=f"secret{n}@example.com",
                    status="featured" if n == 3 else "published",
                    images=["https://cdn.example.com/p/1.jpg"] if n in (4, 6) else [])
             for n, rating in enumerate(ratings)]
    questions = [review("q1", day=99, review_type="question", rating=None,
                        content="Does it shrink?", author="Curious",
                        public_reply={"content": "Not at all.", "author": "Shop",
                                      "updated": "2025-05-01T00:00:00+00:00"}),
                 review("q2", day=98, review_type="question", rating=None,
                        content="Is it linen?", author="Asker")]
    store = [review("s1", day=97, review_type="store", rating=1, product=None,
                    content="Slow shipping")]
    hidden = [review(f"h-{status}", day=101, status=status, rating=1,
                     content=f"Hidden {status}", title=f"Hidden {status}")
              for status in ("pending", "rejected", "unpublished")]
    return shown + questions + store + hidden


@pytest.fixture
def shop(make_app):
    app = make_app()
    fill(app, shirt_reviews())
    return app


@pytest.fixture
def get(shop):
    client = shop.test_client()

    def get(url, expect=200, **kwargs):
        response = client.get(url, **kwargs)
        assert response.status_code == expect, response.get_data(as_text=True)[:2000]
        return response
    return get


def listed(html):
    return re.findall(r'<h3 dir="auto">([^<]*)</h3>', html)


def visible_text(html):
    return unescape(re.sub(r"<[^>]+>", " ", re.sub(r"<script.*?</script>", "", html, flags=re.S)))


# -- what is shown ------------------------------------------------------------------------------
def test_the_summary_averages_the_shown_reviews_to_one_decimal_with_a_histogram(get):
    data = get(f"/reviews.json?product_id={SHIRT}").get_json()
    assert data["summary"] == {"average": 3.6, "count": 8, "questions": 2,
                               "histogram": {"5": 3, "4": 2, "3": 1, "2": 1, "1": 1}}
    html = get(f"/reviews?product_id={SHIRT}").get_data(as_text=True)
    assert "3.6 out of 5" in html and "8 reviews" in html
    assert "Questions (2)" in html and "Reviews (8)" in html


def test_pending_rejected_and_unpublished_reviews_and_emails_are_never_shown(get):
    for url in (f"/reviews?product_id={SHIRT}", f"/reviews.json?product_id={SHIRT}",
                f"/reviews?product_id={SHIRT}&type=question", "/reviews?type=store",
                "/reviews.json?type=store", f"/reviews?product_id={SHIRT}&rating=1"):
        text = get(url).get_data(as_text=True)
        assert "Hidden" not in text and "@example.com" not in text, url


def test_a_review_shows_author_date_stars_title_text_photos_badges_and_reply(make_app):
    app = make_app()
    fill(app, [review("x", day=3, rating=4, author="Priya R.", title="Soft", verified=True,
                      content="Lovely\nfabric", smart_quote="Lovely fabric",
                      images=["https://cdn.example.com/x/1.jpg", "javascript:alert(1)"],
                      public_reply={"content": "Thank you!", "author": "Linen Co",
                                    "updated": "2025-02-01T00:00:00+00:00"})])
    html = app.test_client().get(f"/reviews?product_id={SHIRT}").get_data(as_text=True)
    assert "Priya R." in html and '<h3 dir="auto">Soft</h3>' in html and "Verified buyer" in html
    assert 'aria-label="Rated 4 out of 5"' in html and "★★★★☆" in html
    assert '<time datetime="2025-01-09">Jan 9, 2025</time>' in html
    assert "Lovely\nfabric" in html and 'class="kr-quote"' in html
    assert "Reply from Linen Co" in html and "Thank you!" in html
    assert 'src="https://cdn.example.com/x/1.jpg"' in html and 'loading="lazy"' in html
    assert html.count('href="https://cdn.example.com/x/1.jpg"') == 1  # opens larger
    assert "javascript:" not in html


def test_questions_have_a_tab_of_their_own_with_the_public_reply_as_answer(get):
    html = get(f"/reviews?product_id={SHIRT}&type=question").get_data(as_text=True)
    assert "Does it shrink?" in html and "Answer from Shop" in html and "Not at all." in html
    assert "Is it linen?" in html and "Not answered yet." in html
    assert listed(html) == [] and 'aria-current="page">Questions (2)' in html
    data = get(f"/reviews.json?product_id={SHIRT}&type=question").get_json()
    assert [r["id"] for r in data["reviews"]] == ["q1", "q2"]
    assert data["reviews"][0]["reply"]["content"] == "Not at all."


def test_store_reviews_are_listed_apart_and_never_count_for_a_product(get):
    data = get("/reviews.json?type=store").get_json()
    assert [r["id"] for r in data["reviews"]] == ["s1"]
    assert data["summary"]["count"] == 1 and data["jsonld"] is None
    assert data["product"] is None
    html = get("/reviews?type=store").get_data(as_text=True)
    assert "Reviews of our shop" in html and "Slow shipping" in html
    assert "application/ld+json" not in html and "Questions (" not in html
    assert "Slow shipping" not in get(f"/reviews?product_id={SHIRT}").get_data(as_text=True)
    assert get("/reviews.json").get_json()["type"] == "store"  # no product: the shop's
    named = get(f"/reviews?type=store&product_id={SHIRT}&product_name=Linen%20shirt")
    assert "Linen shirt" not in named.get_data(as_text=True)  # a product page's snippet


@pytest.mark.parametrize("sort, expected", [
    ("newest", [0, 1, 2, 3, 4, 5, 6, 7]),
    ("highest", [0, 1, 7, 2, 3, 4, 5, 6]),
    ("lowest", [6, 5, 4, 2, 3, 0, 1, 7]),
    ("photos", [4, 6, 0, 1, 2, 3, 5, 7]),
])
def test_each_sort_orders_the_reviews(get, sort, expected):
    html = get(f"/reviews?product_id={SHIRT}&sort={sort}").get_data(as_text=True)
    assert listed(html) == [f"Title {n}" for n in expected]
    assert f'<option value="{sort}" selected>' in html


def test_a_histogram_bar_links_to_the_reviews_of_its_rating(get):
    html = get(f"/reviews?product_id={SHIRT}").get_data(as_text=True)
    bar = unescape(re.search(r'<a href="([^"]*rating=4[^"]*)"', html).group(1))
    filtered = get(bar).get_data(as_text=True)
    assert listed(filtered) == ["Title 2", "Title 3"]
    assert "Showing 4 stars reviews only." in filtered and "Show all ratings" in filtered
    assert listed(get(f"/reviews?product_id={SHIRT}&rating=2&page=1").get_data(
        as_text=True)) == ["Title 5"]


def test_pages_are_plain_links_and_a_page_past_the_end_is_the_last(make_app):
    app = make_app()
    fill(app, [review(f"p{n:02}", day=200 - n, title=f"T{n:02}") for n in range(25)])
    client = app.test_client()
    first = client.get(f"/reviews?product_id={SHIRT}").get_data(as_text=True)
    assert listed(first) == [f"T{n:02}" for n in range(PAGE_SIZE)]
    assert "Page 1 of 3" in first and 'rel="prev"' not in first
    following = unescape(re.search(r'<a href="([^"]+)" rel="next">', first).group(1))
    second = client.get(following).get_data(as_text=True)
    assert listed(second) == [f"T{n:02}" for n in range(10, 20)]
    last = client.get(f"/reviews.json?product_id={SHIRT}&page=99").get_json()
    assert last["page"] == {"number": 3, "pages": 3, "size": PAGE_SIZE, "total": 25}
    assert [r["title"] for r in last["reviews"]] == [f"T{n:02}" for n in range(20, 25)]
    assert last["links"]["next"] is None and "page=2" in last["links"]["prev"]


def test_an_empty_product_says_so_and_offers_the_form(make_app):
    html = make_app().test_client().get("/reviews?product_id=nothing&product_name=Hat"
                                        ).get_data(as_text=True)
    assert "No reviews yet. Be the first to write one." in html
    assert 'href="/embed?product_id=nothing&amp;integration=shopify&amp;product_name=Hat' in html
    assert "application/ld+json" not in html and "kr-histogram" not in html


def test_the_write_link_opens_the_form_and_the_questions_tab_the_question_form(get):
    html = get(f"/reviews?product_id={SHIRT}&locale=fr&theme=dark").get_data(as_text=True)
    link = unescape(re.search(r'class="kr-button" href="([^"]+)"', html).group(1))
    assert link == f"/embed?product_id={SHIRT}&integration=shopify&locale=fr&theme=dark"
    form = get(link).get_data(as_text=True)
    assert 'id="kr-form"' in form
    ask = get(f"/reviews?product_id={SHIRT}&type=question").get_data(as_text=True)
    assert "type=question" in re.search(r'class="kr-button" href="([^"]+)"', ask).group(1)


def test_the_display_speaks_the_forms_locales_and_themes(get):
    html = get(f"/reviews?product_id={SHIRT}&locale=fr&theme=dark").get_data(as_text=True)
    assert '<html lang="fr" dir="ltr" data-theme="dark">' in html
    assert "3,6 sur 5" in html and "8 avis" in html and "Avis clients" in html
    german = get(f"/reviews?product_id={SHIRT}",
                 headers={"Accept-Language": "de-DE,de;q=0.9"}).get_data(as_text=True)
    assert "3,6 von 5" in german and "8 Bewertungen" in german
    assert get(f"/reviews?product_id={SHIRT}&theme=neon").get_data(as_text=True).count(
        'data-theme="auto"') == 1


# -- structured data ----------------------------------------------------------------------------
def test_the_json_ld_names_the_product_and_counts_what_is_shown(get):
    data = get(f"/reviews.json?product_id={SHIRT}&product_name=Linen%20shirt").get_json()
    ld = data["jsonld"]
    assert ld["@context"] == "https://schema.org" and ld["@type"] == "Product"
    assert ld["name"] == "Linen shirt"
    assert ld["aggregateRating"] == {"@type": "AggregateRating", "ratingValue": 3.6,
                                     "reviewCount": 8, "bestRating": 5, "worstRating": 1}
    assert len(ld["review"]) == 8
    first = ld["review"][0]
    assert first == {"@type": "Review", "author": {"@type": "Person", "name": "Author 0"},
                     "datePublished": "2025-04-16", "name": "Title 0", "reviewBody": "Text 0",
                     "reviewRating": {"@type": "Rating", "ratingValue": 5, "bestRating": 5,
                                      "worstRating": 1}}
    html = get(f"/reviews?product_id={SHIRT}&product_name=Linen%20shirt").get_data(as_text=True)
    embedded = re.search(r'<script type="application/ld\+json" id="kr-jsonld">(.*?)</script>',
                         html, re.S).group(1)
    assert json.loads(embedded) == ld  # the iframe page carries the same data


def test_the_json_ld_takes_klaviyos_product_name_when_the_page_gives_none(get):
    ld = get(f"/reviews.json?product_id={SHIRT}").get_json()["jsonld"]
    assert ld["name"] == product()["name"]


def test_no_json_ld_without_a_rating_or_a_name(make_app):
    app = make_app()
    fill(app, [review("q", day=1, review_type="question", rating=None, content="Why?"),
               review("n", day=2, rating=5, product={"external_id": "nameless", "url": "x",
                                                     "name": None})])
    client = app.test_client()
    assert client.get(f"/reviews.json?product_id={SHIRT}").get_json()["jsonld"] is None
    assert client.get("/reviews.json?product_id=nameless").get_json()["jsonld"] is None
    named = client.get("/reviews.json?product_id=nameless&product_name=Cap").get_json()
    assert named["jsonld"]["aggregateRating"]["reviewCount"] == 1


def test_payloads_in_review_text_are_escaped_in_the_page_and_the_json_ld(make_app):
    app = make_app()
    fill(app, [review("x", day=1, title=XSS_TITLE, content=XSS_CONTENT,
                      author="</script><script>window.__pwned=1</script>",
                      smart_quote='"><svg onload=alert(1)>',
                      public_reply={"content": "<b>bold</b>", "author": "<i>Shop</i>",
                                    "updated": "2025-02-01T00:00:00+00:00"})])
    html = app.test_client().get(
        f"/reviews?product_id={SHIRT}&product_name=%3C/script%3E%3Cscript%3Ex()%3C/script%3E"
    ).get_data(as_text=True)
    assert "<script>window" not in html and "<img src=x" not in html and "<svg" not in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert html.count("<script") == 2  # our script and the data block, nothing else
    embedded = re.search(r'<script type="application/ld\+json" id="kr-jsonld">(.*?)</script>',
                         html, re.S).group(1)
    ld = json.loads(embedded)
    assert ld["name"] == "</script><script>x()</script>"
    assert ld["review"][0]["reviewBody"] == XSS_CONTENT
    raw = app.test_client().get(
        f"/reviews.json?product_id={SHIRT}&product_name=%3C/script%3E%3C!--").get_data(
        as_text=True)  # a storefront may print its jsonld into a <script> as it is
    assert "<" not in raw and ">" not in raw and "&" not in raw
    assert json.loads(raw)["jsonld"]["name"] == "</script><!--"


# -- the JSON document, caching, refusals ---------------------------------------------------------
def test_the_json_is_open_to_every_origin_cached_briefly_and_answers_304(get):
    response = get(f"/reviews.json?product_id={SHIRT}")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Cache-Control"] == \
        "public, max-age=60, stale-while-revalidate=600"
    assert response.headers["ETag"]
    again = get(f"/reviews.json?product_id={SHIRT}", expect=304,
                headers={"If-None-Match": response.headers["ETag"]})
    assert again.data == b""
    review_json = response.get_json()["reviews"][0]
    assert set(review_json) == {"id", "type", "author", "created", "rating", "title",
                                "content", "images", "verified", "featured", "smart_quote",
                                "reply"}


def test_the_page_may_be_framed_by_the_storefronts_and_is_cached_like_the_json(make_app):
    app = make_app(WIDGET_FRAME_ANCESTORS="https://shop.example")
    response = app.test_client().get(f"/reviews?product_id={SHIRT}")
    assert "frame-ancestors https://shop.example" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"].startswith("public, max-age=60")
    assert "Accept-Language" in response.headers["Vary"]


@pytest.mark.parametrize("query, parameter", [
    ("product_id=1&rating=9", "rating"), ("product_id=1&rating=five", "rating"),
    ("product_id=1&sort=random", "sort"), ("product_id=1&page=0", "page"),
    ("product_id=1&integration=magento", "integration"), ("type=review", "product_id"),
    ("type=tweets", "type"), ("product_id=" + "9" * 300, "product_id"),
])
def test_a_query_we_cannot_show_gets_a_clear_400(get, query, parameter):
    refused = get(f"/reviews.json?{query}", expect=400)
    error = refused.get_json()["errors"][0]
    assert error["source"] == {"parameter": parameter} and error["detail"]
    assert refused.headers["Access-Control-Allow-Origin"] == "*"
    page = get(f"/reviews?{query}", expect=400).get_data(as_text=True)
    assert "This review form is not set up correctly" in page and parameter in page


def test_unknown_parameters_are_ignored_like_the_forms(get):
    plain = get(f"/reviews.json?product_id={SHIRT}").get_json()
    tracked = get(f"/reviews.json?product_id={SHIRT}&utm_source=mail").get_json()
    assert tracked["summary"] == plain["summary"]


def test_a_page_with_two_hundred_reviews_fits_in_fifteen_kilobytes_gzipped(make_app):
    app = make_app()
    resources = [r for r in many_reviews(1500, products=4, seed=5)
                 if (r["attributes"]["product"] or {}).get("external_id") == SHIRT]
    fill(app, resources)
    client = app.test_client()
    page = client.get(f"/reviews?product_id={SHIRT}&product_name=Linen%20shirt")
    count = page.get_data(as_text=True)
    assert int(re.search(r"(\d[\d,]*) reviews", count).group(1).replace(",", "")) >= 200
    assets = re.findall(r'(?:href|src)="(/embed/assets/[^"]+)"', count)
    assert len(assets) == 3  # form.css, reviews.css, reviews.js
    total = len(gzip.compress(page.data)) + sum(
        len(gzip.compress(client.get(url).data)) for url in assets)
    assert total <= 15 * 1024, total


# -- from the mirror only, kept per generation --------------------------------------------------
def test_views_make_no_klaviyo_call(get, fake_klaviyo):
    for url in (f"/reviews?product_id={SHIRT}", f"/reviews.json?product_id={SHIRT}&page=2",
                "/reviews?type=store", f"/reviews?product_id={SHIRT}&type=question"):
        get(url)
    assert fake_klaviyo.requests() == []


def test_a_sync_that_changes_the_mirror_shows_at_the_next_view(make_app, fake_klaviyo):
    fake_klaviyo.reads.reviews = [review("a", day=1, rating=5, title="First")]
    app = make_app()
    sync(app)
    client = app.test_client()
    assert listed(client.get(f"/reviews?product_id={SHIRT}").get_data(as_text=True)) == \
        ["First"]
    fake_klaviyo.reads.reviews.append(review("b", day=2, rating=1, title="Second"))
    sync(app)  # this process's own sync: seen at once
    assert listed(client.get(f"/reviews?product_id={SHIRT}").get_data(as_text=True)) == \
        ["Second", "First"]
    assert client.get(f"/reviews.json?product_id={SHIRT}").get_json()["summary"][
        "average"] == 3.0


def test_another_processs_sync_is_seen_within_the_check_interval(make_app, tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    web, worker = make_app(DATABASE_URL=url), make_app(DATABASE_URL=url)
    fill(worker, [review("a", day=1, title="First")])
    display = web.extensions["display"]
    display.check_seconds = CHECK_SECONDS
    client = web.test_client()
    assert listed(client.get(f"/reviews?product_id={SHIRT}").get_data(as_text=True)) == \
        ["First"]
    fill(worker, [review("b", day=2, title="Second")])
    assert listed(client.get(f"/reviews?product_id={SHIRT}").get_data(as_text=True)) == \
        ["First"]  # kept: the mirror is asked again only after check_seconds
    time.sleep(CHECK_SECONDS + 0.05)
    assert listed(client.get(f"/reviews?product_id={SHIRT}").get_data(as_text=True)) == \
        ["Second", "First"]


def test_repeated_views_of_a_product_read_its_reviews_from_the_mirror_once(make_app):
    app = make_app()
    fill(app, [review("a", day=1)])
    client = app.test_client()
    mirror = app.extensions["mirror"]
    reads = []
    shown = mirror.shown
    mirror.shown = lambda *args: reads.append(args) or shown(*args)
    for _ in range(5):
        client.get(f"/reviews?product_id={SHIRT}")
        client.get(f"/reviews.json?product_id={SHIRT}")
    assert len(reads) == 1  # one shelf for the product, both pages built from it


def test_visible_text_of_the_page_never_holds_an_email(get):
    text = visible_text(get(f"/reviews?product_id={SHIRT}").get_data(as_text=True))
    assert "@" not in text
