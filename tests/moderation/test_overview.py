"""The overview: counts per status, the ratings, the last twelve weeks and the queue, from the
mirror and the outbox; charts as SVG with a text alternative; no call to Klaviyo."""

from __future__ import annotations

import json
import re
import time as clock
from datetime import datetime, time, timedelta

import pytest
from sqlalchemy import update

from tests.fake_klaviyo_fixtures import review
from tests.moderation.mirror import CHECK_SECONDS, store, sync
from tests.moderation.test_views import MODERATOR, PASSWORD
from tests.reviews import review_body
from widget.delivery.outbox import submissions, utcnow
from widget.moderation import overview
from widget.moderation.charts import bar_chart, line_chart, nice_step
from widget.reviews.store import Mirror


def at(moment):
    return moment.isoformat() + "+00:00"


def known(now):
    """Reviews of known statuses, types, ratings and weeks around `now` (naive UTC)."""
    monday = datetime.combine(now.date() - timedelta(days=now.weekday()), time())
    week = timedelta(weeks=1)
    return [
        review("this-5", 0, status="pending", rating=5, created=at(monday)),
        review("this-3", 0, status="published", rating=3, created=at(monday + timedelta(hours=1))),
        review("this-q", 0, status="pending", rating=None, review_type="question",
               created=at(monday)),
        review("last-2", 0, status="published", rating=2, created=at(monday - week)),
        review("first-store", 0, status="published", rating=5, review_type="store",
               created=at(monday - 11 * week + timedelta(days=6))),
        review("old-1", 0, status="rejected", rating=1,
               created=at(monday - 11 * week - timedelta(seconds=1))),
    ]


@pytest.fixture
def moderation(make_app):
    return make_app(MODERATION_PASSWORD=PASSWORD)


def get(app, url="/moderation/overview"):
    response = app.test_client().get(url, headers=MODERATOR)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return response.get_data(as_text=True)


def test_the_figures_count_statuses_stars_and_weeks_of_a_known_mirror(moderation):
    now = datetime(2025, 3, 5, 15, 0)  # a Wednesday
    store(moderation, known(now))
    engine = moderation.extensions["mirror"].engine
    assert list(overview.status_counts(engine).items()) == [
        ("pending", 2), ("published", 3), ("featured", 0), ("unpublished", 0), ("rejected", 1)]
    assert overview.rating_histogram(engine) == {1: 1, 2: 1, 3: 1, 4: 0, 5: 1}
    weeks = overview.weeks(engine, now)
    assert len(weeks) == 12 and weeks[-1].start.isoformat() == "2025-03-03"
    assert weeks[0].start.isoformat() == "2024-12-16" and weeks[0].iso == "2024-W51"
    assert [(w.received, w.rated, w.average) for w in weeks] == \
        [(1, 0, None)] + [(0, 0, None)] * 9 + [(1, 1, 2.0), (3, 2, 4.0)]
    assert weeks[-1].label == "Mar 3"


def test_a_status_klaviyo_adds_later_still_counts_after_the_known_ones(moderation):
    store(moderation, [review("odd", 1, status="archived"), review("p", 2, status="pending")])
    counts = overview.status_counts(moderation.extensions["mirror"].engine)
    assert list(counts)[:1] == ["pending"] and list(counts)[-1] == "archived"


def test_the_queue_health_counts_waiting_and_dead_rows_and_the_oldest_wait(moderation):
    outbox = moderation.extensions["outbox"]
    old = outbox.put(json.dumps(review_body()).encode())
    outbox.put(json.dumps(review_body(author="Bo")).encode())
    dead = outbox.put(json.dumps(review_body(author="Cy")).encode())
    outbox.mark_dead(dead.id, status=400, error="refused")
    with outbox.engine.begin() as conn:
        conn.execute(update(submissions).where(submissions.c.id == old.id)
                     .values(created_at=utcnow() - timedelta(minutes=12, seconds=5)))
    queue = overview.queue_health(outbox)
    assert (queue.queued, queue.sending, queue.dead, queue.waiting) == (2, 0, 1, 2)
    page = get(moderation)
    assert "<strong>2</strong> queued" in page and "<strong>1</strong> dead" in page
    assert "<strong>12 min</strong> oldest waiting" in page
    assert "Klaviyo refused 1 submission" in page
    assert 'href="/moderation/outbox">Open the delivery queue</a>' in page


def test_the_page_lists_statuses_pending_first_each_linking_to_its_list(moderation,
                                                                       fake_klaviyo):
    store(moderation, known(utcnow()))
    page = get(moderation)
    tiles = re.findall(r'<a href="/moderation/\?status=(\w+)"><strong>(\d+)</strong>', page)
    assert tiles == [("pending", "2"), ("published", "3"), ("featured", "0"),
                     ("unpublished", "0"), ("rejected", "1")]
    assert '<a href="/moderation/"><strong>6</strong> in all</a>' in page
    assert fake_klaviyo.received == []


def test_every_chart_is_an_svg_image_with_a_name_a_description_and_a_table(moderation):
    store(moderation, known(utcnow()))
    page = get(moderation)
    svgs = re.findall(r"<svg\b[^>]*>.*?</svg>", page, re.S)
    assert len(svgs) == 3
    for svg in svgs:
        labelled = re.search(r'role="img" aria-labelledby="([\w-]+) ([\w-]+)"', svg)
        title, desc = labelled.groups()
        assert f'<title id="{title}">' in svg and f'<desc id="{desc}">' in svg
    assert "1 ★: 1; 2 ★: 1; 3 ★: 1; 4 ★: 0; 5 ★: 1." in svgs[0]
    assert svgs[1].count('<rect class="bar"') == 12 and svgs[2].count("<polyline") == 1
    assert re.search(r": 1; .*: 1; .*: 3\.</desc>", svgs[1])  # the oldest week to this one
    assert re.search(r": 2\.00; [^<]*: 4\.00\.</desc>", svgs[2])
    assert page.count('<table class="figures">') == 2
    assert re.search(r"<td>3</td>\s*<td>2</td><td>4\.00</td>", page)  # this week's row
    assert "<caption>Product reviews per rating</caption>" in page


def test_the_page_needs_no_script_and_no_style_attribute_so_the_csp_holds(moderation):
    store(moderation, known(utcnow()))
    response = moderation.test_client().get("/moderation/overview", headers=MODERATOR)
    page = response.get_data(as_text=True)
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert "<script" not in page and "style=" not in page
    assert not re.search(r"<[^>]+\son\w+=", page)  # no event handler attribute either


def test_values_from_klaviyo_on_the_overview_are_escaped(moderation, fake_klaviyo):
    sync(moderation)  # the fixtures, HTML payloads and all
    store(moderation, [review("odd", 1, status="<b>bold</b>")])
    page = get(moderation)
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>" not in page
    assert not re.search(r"<(script|iframe|img)", page, re.I)


def test_the_overview_says_how_fresh_the_mirror_is(moderation, fake_klaviyo):
    assert "Not synced yet." in get(moderation)
    sync(moderation)
    assert re.search(r'synced <span class="sync-age">\d+ s</span> ago', get(moderation))


def test_an_empty_mirror_draws_empty_charts_without_failing(moderation):
    page = get(moderation)
    assert page.count("<svg") == 3 and "<polyline" not in page
    assert "<strong>0</strong> in all" in page


# -- the charts' geometry -----------------------------------------------------------------
@pytest.mark.parametrize("high,step", [(0, 1), (3, 1), (4, 1), (5, 2), (12, 5), (45, 20),
                                       (100, 50), (1234, 500)])
def test_the_y_axis_steps_are_round_numbers(high, step):
    assert nice_step(high) == step


def test_bars_stand_on_the_axis_inside_the_plot_and_scale_with_their_values():
    chart = bar_chart("t", [("a", 3), ("b", 0), ("c", 17)])
    assert [tick.label for tick in chart.ticks] == ["0", "5", "10", "15", "20"]
    for bar in chart.bars:
        assert chart.left <= bar.left and bar.left + bar.width <= chart.right
        assert bar.y + bar.height == pytest.approx(chart.bottom, abs=0.11)
    assert chart.bars[1].height == 0
    assert chart.bars[2].height / chart.bars[0].height == pytest.approx(17 / 3, rel=0.01)
    assert chart.summary == "a: 3; b: 0; c: 17."


def test_a_line_stops_where_a_week_has_no_value():
    chart = line_chart("t", [("a", 1.0), ("b", 5.0), ("c", None), ("d", 3.0), ("e", 4.0)])
    assert len(chart.lines) == 2 and len(chart.points) == 4 and len(chart.labels) == 5
    assert chart.points[0].y == chart.bottom and chart.points[1].y == chart.top
    assert chart.summary == "a: 1.00; b: 5.00; c: none; d: 3.00; e: 4.00."


def test_the_mirror_figures_are_kept_per_generation_and_the_queue_counted_each_time(moderation):
    moderation.extensions["display"].check_seconds = CHECK_SECONDS
    store(moderation, known(utcnow()))
    assert "<strong>6</strong> in all" in get(moderation)
    other_process = Mirror(moderation.extensions["mirror"].engine)  # its own local writes
    other_process.upsert([review("from-elsewhere", 60, status="pending")])
    moderation.extensions["outbox"].put(json.dumps(review_body()).encode())
    page = get(moderation)
    assert "<strong>6</strong> in all" in page  # kept: the mirror was not counted again
    assert "<strong>1</strong> queued" in page  # the queue is
    clock.sleep(CHECK_SECONDS + 0.05)
    assert "<strong>7</strong> in all" in get(moderation)
