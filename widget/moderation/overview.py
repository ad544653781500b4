"""What the overview page counts: reviews per status, their ratings, the last weeks, the queue.

Read from the mirror and the outbox, never from Klaviyo. The mirror's figures depend on the
mirror and the week only, so the page keeps them per mirror generation and ISO week
(`Display.page`): counting 10,000 reviews took 30 ms a request. The queue is counted per
request: it moves with every submission. The weeks are ISO weeks (Monday to Sunday, UTC),
counted by the database: a CASE compares `created` with each week's Monday,
which SQLite and Postgres read alike (their date functions differ). A row each week comes
back rather than one a review (the 7,500 of a 10,000-review mirror took most of the time).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Engine, case, func, select

from widget.delivery.outbox import Outbox
from widget.moderation.charts import Chart, bar_chart, line_chart
from widget.reviews.store import reviews

# Pending first: it is the moderator's work.
STATUS_ORDER = ("pending", "published", "featured", "unpublished", "rejected")
# Stars are counted for product reviews only: a question has none, and a store review or a
# bare rating would mix another measure into the product's picture.
RATED_TYPE = "review"
WEEKS = 12
# Five bars need less room than twelve; a narrower drawing keeps its text the same size.
RATINGS_WIDTH = 360


@dataclass(frozen=True)
class Week:
    """One ISO week: everything received, and the product reviews' average rating."""

    start: date
    received: int = 0
    rated: int = 0
    average: float | None = None

    @property
    def label(self) -> str:
        """'Mar 3': the Monday it starts."""
        return f"{self.start:%b} {self.start.day}"

    @property
    def iso(self) -> str:
        """'2025-W10'."""
        year, week, _ = self.start.isocalendar()
        return f"{year}-W{week:02d}"


@dataclass(frozen=True)
class Queue:
    """The delivery queue's health: what waits, since when, and what died."""

    queued: int
    sending: int
    dead: int
    oldest_waiting: datetime | None

    @property
    def waiting(self) -> int:
        return self.queued + self.sending


@dataclass(frozen=True)
class Figures:
    """What the overview page shows of the mirror."""

    statuses: dict[str, int]
    histogram: dict[int, int]
    weeks: list[Week]
    ratings_chart: Chart
    received_chart: Chart
    average_chart: Chart


def monday_of(now: datetime) -> date:
    """The first day of `now`'s ISO week: the figures change with it, not with the hour."""
    return now.date() - timedelta(days=now.weekday())


def figures(engine: Engine, now: datetime) -> Figures:
    """The overview's counts and charts of the mirror, for the week of `now` (naive UTC)."""
    histogram, recent = rating_histogram(engine), weeks(engine, now)
    return Figures(
        statuses=status_counts(engine), histogram=histogram, weeks=recent,
        ratings_chart=bar_chart("Product reviews per rating",
                                [(f"{stars} ★", n) for stars, n in histogram.items()],
                                width=RATINGS_WIDTH),
        received_chart=bar_chart(
            f"Reviews received per week (every type), last {len(recent)} weeks",
            [(week.label, week.received) for week in recent]),
        average_chart=line_chart(
            f"Average rating of product reviews per week, last {len(recent)} weeks",
            [(week.label, week.average) for week in recent]),
    )


def status_counts(engine: Engine) -> dict[str, int]:
    """Reviews per status, pending first, every status present (0 when none)."""
    query = select(reviews.c.status, func.count()).group_by(reviews.c.status)
    with engine.connect() as conn:
        found = dict(conn.execute(query).all())
    ordered = {status: found.pop(status, 0) for status in STATUS_ORDER}
    return ordered | dict(sorted(found.items()))  # a status Klaviyo adds later still shows


def rating_histogram(engine: Engine) -> dict[int, int]:
    """Product reviews per star, 1 to 5 (every status)."""
    c = reviews.c
    query = (select(c.rating, func.count())
             .where(c.review_type == RATED_TYPE, c.rating.between(1, 5))
             .group_by(c.rating))
    with engine.connect() as conn:
        found = dict(conn.execute(query).all())
    return {stars: found.get(stars, 0) for stars in range(1, 6)}


def weeks(engine: Engine, now: datetime, count: int = WEEKS) -> list[Week]:
    """The last `count` ISO weeks up to `now`'s (naive UTC), oldest first."""
    first = monday_of(now) - timedelta(weeks=count - 1)
    starts = [datetime.combine(first + timedelta(weeks=n), datetime.min.time())
              for n in range(count + 1)]
    c = reviews.c
    # Week `count` is after this one: dated by a clock ahead of ours, left out.
    week = case(*[(c.created >= starts[n], n) for n in range(count, -1, -1)]).label("week")
    rating = case((c.review_type == RATED_TYPE, c.rating))  # NULL for other types
    query = (select(week, func.count(), func.count(rating), func.sum(rating))
             .where(c.created >= starts[0]).group_by("week"))
    received, rated, stars = [0] * count, [0] * count, [0] * count
    with engine.connect() as conn:
        for index, number, rated_number, stars_given in conn.execute(query):
            if index < count:
                received[index], rated[index] = number, rated_number
                stars[index] = stars_given or 0  # SUM of no rows is NULL
    return [Week(first + timedelta(weeks=n), received[n], rated[n],
                 round(stars[n] / rated[n], 2) if rated[n] else None) for n in range(count)]


def queue_health(outbox: Outbox) -> Queue:
    """Counts of the delivery queue, and when its oldest waiting row was accepted."""
    counts = outbox.counts()
    oldest = outbox.rows(("queued", "sending"), 1)
    return Queue(queued=counts.get("queued", 0), sending=counts.get("sending", 0),
                 dead=counts.get("dead", 0),
                 oldest_waiting=oldest[0]["created_at"] if oldest else None)
