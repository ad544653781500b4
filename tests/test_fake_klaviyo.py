"""The fake Klaviyo itself: RateLimit headers, window origin, another integration's usage,
creates on the read side, late and lost answers, the creation hook, the measurements the
pacing tests rely on, and what the mirror's sync reads: the public listing, each listing's
own filters, bulk fixtures and paging through them. Each test takes well under 5 s."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest
import requests

from tests.fake_klaviyo import JSONAPI, REVISION, FakeKlaviyo, Received, Windows
from tests.fake_klaviyo_fixtures import REASONS, UNSHOWN, many_reviews, touch
from tests.fake_klaviyo_reads import (
    CLIENT_ATTRIBUTES,
    CLIENT_REVIEWS,
    REVIEWS,
    FilterError,
    parse_filter,
    utc,
)

PRIVATE_KEY = "pk_test_private_key_never_shown"
READ_HEADERS = {"Authorization": f"Klaviyo-API-Key {PRIVATE_KEY}", "revision": REVISION}
RATELIMIT = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")
START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def body(content: str = "Soft and warm.", product: str | None = "7549950034135",
         images: int = 0, **attributes: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {"review_type": "review", "email": "ann@example.com",
                             "author": "Ann B.", "content": content, "title": "Cosy",
                             "rating": 5}
    if product is not None:
        attrs["product"] = {"external_id": product, "integration_key": "shopify"}
    if images:
        attrs["images"] = [f"https://cdn.example.com/upload/{n}.jpg" for n in range(images)]
    attrs.update(attributes)
    return {"data": {"type": "review", "attributes": attrs}}


def post(fake: FakeKlaviyo, review: dict[str, Any] | None = None,
         timeout: float = 2.0) -> requests.Response:
    return requests.post(f"{fake.url}/client/reviews", params={"company_id": "PUBKEY"},
                         data=json.dumps(review or body()),
                         headers={"revision": REVISION, "Content-Type": JSONAPI},
                         timeout=(1.0, timeout))


def read(fake: FakeKlaviyo, path: str = "/api/reviews", **params: str) -> requests.Response:
    return requests.get(f"{fake.url}{path}", params=params, headers=READ_HEADERS, timeout=2.0)


def public(fake: FakeKlaviyo, company_id: str | None = "PUBKEY",
           headers: dict[str, str] | None = None, **params: str) -> requests.Response:
    """GET /client/reviews as a browser would: no key, the public company id."""
    query = dict(params, company_id=company_id) if company_id is not None else params
    return requests.get(f"{fake.url}/client/reviews", params=query,
                        headers={"revision": REVISION} if headers is None else headers,
                        timeout=2.0)


def follow(session: requests.Session, url: str,
           headers: dict[str, str]) -> tuple[list[dict[str, Any]], int]:
    """Every resource of a listing, following links.next; and the number of pages."""
    items, pages = [], 0
    while url:
        answer = session.get(url, headers=headers, timeout=5.0)
        assert answer.status_code == 200, answer.text
        document = answer.json()
        items.extend(document["data"])
        pages += 1
        url = document["links"].get("next")
    return items, pages


def minute_left(fake: FakeKlaviyo, at: float) -> int:
    """What RateLimit-Reset must say for a request admitted at `at`."""
    end = fake.origin + (math.floor((at - fake.origin) / 60) + 1) * 60
    return math.ceil(end - at)


def wait_until(check, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


# -- RateLimit headers --------------------------------------------------------------------
def test_every_admitted_answer_carries_the_three_ratelimit_headers():
    with FakeKlaviyo(per_minute=150, origin=time.time()) as fake:
        created = post(fake)
        listed = read(fake)
        refused = requests.get(f"{fake.url}/api/reviews", timeout=2.0)  # 401: still counted
    assert (created.status_code, listed.status_code, refused.status_code) == (202, 200, 401)
    assert [r.headers["RateLimit-Limit"] for r in (created, listed, refused)] == ["150"] * 3
    assert [r.headers["RateLimit-Remaining"] for r in (created, listed, refused)] == [
        "149", "148", "147"]
    for response, seen in zip((created, listed, refused), fake.received, strict=True):
        assert response.headers["RateLimit-Reset"] == str(minute_left(fake, seen.at))


def test_remaining_counts_down_to_zero_and_a_429_carries_only_retry_after():
    with FakeKlaviyo(per_second=10, per_minute=3, origin=time.time()) as fake:
        answers = [post(fake) for _ in range(4)]
    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert not any(name in answers[3].headers for name in RATELIMIT)
    assert int(answers[3].headers["Retry-After"]) == minute_left(fake, fake.received[3].at)


def test_reset_is_the_ceiling_of_the_seconds_left_in_the_minute_window():
    # The minute window ends 0.3 s after the fake starts: less than a second left shows 1.
    with FakeKlaviyo(origin=time.time() - 59.7) as fake:
        first = read(fake)
        time.sleep(max(0.0, fake.origin + 60.05 - time.time()))
        second = read(fake)
    assert first.headers["RateLimit-Reset"] == "1"
    assert second.headers["RateLimit-Reset"] == str(minute_left(fake, fake.received[1].at))
    assert int(second.headers["RateLimit-Reset"]) in (59, 60)
    assert second.headers["RateLimit-Remaining"] == "149"  # a new window, a new budget


def test_injected_failures_and_throttles_carry_no_ratelimit_headers():
    with FakeKlaviyo() as fake:
        fake.fail_with(503, count=1)
        failed = post(fake)
        fake.throttle(retry_after=2, count=1)
        throttled = post(fake)
        normal = post(fake)
    assert (failed.status_code, throttled.status_code, normal.status_code) == (503, 429, 202)
    assert not any(name in failed.headers or name in throttled.headers for name in RATELIMIT)
    assert throttled.headers["Retry-After"] == "2"
    assert normal.headers["RateLimit-Remaining"] == "149"


# -- the origin of windows ----------------------------------------------------------------
def test_windows_start_at_the_origin_not_at_the_clocks_whole_seconds():
    windows = Windows(per_second=1, per_minute=3, origin=100.25)
    assert windows.admit(110.3) is None
    assert windows.admit(111.2) == 1  # the same 1-s window [110.25, 111.25)
    assert windows.admit(111.25) is None  # the next one
    assert windows.admit(159.0) is None
    assert windows.admit(160.0) == 1  # the minute [100.25, 160.25) is spent
    assert windows.admit(160.25) is None
    assert windows.headers(160.25) == {"RateLimit-Limit": "3", "RateLimit-Remaining": "2",
                                       "RateLimit-Reset": "60"}


def test_origin_zero_keeps_windows_aligned_to_the_clock():
    windows = Windows(per_second=1, per_minute=2)
    assert windows.admit(120.9) is None
    assert windows.admit(120.99) == 1
    assert windows.admit(121.0) is None
    assert windows.admit(179.5) == 1  # the minute [120, 180) is spent
    assert windows.headers(150.0)["RateLimit-Reset"] == "30"


def test_the_first_minute_window_starts_when_the_fake_starts():
    started = time.time()
    with FakeKlaviyo(per_minute=150, origin=started) as fake:
        answer = read(fake)
    assert fake.origin == started
    assert int(answer.headers["RateLimit-Reset"]) in (59, 60)
    assert fake.window_counts(60) == {0: 1}


# -- another integration ------------------------------------------------------------------
def test_the_other_integration_lowers_remaining_and_takes_our_slots():
    with FakeKlaviyo(per_second=10, per_minute=6, origin=time.time()) as fake:
        fake.other_integration(600)  # one call every 0.1 s
        time.sleep(0.35)
        first = read(fake)
        others = len(fake.other_calls)
        time.sleep(0.4)
        answers = [read(fake) for _ in range(2)]
    assert 3 <= others <= 5
    assert first.status_code == 200
    assert first.headers["RateLimit-Remaining"] == str(6 - others - 1)
    # Six in the minute in all: theirs and ours; the calls that found it full were refused.
    assert answers[-1].status_code == 429
    assert len(fake.other_calls) + sum(a.status_code == 200 for a in [first, *answers]) == 6
    assert "RateLimit-Remaining" not in answers[-1].headers


def test_the_other_integrations_first_call_comes_one_spacing_after_it_starts():
    with FakeKlaviyo(origin=time.time()) as fake:
        fake.other_integration(60)  # one a second
        time.sleep(0.2)
        early = read(fake)
        time.sleep(0.9)
        late = read(fake)
    assert early.headers["RateLimit-Remaining"] == "149"
    assert late.headers["RateLimit-Remaining"] == "147"
    assert len(fake.other_calls) == 1


def test_the_other_integration_is_held_to_the_per_second_window_too():
    with FakeKlaviyo(per_second=2, per_minute=150, origin=time.time()) as fake:
        fake.other_integration(1200)  # 20 a second, but only 2 fit in each second
        time.sleep(1.3)
        counts = fake.other_counts(1)
        answer = read(fake)
    assert counts and all(n <= 2 for n in counts.values())
    assert counts[0] == 2
    assert answer.status_code == 429  # the second is full of theirs
    assert fake.other_counts(60) == {0: len(fake.other_calls)}


def test_clear_leaves_the_other_integration_on_and_none_turns_it_off():
    with FakeKlaviyo(origin=time.time()) as fake:
        fake.other_integration(600)
        fake.clear()
        time.sleep(0.25)
        read(fake)
        assert len(fake.other_calls) >= 2
        fake.other_integration(None)
        played = len(fake.other_calls)
        time.sleep(0.25)
        answer = read(fake)
    assert len(fake.other_calls) == played
    assert answer.headers["RateLimit-Remaining"] == str(150 - played - 2)


# -- creates on the read side -------------------------------------------------------------
def test_a_create_shows_up_on_the_reads_found_by_created_and_content_filters():
    since = (datetime.now(UTC) - timedelta(seconds=1)).replace(microsecond=0).isoformat()
    with FakeKlaviyo() as fake:
        assert post(fake, body("A unique wool scarf review.", images=2)).status_code == 202
        post(fake, body("Another review entirely."))
        listed = read(fake, filter=f'and(greater-or-equal(created,{since}),'
                                   f'contains(content,"unique wool"))')
        assert listed.status_code == 200
        [found] = listed.json()["data"]
        detail = read(fake, f"/api/reviews/{found['id']}")
    assert since.endswith("+00:00")
    assert found["id"].startswith("created-") and len(found["id"]) == len("created-") + 12
    attrs = found["attributes"]
    assert attrs["status"] == {"value": "pending"} and attrs["verified"] is False
    assert (attrs["email"], attrs["author"], attrs["title"], attrs["rating"],
            attrs["review_type"]) == ("ann@example.com", "Ann B.", "Cosy", 5, "review")
    assert attrs["product"] == {"url": None, "name": None, "image_url": None,
                                "external_id": "7549950034135"}
    assert attrs["images"] == [f"https://images.fake-klaviyo.test/{found['id']}/{n}.jpg"
                               for n in (1, 2)]
    assert attrs["smart_quote"] is None and attrs["public_reply"] is None
    assert attrs["created"] == attrs["updated"] and attrs["created"].endswith("+00:00")
    assert found["relationships"]["item"]["data"]["id"] == "$shopify:::$default:::7549950034135"
    assert detail.status_code == 200 and detail.json()["data"]["id"] == found["id"]
    assert [c["id"] for c in fake.created][0] == found["id"] and len(fake.created) == 2


def test_a_question_without_product_gets_null_fields_like_the_fixtures():
    with FakeKlaviyo() as fake:
        question = body("Does it shrink?", product=None, review_type="question")
        del question["data"]["attributes"]["title"], question["data"]["attributes"]["rating"]
        post(fake, question)
        listed = read(fake, filter='contains(content,"shrink")').json()["data"]
    [created] = fake.created
    assert [r["id"] for r in listed] == [created["id"]]
    attrs = created["attributes"]
    assert (attrs["product"], attrs["title"], attrs["rating"], attrs["images"]) == (
        None, None, None, [])
    assert created["relationships"]["item"]["data"]["id"] == "$shopify:::$default:::none"


def test_a_woocommerce_product_keeps_its_integration_in_the_item_id():
    with FakeKlaviyo() as fake:
        review = body(product="wc-42")
        review["data"]["attributes"]["product"]["integration_key"] = "woocommerce"
        post(fake, review)
        listed = read(fake, filter='equals(item.id,"$woocommerce:::$default:::wc-42")')
    assert [r["id"] for r in listed.json()["data"]] == [fake.created[0]["id"]]


def test_created_filters_with_or_without_an_offset_never_fail_on_created_reviews():
    with FakeKlaviyo() as fake:
        post(fake, body("Filter me please."))
        naive = read(fake, filter='and(greater-or-equal(created,2000-01-01T00:00:00),'
                                  'contains(content,"filter me"))')
        future = read(fake, filter="greater-or-equal(created,2999-12-01T19:00:00+00:00)")
        newest = read(fake, sort="-created", **{"page[size]": "1"})
    assert naive.status_code == 200 and len(naive.json()["data"]) == 1
    assert future.status_code == 200 and future.json()["data"] == []
    assert newest.json()["data"][0]["id"] == fake.created[0]["id"]


def test_create_delay_hides_a_created_review_for_a_while_and_clear_ends_it():
    with FakeKlaviyo() as fake:
        fake.create_delay(0.5)
        assert post(fake, body("Slow to appear.")).status_code == 202
        [created] = fake.created
        hidden_list = read(fake, filter='contains(content,"slow to appear")').json()["data"]
        hidden = read(fake, f"/api/reviews/{created['id']}")
        time.sleep(0.6)
        shown = read(fake, f"/api/reviews/{created['id']}")
        fake.clear()
        post(fake, body("At once."))
        at_once = read(fake, filter='contains(content,"at once")').json()["data"]
    assert hidden_list == [] and hidden.status_code == 404
    assert shown.status_code == 200
    assert len(fake.reviews()) == 2 and [r["id"] for r in at_once] == [fake.created[1]["id"]]


# -- late and lost answers ----------------------------------------------------------------
def test_answer_late_creates_the_review_and_the_client_times_out_first():
    with FakeKlaviyo() as fake:
        fake.answer_late(3.0)
        with pytest.raises(requests.ReadTimeout):
            post(fake, body("Answered too late."), timeout=0.3)
        assert len(fake.reviews()) == 1 and len(fake.created) == 1
        listed = read(fake, filter='contains(content,"too late")').json()["data"]
        assert [r["id"] for r in listed] == [fake.created[0]["id"]]
        started = time.monotonic()
        fake.clear()
        assert wait_until(lambda: fake.statuses("/client/reviews")[202] == 1)
        assert time.monotonic() - started < 1.0


def test_answer_late_only_for_the_next_count_creates():
    with FakeKlaviyo() as fake:
        fake.answer_late(0.5, count=1)
        started = time.monotonic()
        first = post(fake)
        took = time.monotonic() - started
        second = post(fake, timeout=0.3)
    assert first.status_code == second.status_code == 202
    assert took >= 0.5
    assert "RateLimit-Remaining" in first.headers
    assert len(fake.created) == 2


def test_answer_late_without_create_waits_then_answers_504_and_creates_nothing():
    with FakeKlaviyo() as fake:
        fake.answer_late(3.0, create=False)
        with pytest.raises(requests.ReadTimeout):
            post(fake, timeout=0.3)
        fake.clear()
        assert wait_until(lambda: fake.statuses("/client/reviews")[504] == 1)
        fake.answer_late(0.2, create=False, count=1)
        gateway = post(fake)
        after = post(fake)
    assert gateway.status_code == 504
    assert gateway.json()["errors"][0]["status"] == 504
    assert after.status_code == 202
    assert len(fake.created) == 1 and len(fake.reviews()) == 1


def test_stop_ends_a_late_answer_early():
    def send() -> None:
        try:
            post(fake, timeout=5.0)
        except requests.RequestException:
            pass  # the server went away: what matters is that the wait ended

    fake = FakeKlaviyo().start()
    fake.answer_late(30.0)
    sender = threading.Thread(target=send)
    sender.start()
    assert wait_until(lambda: len(fake.created) == 1)
    started = time.monotonic()
    fake.stop()
    sender.join(3.0)
    assert not sender.is_alive() and time.monotonic() - started < 3.0


def test_hang_with_create_creates_the_review_then_never_answers_until_cleared():
    with FakeKlaviyo() as fake:
        fake.hang(create=True)
        with pytest.raises(requests.ReadTimeout):
            post(fake, body("Lost answer."), timeout=0.3)
        assert len(fake.reviews()) == 1
        lookup = read(fake, filter='contains(content,"lost answer")')  # reads still answer
        assert [r["id"] for r in lookup.json()["data"]] == [fake.created[0]["id"]]
        fake.clear()
        assert wait_until(lambda: fake.statuses("/client/reviews") == {202: 1})


def test_hang_without_arguments_still_creates_nothing():
    with FakeKlaviyo() as fake:
        fake.hang()
        with pytest.raises(requests.ReadTimeout):
            post(fake, timeout=0.3)
        fake.clear()
        assert wait_until(lambda: fake.statuses("/client/reviews") == {503: 1})
    assert fake.created == [] and fake.reviews() == []


# -- the hook at creation -----------------------------------------------------------------
def test_on_create_is_called_with_the_resource_before_the_202_is_sent():
    go_on, called = threading.Event(), []

    def hook(resource: dict[str, Any]) -> None:
        called.append(resource)
        go_on.wait(2.0)

    answers: list[requests.Response] = []
    with FakeKlaviyo() as fake:
        fake.on_create = hook
        sender = threading.Thread(target=lambda: answers.append(post(fake)))
        sender.start()
        assert wait_until(lambda: called)
        time.sleep(0.2)
        assert answers == []  # created, but no answer yet
        go_on.set()
        sender.join(2.0)
    assert [a.status_code for a in answers] == [202]
    assert called == fake.created and called[0]["attributes"]["content"] == "Soft and warm."


def test_an_on_create_hook_that_raises_does_not_turn_the_create_into_a_500(caplog):
    def broken(resource: dict[str, Any]) -> None:
        raise RuntimeError("database unplugged")

    with FakeKlaviyo() as fake:
        fake.on_create = broken
        answer = post(fake)
    assert answer.status_code == 202 and len(fake.created) == 1
    assert "on_create raised" in caplog.text


# -- measurement helpers ------------------------------------------------------------------
def seen(at: float, path: str = "/client/reviews", status: int = 202) -> Received:
    return Received(at, "POST", path, {}, {}, b"{}", status)


def test_window_counts_and_max_in_span_measure_our_requests_from_the_origin():
    fake = FakeKlaviyo(origin=1000.0)
    fake.received = [seen(t) for t in (1000.0, 1030.0, 1055.0, 1059.9, 1060.0, 1061.0, 1125.0)]
    assert fake.window_counts(60) == {0: 4, 1: 2, 2: 1}
    assert fake.window_counts(1) == {0: 1, 30: 1, 55: 1, 59: 1, 60: 1, 61: 1, 125: 1}
    assert fake.peak(60) == 4
    # Sliding: [1030, 1090) holds five, more than any fixed window.
    assert fake.max_in_span(60.0) == 5
    assert fake.max_in_span(0.1) == 1
    assert fake.max_in_span(5.0) == 3  # 1055.0, 1059.9 and 1060.0 (1060.0 itself is out)
    assert FakeKlaviyo().max_in_span() == 0


def test_other_counts_measure_the_other_integrations_calls_not_ours():
    fake = FakeKlaviyo(origin=10.0)
    fake.received = [seen(11.0)]
    fake.other_calls = [10.5, 12.0, 69.9, 70.0]
    assert fake.other_counts(60) == {0: 3, 1: 1}
    assert fake.other_counts(1) == {0: 1, 2: 1, 59: 1, 60: 1}
    assert fake.window_counts(60) == {0: 1}


def test_statuses_counts_our_answers_by_path():
    fake = FakeKlaviyo()
    fake.received = [seen(1.0), seen(2.0, status=429), seen(3.0),
                     seen(4.0, "/api/reviews", 200)]
    assert fake.statuses() == {202: 2, 429: 1, 200: 1}
    assert fake.statuses("/client/reviews") == {202: 2, 429: 1}
    assert fake.statuses("/api/reviews/x") == {}


def test_statuses_and_window_counts_follow_live_traffic():
    with FakeKlaviyo(per_second=2, origin=time.time()) as fake:
        answers = [post(fake) for _ in range(3)]
        read(fake, "/api/reviews/nope")
    assert sorted(a.status_code for a in answers) == [202, 202, 429]
    assert fake.statuses("/client/reviews") == {202: 2, 429: 1}
    assert fake.statuses() == {202: 2, 429: 2}  # the read in the same second is refused too
    assert fake.window_counts(60) == {0: 4}


# -- the public listing (GET /client/reviews) ---------------------------------------------
PUBLIC_FIXTURES = {"pub-unicode", "featured-store", "question-size", "empty-fields",
                   "photo-data-uri", "pub-one-star"}


def test_the_client_endpoint_serves_only_published_and_featured_reviews_without_emails():
    with FakeKlaviyo() as fake:
        fake.reads.reviews[0]["attributes"]["syndicated_from"] = "store-2"  # not in its schema
        answer = public(fake, **{"page[size]": "100"})
    assert answer.status_code == 200 and answer.headers["Content-Type"] == JSONAPI
    assert all(name in answer.headers for name in RATELIMIT)
    served = answer.json()["data"]
    assert {r["id"] for r in served} == PUBLIC_FIXTURES and len(served) == len(PUBLIC_FIXTURES)
    for review in served:
        assert set(review) == {"type", "id", "attributes", "links"}  # no relationships
        assert set(review["attributes"]) == set(CLIENT_ATTRIBUTES)  # no email, nothing extra
        assert review["attributes"]["status"]["value"] in ("published", "featured")
        assert review["links"]["self"] == f"{fake.url}/client/reviews/{review['id']}/"
    assert "email" not in answer.text and UNSHOWN not in answer.text
    assert set(answer.json()["links"]) == {"self"}


def test_the_client_endpoint_needs_the_company_id_and_the_revision_header_but_no_key():
    with FakeKlaviyo(origin=time.time()) as fake:
        missing = public(fake, company_id=None)
        unknown = public(fake, company_id="SOMEONE_ELSE")
        no_revision = public(fake, headers={})
        old_revision = public(fake, headers={"revision": "2024-10-15"})
        events = public(fake, include="events")
        fine = public(fake)
    for refused in (missing, unknown, no_revision, old_revision, events):
        assert refused.status_code == 400
        assert refused.json()["errors"][0]["status"] == 400
    assert missing.json()["errors"][0]["source"] == {"parameter": "company_id"}
    assert "revision" in no_revision.json()["errors"][0]["detail"]
    assert fine.status_code == 200
    # The same account budget as every other endpoint: six requests, six counted.
    assert fine.headers["RateLimit-Remaining"] == "144"


def test_the_client_endpoint_counts_in_the_shared_rate_limit_windows():
    with FakeKlaviyo(per_second=10, per_minute=3, origin=time.time()) as fake:
        answers = [post(fake), read(fake), public(fake), public(fake)]
    assert [a.status_code for a in answers] == [202, 200, 200, 429]
    assert answers[2].headers["RateLimit-Remaining"] == "0"
    assert not any(name in answers[3].headers for name in RATELIMIT)
    assert fake.statuses("/client/reviews") == {202: 1, 200: 1, 429: 1}


def test_the_client_endpoint_filters_by_updated_media_and_public_reply():
    data = many_reviews(600, start=START, seed=7)
    shown = [r for r in data if r["attributes"]["status"]["value"] in ("published", "featured")]
    since, until = START - timedelta(weeks=6), START - timedelta(weeks=2)

    def ids(selected) -> set[str]:
        return {r["id"] for r in selected}

    with FakeKlaviyo(per_second=100) as fake:
        fake.reads.reviews = data

        def served(expression: str) -> set[str]:
            items, _ = follow(requests.Session(), requests.Request(
                "GET", f"{fake.url}/client/reviews", params={
                    "company_id": "PUBKEY", "filter": expression, "page[size]": "100",
                }).prepare().url, {"revision": REVISION})
            return ids(items)

        window = served(f"and(greater-or-equal(updated,{since.isoformat()}),"
                        f"less-or-equal(updated,{until.isoformat()}))")
        naive = served(f"greater-or-equal(updated,{since.replace(tzinfo=None).isoformat()})")
        media = served("has(media)")
        replied = served("has(public_reply)")
        quoted = served("has(smart_quote)")
        both = served("has(media),has(public_reply)")
        incentivized = served("equals(incentivized,true)")
        pending = served('equals(status,"pending")')
        five = served("and(equals(rating,5),equals(verified,true),has(media))")
    assert window == ids(r for r in shown if since <= utc(r["attributes"]["updated"]) <= until)
    assert 0 < len(window) < len(shown)
    assert naive == ids(r for r in shown if utc(r["attributes"]["updated"]) >= since)
    assert media == ids(r for r in shown if r["attributes"]["images"]) and media
    assert replied == ids(r for r in shown if r["attributes"]["public_reply"]) and replied
    assert quoted == ids(r for r in shown if r["attributes"]["smart_quote"]) and quoted
    assert both == media & replied
    assert incentivized == ids(r for r in shown if r[UNSHOWN]["incentivized"]) and incentivized
    assert pending == set()  # the public endpoint never shows them, whatever the filter
    assert five == ids(r for r in shown if r["attributes"]["rating"] == 5
                       and r["attributes"]["verified"] and r["attributes"]["images"])


@pytest.mark.parametrize("expression", [
    'greater-or-equal(updated,"2025-01-01T00:00:00+00:00")',  # datetimes are not quoted
    "greater-or-equal(updated,yesterday)",
    "equals(updated,2025-01-01T00:00:00+00:00)",
    'equals(item.id,"$shopify:::$default:::7549950034135")',  # no product filter
    'has(media,"yes")',
    "has(content)",
    "equals(media,true)",
    "equals(edited,yes)",
    "any(rating,3)",  # any takes a list
    "greater-or-equal(rating,[1,2])",  # a range takes one value
    "equals(rating,",
    "any(rating,[1,2)",
    "has(",
    "and(",
    'contains(content,"\\q")',
])
def test_the_client_listing_refuses_what_its_filter_table_does_not_allow(expression):
    with pytest.raises(FilterError):
        parse_filter(expression, CLIENT_REVIEWS)


def test_the_client_listing_accepts_its_own_fields_and_operators():
    assert parse_filter("has(media),has(smart_quote),equals(edited,false)", CLIENT_REVIEWS) == [
        ("has", "media", None), ("has", "smart_quote", None), ("equals", "edited", False)]
    [(operator, name, value)] = parse_filter("less-or-equal(updated,2026-01-01T00:00:00Z)",
                                             CLIENT_REVIEWS)
    assert (operator, name, value) == ("less-or-equal", "updated",
                                       datetime(2026, 1, 1, tzinfo=UTC))
    assert parse_filter('any(id,["a","b"]),equals(rating,[4,5])', CLIENT_REVIEWS) == [
        ("any", "id", ["a", "b"]), ("equals", "rating", [4, 5])]


def test_the_client_endpoint_sorts_by_updated_and_pages_with_links_next():
    data = many_reviews(450, start=START, seed=3)
    shown = [r for r in data if r["attributes"]["status"]["value"] in ("published", "featured")]
    with FakeKlaviyo(per_second=100) as fake:
        fake.reads.reviews = data
        first = public(fake, sort="updated", **{"page[size]": "100"}).json()
        second = requests.get(first["links"]["next"], headers={"revision": REVISION},
                              timeout=2.0).json()
        rising, pages = follow(requests.Session(), first["links"]["self"],
                               {"revision": REVISION})
        falling, _ = follow(requests.Session(), first["links"]["self"].replace(
            "sort=updated", "sort=-updated"), {"revision": REVISION})
        bad_sort = public(fake, sort="email")
    assert "company_id=PUBKEY" in first["links"]["next"] and "sort=updated" in first["links"][
        "next"] and "prev" not in first["links"]
    assert "page%5Bcursor%5D" not in second["links"]["prev"]  # back to the first page
    assert pages == math.ceil(len(shown) / 100) and len(rising) == len(shown)
    assert [r["id"] for r in rising[:200]] == [r["id"] for r in first["data"] + second["data"]]
    assert {r["id"] for r in rising} == {r["id"] for r in shown}
    stamps = [utc(r["attributes"]["updated"]) for r in rising]
    assert stamps == sorted(stamps)
    assert [r["id"] for r in falling] == [r["id"] for r in reversed(rising)]
    assert bad_sort.status_code == 400
    assert bad_sort.json()["errors"][0]["source"] == {"parameter": "sort"}


def test_a_created_review_reaches_the_client_endpoint_only_once_it_is_published():
    with FakeKlaviyo() as fake:
        assert post(fake, body("Published later.")).status_code == 202
        [created] = fake.created
        find = 'contains(content,"published later")'
        pending_public = public(fake, filter=find).json()["data"]
        pending_private = read(fake, filter=find).json()["data"]
        created_at = created["attributes"]["updated"]
        touch(created, status="published")
        newest = public(fake, sort="-updated", **{"page[size]": "1"}).json()["data"]
        since = public(fake, filter=f"greater-or-equal(updated,{created_at})").json()["data"]
    assert pending_public == [] and [r["id"] for r in pending_private] == [created["id"]]
    assert created_at == created["attributes"]["created"]  # a create has `updated` from the start
    assert [r["id"] for r in newest] == [created["id"]] == [r["id"] for r in since]
    attributes = newest[0]["attributes"]
    assert attributes["status"] == {"value": "published"} and "email" not in attributes
    assert utc(attributes["updated"]) > utc(attributes["created"])


# -- the private listing stays get_reviews ------------------------------------------------
def test_api_reviews_refuses_an_updated_filter_but_sorts_by_minus_updated():
    with FakeKlaviyo() as fake:
        refused = read(fake, filter="greater-or-equal(updated,2025-01-01T00:00:00+00:00)")
        media = read(fake, filter="has(media)")
        newest = read(fake, sort="-updated", **{"page[size]": "100"})
        oldest = read(fake, sort="updated", **{"page[size]": "100"})
    assert refused.status_code == 400
    [error] = refused.json()["errors"]
    assert error["detail"] == "'updated' is not a valid field for filtering"
    assert error["source"] == {"parameter": "filter"}
    assert media.status_code == 400
    assert media.json()["errors"][0]["detail"] == "'media' is not a valid field for filtering"
    assert newest.status_code == 200
    served = newest.json()["data"]
    stamps = [utc(r["attributes"]["updated"]) for r in served]
    assert stamps == sorted(stamps, reverse=True) and len(served) == len(fake.reads.reviews)
    assert "email" in served[0]["attributes"]  # every status, emails too
    assert {r["attributes"]["status"]["value"] for r in served} == {
        "published", "featured", "unpublished", "pending", "rejected"}
    assert [r["id"] for r in oldest.json()["data"]] == [r["id"] for r in reversed(served)]
    with pytest.raises(FilterError, match="'updated' is not a valid field"):
        parse_filter("less-or-equal(updated,2025-01-01T00:00:00+00:00)", REVIEWS)


def test_unshown_facts_are_filtered_on_but_never_served():
    data = many_reviews(40, start=START, seed=5)
    touch(data[0], status="published", edited=True)
    with FakeKlaviyo() as fake:
        fake.reads.reviews = data
        private = read(fake, **{"page[size]": "100"})
        detail = read(fake, f"/api/reviews/{data[0]['id']}")
        edited = public(fake, filter="equals(edited,true)").json()["data"]
    assert UNSHOWN not in private.text and UNSHOWN not in detail.text
    assert data[0]["id"] in {r["id"] for r in edited}
    assert data[0][UNSHOWN]["edited"] is True  # the data itself keeps them


# -- bulk fixtures ------------------------------------------------------------------------
def test_many_reviews_is_deterministic_and_has_every_status_and_type():
    started = time.monotonic()
    made = many_reviews(10_000, start=START)
    took = time.monotonic() - started
    assert took < 2.0
    assert many_reviews(300, start=START, seed=4) == many_reviews(300, start=START, seed=4)
    assert many_reviews(300, start=START, seed=4) != many_reviews(300, start=START, seed=5)
    assert len(made) == 10_000 and len({r["id"] for r in made}) == 10_000
    attributes = [r["attributes"] for r in made]
    statuses = Counter(a["status"]["value"] for a in attributes)
    assert set(statuses) == {"published", "pending", "featured", "unpublished", "rejected"}
    assert statuses.most_common(1)[0][0] == "published" and statuses["published"] > 5_000
    types = Counter(a["review_type"] for a in attributes)
    assert set(types) == {"review", "question", "store", "rating"}
    assert types.most_common(1)[0][0] == "review"
    ratings = Counter(a["rating"] for a in attributes if a["review_type"] != "question")
    assert set(ratings) == {1, 2, 3, 4, 5} and ratings[5] > ratings[4] > ratings[3] > ratings[1]
    for review, a in zip(made, attributes, strict=True):
        created, updated = utc(a["created"]), utc(a["updated"])
        assert START - timedelta(weeks=16) <= created <= updated <= START
        assert a["created"].endswith("+00:00") and a["updated"].endswith("+00:00")
        if a["review_type"] == "question":
            assert a["rating"] is None
        if a["review_type"] == "store":
            assert a["product"] is None
            assert review["relationships"]["item"]["data"]["id"] == "$shopify:::$default:::none"
        elif a["product"] is not None:
            assert review["relationships"]["item"]["data"]["id"].endswith(
                ":::" + a["product"]["external_id"])
        if a["status"]["value"] == "rejected":
            assert a["status"]["rejection_reason"]["reason"] in [*REASONS, "other"]
        assert all(url.startswith("https://") for url in a["images"])
        if a["public_reply"] is not None:
            assert set(a["public_reply"]) == {"content", "author", "updated"}
    products = {a["product"]["external_id"] for a in attributes if a["product"]}
    assert len(products) == 20
    few = many_reviews(500, start=START, products=3, seed=2)
    assert len({r["attributes"]["product"]["external_id"] for r in few
                if r["attributes"]["product"]}) == 3
    for kind in ("images", "public_reply", "smart_quote"):
        share = sum(bool(a[kind]) for a in attributes) / len(made)
        assert 0.03 < share < 0.5, kind
    emails = [a["email"] for a in attributes if a["email"]]
    assert len(set(emails)) > 0.95 * len(emails)
    assert all("<" not in (a["content"] or "") for a in attributes)  # plain text


def test_many_reviews_without_start_ends_now():
    before = datetime.now(UTC) - timedelta(seconds=1)
    made = many_reviews(200)
    assert all(utc(r["attributes"]["updated"]) <= datetime.now(UTC) for r in made)
    assert max(utc(r["attributes"]["updated"]) for r in made) >= before - timedelta(weeks=2)


def test_touch_moves_updated_to_now_and_changes_the_attributes():
    [review] = many_reviews(1, start=START, seed=9)
    before = datetime.now(UTC)
    same = touch(review, status="rejected", public_reply=None)
    first = review["attributes"]["updated"]
    touch(review, status="featured", content="Changed.", edited=True)
    second = review["attributes"]["updated"]
    assert same is review
    assert first.endswith("+00:00") and before <= utc(first) <= datetime.now(UTC)
    assert utc(second) > utc(first)  # always the newest change, even within one clock tick
    assert review["attributes"]["status"] == {"value": "featured"}
    assert review["attributes"]["content"] == "Changed." and review[UNSHOWN]["edited"] is True
    future = many_reviews(1, start=datetime.now(UTC) + timedelta(days=1), seed=9)[0]
    stamp = future["attributes"]["updated"]
    assert utc(touch(future)["attributes"]["updated"]) > utc(stamp)
    rejected = touch(many_reviews(1, start=START)[0], status="rejected")
    assert rejected["attributes"]["status"] == {"value": "rejected",
                                                "rejection_reason": {"reason": "fake"}}


# -- paging through many ------------------------------------------------------------------
def test_paging_through_10000_reviews_by_minus_updated_takes_under_5_seconds():
    with FakeKlaviyo(per_second=1000, per_minute=100_000) as fake:
        fake.reads.reviews = many_reviews(10_000, start=START)
        started = time.monotonic()
        items, pages = follow(requests.Session(),
                              f"{fake.url}/api/reviews?sort=-updated&page%5Bsize%5D=100",
                              READ_HEADERS)
        took = time.monotonic() - started
    assert pages == 100 and took < 5.0
    ids = [r["id"] for r in items]
    assert len(ids) == len(set(ids)) == 10_000
    stamps = [utc(r["attributes"]["updated"]) for r in items]
    assert stamps == sorted(stamps, reverse=True)


def test_a_review_touched_between_pages_moves_to_the_front_of_the_next_listing():
    data = many_reviews(300, start=START, seed=11)
    with FakeKlaviyo(per_second=100) as fake:
        fake.reads.reviews = data
        first = read(fake, sort="-updated", **{"page[size]": "100"}).json()
        oldest = first["data"][-1]["id"]
        touch(next(r for r in data if r["id"] == oldest), rating=1)
        again = read(fake, sort="-updated", **{"page[size]": "100"}).json()
    assert again["data"][0]["id"] == oldest
    assert again["data"][0]["attributes"]["rating"] == 1


# -- against the official descriptions ----------------------------------------------------
def official(name: str, schema: str) -> dict[str, Any]:
    from tests.test_contract import inline, official_file  # the same resolution and rule

    components = json.loads(official_file(name).read_text())["components"]["schemas"]
    return inline(components[schema], components)


def test_the_official_schemas_accept_what_both_listings_serve():
    client_schema = official("get_client_reviews", "GetClientReviewResponseDTOCollection")
    private_schema = official("get_reviews", "GetReviewResponseDTOCollectionCompoundDocument")
    with FakeKlaviyo(per_second=100) as fake:
        fixtures = [public(fake, **{"page[size]": "100"}).json(),
                    read(fake, **{"page[size]": "100"}).json()]
        fake.reads.reviews = many_reviews(1000, start=START)
        bulk = [public(fake, **{"page[size]": "100"}).json(),
                read(fake, sort="-updated", **{"page[size]": "100"}).json()]
    for client_page, private_page in (fixtures, bulk):
        jsonschema.validate(client_page, client_schema)
        jsonschema.validate(private_page, private_schema)
    listed = set(client_schema["properties"]["data"]["items"]["properties"]["attributes"][
        "properties"])
    assert listed == set(CLIENT_ATTRIBUTES)
