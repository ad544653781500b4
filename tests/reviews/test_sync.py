"""The mirror's sync against the fake Klaviyo: first pass, incremental, full pass, the lease,
the reads' share, the state it shows, and links to what this service delivered."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.fake_klaviyo_fixtures import review
from tests.reviews import review_body
from widget.reviews.store import klaviyo_time


def syncer(app):
    return app.extensions["syncer"]


def mirror(app):
    return app.extensions["mirror"]


def gets(fake, path="/api/reviews"):
    return [r for r in fake.requests(path) if r.method == "GET"]


def many(count, start=datetime(2026, 9, 1, tzinfo=UTC)):
    return [review(f"bulk-{n}", 0, rating=1 + n % 5, title=f"Bulk {n}",
                   created=(start + timedelta(minutes=n)).isoformat(),
                   updated=(start + timedelta(minutes=n, seconds=30)).isoformat())
            for n in range(count)]


def touch(resource, **attributes):
    resource["attributes"].update(attributes)
    resource["attributes"]["updated"] = datetime.now(UTC).isoformat()


def test_a_first_sync_mirrors_every_review_of_every_status_with_emails(app, fake_klaviyo):
    run = syncer(app).sync_once()
    assert run.full and run.error is None
    fixtures = fake_klaviyo.reads.reviews
    assert sorted(mirror(app).ids()) == sorted(r["id"] for r in fixtures)
    assert run.calls == math.ceil(len(fixtures) / 100) == len(gets(fake_klaviyo))
    [call] = gets(fake_klaviyo)
    assert call.query["filter"] == 'equals(status,"all")' and call.query["sort"] == "created"
    stored = mirror(app).get("rej-other")
    assert stored["attributes"]["status"]["rejection_reason"]["reason"] == "other"
    assert "links" not in stored
    state = mirror(app).state()
    assert state.source == "private" and state.last_full_at is not None
    assert state.watermark == max(klaviyo_time(r["attributes"]["updated"]) for r in fixtures)


def test_an_incremental_sync_reads_only_the_pages_that_changed(app, fake_klaviyo):
    fake_klaviyo.reads.reviews = many(450)
    assert syncer(app).sync_once().calls == 5
    touch(fake_klaviyo.reads.reviews[10], status={"value": "rejected",
                                                  "rejection_reason": {"reason": "fake"}})
    before = len(gets(fake_klaviyo))
    run = syncer(app).sync_once()
    assert (run.full, run.calls, run.error) == (False, 1, None)
    assert len(gets(fake_klaviyo)) == before + 1
    assert gets(fake_klaviyo)[-1].query["sort"] == "-updated"
    assert mirror(app).get("bulk-10")["attributes"]["status"]["value"] == "rejected"
    assert mirror(app).count() == 450


def test_a_full_pass_drops_what_klaviyo_no_longer_returns(app, fake_klaviyo):
    syncer(app).sync_once()
    fake_klaviyo.reads.reviews = [r for r in fake_klaviyo.reads.reviews
                                  if r["id"] != "pub-one-star"]
    assert syncer(app).sync_once(full=False).dropped == 0  # an incremental pass cannot tell
    assert mirror(app).get("pub-one-star") is not None
    run = syncer(app).sync_once(full=True)
    assert run.dropped == 1 and mirror(app).get("pub-one-star") is None


def test_a_full_pass_is_due_after_reviews_full_sync_hours(make_app, fake_klaviyo, tmp_path):
    app = make_app(REVIEWS_FULL_SYNC_HOURS=1e-9)
    assert syncer(app).sync_once().full
    time.sleep(0.01)
    assert syncer(app).sync_once().full
    # The default, 24 hours, on a mirror of its own: the run after the first is incremental.
    daily = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'daily.db'}")
    assert syncer(daily).sync_once().full
    assert not syncer(daily).sync_once().full


def test_only_one_syncer_reads_at_a_time(make_app, fake_klaviyo):
    first, second = make_app(), make_app()
    assert mirror(first).take_lease("another process", 60)
    assert syncer(second).sync_once() is None
    assert gets(fake_klaviyo) == []
    mirror(first).release_lease("another process")
    assert syncer(second).sync_once() is not None


def test_a_lease_left_by_a_process_that_died_is_taken_over_when_it_expires(app, fake_klaviyo):
    assert mirror(app).take_lease("a process that died", 0.05)
    time.sleep(0.1)
    assert syncer(app).sync_once() is not None


def test_every_page_is_a_read_slot_from_the_shared_pacer(app, fake_klaviyo):
    fake_klaviyo.reads.reviews = many(250)
    run = syncer(app).sync_once()
    budget = app.extensions["pacer"].budget.read()
    assert run.calls == 3 and budget["reads"] == 3 and budget["seq"] == 3
    # Their answers' RateLimit-* headers made the pacer's view of Klaviyo's window.
    assert app.extensions["pacer"].view()["remaining"] == 150 - 3


def test_the_reads_share_stops_a_sync_which_keeps_what_it_read_and_drops_nothing(
        make_app, fake_klaviyo):
    app = make_app(REVIEWS_READ_SHARE=0.02)  # 3 reads of 150 a minute
    fake_klaviyo.reads.reviews = many(1000)
    syncer(app).slot_patience = 0.5  # rather than wait for the next minute's reads
    run = syncer(app).sync_once()
    assert run.calls == 3 and "no read slot" in run.error
    assert mirror(app).count() == 300  # what it read is kept
    state = mirror(app).state()
    assert state.last_full_at is None and "no read slot" in state.last_error


def test_readyz_shows_the_mirrors_age_and_last_error(make_app, fake_klaviyo):
    app = make_app(KLAVIYO_PRIVATE_KEY="pk_refused_key")
    client = app.test_client()
    assert client.get("/readyz").get_json()["reviews_mirror"]["synced_seconds_ago"] is None
    run = syncer(app).sync_once()
    assert "401" in run.error or "invalid private key" in run.error.lower()
    body = client.get("/readyz").get_json()
    assert body["status"] == "ready"  # a stale mirror slows no submission
    assert body["reviews_mirror"]["last_error"] == run.error
    assert "pk_refused_key" not in str(body)
    good = make_app()
    syncer(good).sync_once()
    shown = good.test_client().get("/readyz").get_json()["reviews_mirror"]
    assert shown["source"] == "private" and 0 <= shown["synced_seconds_ago"] < 5
    assert shown["last_error"] is None


def test_a_review_this_service_delivered_is_linked_to_its_outbox_row(make_app, fake_klaviyo):
    app = make_app(WIDGET_SENDER="thread")
    response = app.test_client().post("/client/reviews", json=review_body(
        content="Linked from the mirror.", email="Link@Example.com"))
    submission_id = response.get_json()["data"]["id"]
    fake_klaviyo.wait_for_reviews(1)
    deadline = time.monotonic() + 5
    store = app.extensions["outbox"]
    while store.get(submission_id).state != "delivered" and time.monotonic() < deadline:
        time.sleep(0.05)
    syncer(app).sync_once()
    [created] = fake_klaviyo.created
    assert store.get(submission_id).klaviyo_review_id == created["id"]
    assert store.by_klaviyo_id(created["id"]).id == submission_id


def test_a_change_of_key_starts_the_mirror_again(make_app, fake_klaviyo, settings):
    app = make_app()
    syncer(app).sync_once()
    mirror(app).record(source="public")  # as if it had synced without the private key
    run = syncer(app).sync_once()
    assert run.full and mirror(app).state().source == "private"


def test_the_embedded_mode_syncs_in_a_thread_of_the_web_process(make_app, fake_klaviyo):
    app = make_app(WIDGET_SENDER="thread", REVIEWS_SYNC_SECONDS=0.2)
    deadline = time.monotonic() + 5
    while mirror(app).count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mirror(app).count() == len(fake_klaviyo.reads.reviews)
    app.extensions["syncer"].stop()


@pytest.mark.parametrize("sender", ["off"])
def test_without_a_sender_thread_the_web_process_does_not_sync(make_app, fake_klaviyo, sender):
    app = make_app(WIDGET_SENDER=sender, REVIEWS_SYNC_SECONDS=0.1)
    time.sleep(0.4)
    assert gets(fake_klaviyo) == [] and app.extensions["syncer"].thread is None


def test_without_the_private_key_the_mirror_holds_only_published_reviews_without_emails(
        make_app, fake_klaviyo):
    app = make_app(KLAVIYO_PRIVATE_KEY=None)
    run = syncer(app).sync_once()
    assert run.error is None and mirror(app).state().source == "public"
    shown = {r["id"] for r in fake_klaviyo.reads.reviews
             if r["attributes"]["status"]["value"] in ("published", "featured")}
    assert set(mirror(app).ids()) == shown
    assert all(mirror(app).get(i)["attributes"].get("email") is None for i in shown)
    [call] = gets(fake_klaviyo, "/client/reviews")
    assert call.query["company_id"] == "PUBKEY" and "Authorization" not in call.headers
    assert gets(fake_klaviyo) == []  # nothing read with a key


def test_without_the_private_key_an_incremental_sync_asks_for_what_was_updated_since(
        make_app, fake_klaviyo):
    app = make_app(KLAVIYO_PRIVATE_KEY=None)
    syncer(app).sync_once()
    touch(fake_klaviyo.reads.reviews[0], title="Edited since")
    run = syncer(app).sync_once()
    assert not run.full and run.calls == 1
    last = gets(fake_klaviyo, "/client/reviews")[-1]
    assert last.query["filter"].startswith("greater-or-equal(updated,")
    assert last.query["sort"] == "updated"
    changed = fake_klaviyo.reads.reviews[0]["id"]
    assert mirror(app).get(changed)["attributes"]["title"] == "Edited since"


def test_reviews_edited_during_a_full_pass_are_neither_missed_nor_dropped(app, fake_klaviyo):
    fake_klaviyo.reads.reviews = many(300)
    syncer(app).sync_once()
    pages = []

    def edit_after_the_first_page(seen):  # edits in Klaviyo while the pass reads on
        pages.append(seen)
        if len(pages) == 1:
            for n in (50, 250):
                touch(fake_klaviyo.reads.reviews[n], title=f"Edited mid-pass {n}")
    fake_klaviyo.on_answer = edit_after_the_first_page
    run = syncer(app).sync_once(full=True)
    assert run.calls == 3 and run.dropped == 0 and mirror(app).count() == 300
    assert mirror(app).get("bulk-250")["attributes"]["title"] == "Edited mid-pass 250"


def test_a_full_pass_over_thousands_costs_one_call_per_hundred(app, fake_klaviyo):
    from tests.fake_klaviyo_fixtures import many_reviews
    fake_klaviyo.reads.reviews = many_reviews(2000)
    run = syncer(app).sync_once()
    assert (run.calls, mirror(app).count()) == (20, 2000)
