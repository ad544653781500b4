"""The fake Klaviyo itself: RateLimit headers, window origin, another integration's usage,
creates on the read side, late and lost answers, the creation hook, and the measurements
the pacing tests rely on. Each test takes well under 5 s."""

from __future__ import annotations

import json
import math
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from tests.fake_klaviyo import JSONAPI, REVISION, FakeKlaviyo, Received, Windows

PRIVATE_KEY = "pk_test_private_key_never_shown"
READ_HEADERS = {"Authorization": f"Klaviyo-API-Key {PRIVATE_KEY}", "revision": REVISION}
RATELIMIT = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


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
