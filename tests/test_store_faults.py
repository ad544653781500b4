"""The outbox's own failures are retryable: a stopped Postgres or a full SQLite disk gets 503
with Retry-After (JSON on the API, a page keeping the text on the form), /readyz says so, and
the same running app takes reviews again once the store is back, without a restart."""

from __future__ import annotations

import io
import json
import os
import re

import pytest
from PIL import Image

from tests.reviews import data_uri, form_token, review_body
from tests.services import PostgresServer, tiny_disk

JSONAPI = "application/vnd.api+json"


def post(client, **attributes):
    return client.post("/client/reviews", data=json.dumps(review_body(**attributes)),
                       content_type=JSONAPI)


def form_post(client, content):
    return client.post("/embed", data={
        "review_type": "review", "rating": "4", "content": content, "author": "Bo",
        "email": "bo@example.com", "product_id": "42", "integration": "shopify",
        "form_token": form_token("shopify:42"), "idempotency_key": "c" * 32})


def assert_retryable(response):
    assert response.status_code == 503, response.get_data(as_text=True)[:300]
    assert int(response.headers["Retry-After"]) > 0
    assert response.get_json()["errors"][0]["code"] == "outbox_unavailable"


@pytest.mark.slow
def test_a_stopped_postgres_is_a_503_and_the_same_app_recovers_when_it_is_back(make_app):
    with PostgresServer() as database:
        recovers_after_an_outage(make_app, database)


def recovers_after_an_outage(make_app, database):
    app = make_app(DATABASE_URL=database.url, WIDGET_TOKEN_MIN_SECONDS=0)
    client = app.test_client()
    assert post(client, content="Before the outage.").status_code == 202
    database.stop()

    assert_retryable(post(client, content="During the outage."))
    page = form_post(client, "Typed during the outage.")
    assert page.status_code == 503 and "Typed during the outage." in page.get_data(as_text=True)
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["database"] == "unavailable: cannot write"

    database.start()
    assert client.get("/readyz").status_code == 200
    assert post(client, content="During the outage.").status_code == 202
    assert form_post(client, "Typed during the outage.").status_code == 200
    assert app.extensions["outbox"].counts()["queued"] == 3


def noisy_photo() -> str:
    """About a megabyte of JPEG: more than SQLite's write-ahead log can reuse."""
    out = io.BytesIO()
    Image.effect_noise((1400, 1000), 90).convert("RGB").save(out, "JPEG", quality=95)
    return data_uri(out.getvalue())


def fill(folder: str) -> str:
    """Write a file until the disk is full; its path."""
    path = os.path.join(folder, "filler")
    filler = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(filler, b"\0" * 65536):
            pass
    except OSError:  # no space left on device
        pass
    finally:
        os.close(filler)
    return path


@pytest.mark.slow
def test_a_full_sqlite_disk_is_a_503_and_readyz_says_so_until_there_is_room(make_app):
    with tiny_disk(32) as folder:
        app = make_app(DATABASE_URL=f"sqlite:///{folder}/outbox.db",
                       WIDGET_TOKEN_MIN_SECONDS=0)
        client = app.test_client()
        photo = noisy_photo()
        assert post(client, content="Room enough.", images=[photo]).status_code == 202
        assert client.get("/readyz").status_code == 200
        filler = fill(folder)

        assert_retryable(post(client, content="The disk is full.", images=[photo]))
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert re.match(r"(full: [\d.]+ MB free|unavailable)",
                        ready.get_json()["checks"]["database"])

        os.unlink(filler)
        assert client.get("/readyz").status_code == 200
        assert post(client, content="The disk is full.", images=[photo]).status_code == 202
        app.extensions["outbox"].engine.dispose()
