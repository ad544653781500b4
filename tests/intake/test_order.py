"""An order's page: a review form per product, then the shop's, each sent on its own."""

from __future__ import annotations

import json
import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from werkzeug.datastructures import MultiDict

from tests.reviews import review_body
from widget.intake import pages

ORDER = ("/embed?order_id=1001&product_id=A1&product_name=Linen%20shirt&product_id=B2"
         "&product_name=Wool%20%3Csocks%3E")


@pytest.fixture
def settings(settings):
    """The closed API of production; tokens may be used at once (tests type fast)."""
    return {**settings, "WIDGET_OPEN_API": False, "WIDGET_TOKEN_MIN_SECONDS": 0}


def forms_of(html):
    """Each <form> of a page: its id, action and hidden fields."""
    found = []
    for match in re.finditer(r'<form class="kr-form" id="([\w-]+)"[^>]*?action="([^"]*)"'
                             r'(.*?)</form>', html, re.S):
        hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"',
                                 match.group(3)))
        found.append({"id": match.group(1), "action": unescape(match.group(2)),
                      "hidden": {k: unescape(v) for k, v in hidden.items()},
                      "hidden_attr": ' hidden' in match.group(0).split(">")[0],
                      "html": match.group(0)})
    return found


def queued_bodies(app):
    with app.extensions["outbox"].engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT body FROM submissions ORDER BY created_at").all()
    return [json.loads(row[0]) for row in rows]


def typed(form, **fields):
    """What a shopper sends from one form of the page: its hidden fields and their text."""
    return {**form["hidden"], "rating": "5", "content": "Soft and well made.",
            "author": "Ann", "email": "ann@example.com", **fields}


def action_path(form):
    parts = urlsplit(form["action"])
    return f"{parts.path}?{parts.query}"


def test_an_order_page_has_a_form_per_product_in_order_then_one_for_the_shop(client):
    page = client.get(ORDER)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    forms = forms_of(html)
    assert [form["id"] for form in forms] == ["kr-1-form", "kr-2-form", "kr-store-form"]
    assert [form["hidden"].get("product_id") for form in forms] == ["A1", "B2", None]
    assert [form["hidden"]["review_type"] for form in forms] == ["review", "review", "store"]
    assert all(form["hidden"]["order_id"] == "1001" for form in forms)
    assert len({form["hidden"]["idempotency_key"] for form in forms}) == 3
    assert len({form["hidden"]["form_token"] for form in forms}) == 3
    headings = re.findall(r'<h2 id="kr-[\w]+-heading">([^<]*)</h2>', html)
    assert headings == ["Linen shirt", "Wool &lt;socks&gt;", "Your review of our shop"]
    assert "<socks>" not in html
    assert "Review the 2 products of your order, then our shop." in html
    # Ids stay unique across the forms (labels, errors and the summary point at their own).
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids))


def test_products_without_names_are_numbered_and_one_product_needs_type_order(client):
    html = client.get("/embed?order_id=9&product_id=A&product_id=B").get_data(as_text=True)
    assert re.findall(r'<h2 id="kr-\d-heading">([^<]*)</h2>', html) == ["Product 1", "Product 2"]
    one = client.get("/embed?order_id=9&product_id=A&type=order").get_data(as_text=True)
    assert [form["id"] for form in forms_of(one)] == ["kr-1-form", "kr-store-form"]
    single = client.get("/embed?order_id=9&product_id=A").get_data(as_text=True)
    assert [form["id"] for form in forms_of(single)] == ["kr-form"]  # the one-product form


@pytest.mark.parametrize("query, says", [
    ("product_id=A&product_id=B", "an order's page needs the id of the order"),
    ("order_id=1&product_id=A&product_id=B&product_name=Shirt",
     "give one per product_id, in the same order, or none"),
    ("order_id=1&product_id=A&product_id=", "product 2 has an id of 1 to 255 characters"),
    ("order_id=1&product_id=A&product_id=" + "x" * 256, "product 2 has an id of 1 to 255"),
    ("order_id=1&type=order", "lists from 1 to 10 products"),
    ("order_id=1&" + "&".join(f"product_id=P{n}" for n in range(11)),
     "lists from 1 to 10 products (WIDGET_MAX_ORDER_PRODUCTS); this one lists 11"),
])
def test_an_order_the_page_cannot_show_is_a_setup_error_that_says_why(client, query, says):
    page = client.get("/embed?" + query)
    assert page.status_code == 400
    assert says in unescape(page.get_data(as_text=True))


def test_the_products_an_order_page_may_list_come_from_the_setting(make_app):
    client = make_app(WIDGET_MAX_ORDER_PRODUCTS=3).test_client()
    assert client.get("/embed?order_id=1&" + "&".join(
        f"product_id={n}" for n in range(3))).status_code == 200
    too_many = client.get("/embed?order_id=1&" + "&".join(f"product_id={n}" for n in range(4)))
    assert too_many.status_code == 400
    assert "lists from 1 to 3 products" in unescape(too_many.get_data(as_text=True))


def test_without_javascript_each_form_is_sent_on_its_own_and_the_page_comes_back(app):
    client = app.test_client()
    forms = forms_of(client.get(ORDER).get_data(as_text=True))
    answer = client.post(action_path(forms[1]), data=typed(forms[1]))
    assert answer.status_code == 200
    after = forms_of(answer.get_data(as_text=True))
    assert [form["hidden_attr"] for form in after] == [False, True, False]
    assert 'id="kr-2-thanks"' in answer.get_data(as_text=True)
    assert parse_qs(urlsplit(after[0]["action"]).query)["sent"] == ["2"]

    answer = client.post(action_path(after[2]), data=typed(after[2], content="Fast delivery."))
    html = answer.get_data(as_text=True)
    assert [form["hidden_attr"] for form in forms_of(html)] == [False, True, True]
    assert re.search(r'id="kr-order-done"[^>]*hidden', html)  # one form is left

    last = forms_of(html)[0]
    html = client.post(action_path(last), data=typed(last)).get_data(as_text=True)
    assert not re.search(r'id="kr-order-done"[^>]*hidden', html)
    assert "every review of this order has been sent" in html

    bodies = queued_bodies(app)
    assert [(b["data"]["attributes"]["review_type"],
             (b["data"]["attributes"].get("product") or {}).get("external_id"),
             b["data"]["relationships"]["order"]["data"]["id"]) for b in bodies] == [
        ("review", "B2", "1001"), ("store", None, "1001"), ("review", "A1", "1001")]


def test_a_refused_order_form_comes_back_as_typed_and_the_other_forms_stay(app):
    client = app.test_client()
    forms = forms_of(client.get(ORDER).get_data(as_text=True))
    answer = client.post(action_path(forms[0]),
                         data=typed(forms[0], rating="", content="Kept as I typed it."))
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422
    again = forms_of(html)
    assert "Kept as I typed it." in again[0]["html"]
    assert "Choose a rating from 1 to 5 stars." in again[0]["html"]
    assert 'href="#kr-1-star-1"' in again[0]["html"]
    assert "Kept as I typed it." not in again[1]["html"] + again[2]["html"]
    assert "Choose a rating" not in again[1]["html"]
    assert again[0]["hidden"]["idempotency_key"] == forms[0]["hidden"]["idempotency_key"]
    assert queued_bodies(app) == []


def test_each_form_of_an_order_is_sent_with_its_own_token_for_its_own_product(app):
    client = app.test_client()
    forms = forms_of(client.get(ORDER).get_data(as_text=True))
    swapped = typed(forms[0], form_token=forms[2]["hidden"]["form_token"])
    assert client.post(action_path(forms[0]), data=swapped).status_code == 403
    for form in forms:
        assert client.post(action_path(form), data=typed(form)).status_code == 200
    assert len(queued_bodies(app)) == 3


def send_of_order(client, order, product, content):
    body = review_body(content=content, review_type="review" if product else "store",
                       product={"external_id": product, "integration_key": "shopify"}
                       if product else ...)
    body["data"]["relationships"] = {"order": {"data": {"type": "order", "id": order}}}
    return client.post("/client/reviews", data=json.dumps(body),
                       content_type="application/vnd.api+json")


def test_the_reviews_of_one_order_count_once_against_the_email_limit(make_app):
    client = make_app(RATELIMIT_ENABLED=True, WIDGET_EMAIL_LIMIT="2/hour",
                      WIDGET_SUBMIT_LIMIT="100/minute", WIDGET_OPEN_API=True).test_client()
    # Two orders of four products and the shop: ten reviews, two against the limit.
    for order in ("1", "2"):
        for product in ("A", "B", "C", "D", None):
            answer = send_of_order(client, order, product, f"Order {order}, {product}.")
            assert answer.status_code == 202, (order, product)
    third = send_of_order(client, "3", "A", "Order 3, A.")
    assert third.status_code == 429
    assert third.get_json()["errors"][0]["source"]["pointer"] == "/data/attributes/email"


def test_one_address_sends_an_order_a_review_per_product_and_the_shops_at_most(make_app):
    client = make_app(RATELIMIT_ENABLED=True, WIDGET_MAX_ORDER_PRODUCTS=2,
                      WIDGET_SUBMIT_LIMIT="100/minute", WIDGET_OPEN_API=True).test_client()
    statuses = [send_of_order(client, "7", product, f"Text {n}.").status_code
                for n, product in enumerate(["A", "B", None, "C"])]
    assert statuses == [202, 202, 202, 429]


def test_an_order_page_filled_into_its_blank_page_is_the_page_a_full_render_gives(app):
    query = MultiDict([("order_id", "1001"), ("product_id", "A<1>"), ("product_name", "Shirt&co"),
                       ("product_id", "B\"2"), ("product_name", ""), ("locale", "fr"),
                       ("theme", "dark")])
    with app.test_request_context("/embed?" + "&".join(f"{k}={v}" for k, v in query.items())):
        context = pages.context_from(query)
        keys = {item: item * 4 for item in pages.order_items(context)}
        tokens = {item: f"t.{item}.x" for item in pages.order_items(context)}
        full = pages.render_order(context, keys, tokens)
        filled = pages.blank_order(context).fill_order(context, keys, tokens)
        assert pages.blank_order(context) is pages.blank_order(context)  # kept
    assert filled == full
