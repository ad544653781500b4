"""Mutated photos, thousands of them (seeded, the same on every run), through the API and the
no-JavaScript form: every answer is a 202 or a specific 4xx, never a 5xx."""

from __future__ import annotations

import io
import time

from tests.photo_mutants import mutants, run_api
from tests.reviews import form_token

API_MUTANTS = 4000
FORM_MUTANTS = 400


def test_thousands_of_mutated_photos_get_a_202_or_a_json_api_4xx_and_never_a_5xx(make_app):
    client = make_app().test_client()
    started = time.monotonic()
    tally = run_api(client, API_MUTANTS, seed=1)
    assert tally.bad == [], tally.bad[:5]
    assert tally.mutants == API_MUTANTS and tally.server_errors == 0
    # The fuzz reaches both sides: mutants Pillow decodes, and every kind of refusal.
    assert tally.statuses[202] > API_MUTANTS // 10, tally.statuses
    assert tally.statuses[422] > API_MUTANTS // 2, tally.statuses
    assert time.monotonic() - started < 45


def test_mutated_photos_posted_without_javascript_get_the_form_back_as_typed_with_a_message(
        make_app):
    app = make_app(WIDGET_OPEN_API=False, WIDGET_TOKEN_MIN_SECONDS=0)
    client = app.test_client()
    answers = {}
    for number, mutant in enumerate(mutants(FORM_MUTANTS, seed=2)):
        fields = {"review_type": "review", "rating": "4", "author": "Ann",
                  "content": f"Fuzzed form review {number}.",
                  "email": f"form-fuzz-{number}@example.com", "product_id": "42",
                  "integration": "shopify", "idempotency_key": f"fuzz{number:028d}",
                  "form_token": form_token("shopify:42"),
                  "photos": (io.BytesIO(mutant.data), "photo", f"image/{mutant.format.lower()}")}
        page = client.post("/embed", data=fields, content_type="multipart/form-data")
        html = page.get_data(as_text=True)
        answers[page.status_code] = answers.get(page.status_code, 0) + 1
        where = (mutant.seed, mutant.mutation, page.status_code)
        assert page.status_code in (200, 413, 422), where
        if page.status_code == 200:
            assert "We received your review." in html, where
        else:  # the shopper's text kept, the photo named
            assert "Photo 1 could not be used" in html, where
            assert f"Fuzzed form review {number}." in html, where
    assert answers.get(200, 0) > FORM_MUTANTS // 10 and answers.get(422, 0) > FORM_MUTANTS // 2
