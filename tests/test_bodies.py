"""Bodies as clients really send them, against the Procfile's gunicorn: early answers reach
clients that send everything before reading, and malformed bodies get a 4xx, never a 5xx."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest

from tests import hostile_corpus as hostile
from tests.processes import gunicorn
from tests.reviews import data_uri, review_body

MIB = hostile.MIB


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bodies")
    env = {"DATABASE_URL": f"sqlite:///{tmp / 'outbox.db'}", "WIDGET_SENDER": "off",
           "RATELIMIT_ENABLED": "false", "SECRET_KEY": "test", "WIDGET_TRUSTED_PROXIES": "0",
           "WIDGET_OPEN_API": "true"}
    service = gunicorn(env, log_path=tmp / "web.log").wait_ready()
    service.log_path = tmp / "web.log"
    yield service
    service.stop()


def exchange(web, head: bytes, body: bytes = b"", chunk: int = 256 * 1024) -> bytes:
    """Send the request head and the whole body before reading anything (as urllib and
    many SDKs do), then read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", web.port), timeout=30) as conn:
        conn.sendall(head)
        for at in range(0, len(body), chunk):
            conn.sendall(body[at:at + chunk])
        answer = b""
        while data := conn.recv(65536):
            answer += data
    return answer


def status_and_body(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.slow
def test_a_40_mb_body_sent_without_expect_gets_its_json_413_not_a_reset(web):
    status, headers, answer = status_and_body(exchange(web, *hostile.oversized_body(40)))
    assert status == 413
    assert headers["content-type"] == "application/vnd.api+json"
    assert json.loads(answer)["errors"][0]["code"] == "payload_too_large"


@pytest.mark.slow
@pytest.mark.parametrize("content_type, status, code", [
    ("text/plain", 415, "unsupported_media_type"),
    ("application/json", 403, "origin_not_allowed"),
])
def test_urllib_reads_every_early_answer(web, content_type, status, code):
    request = urllib.request.Request(
        web.url + "/client/reviews", data=b"{" + b" " * (8 * MIB) + b"}", method="POST",
        headers={"Content-Type": content_type, "Origin": "https://elsewhere.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    with refused.value as answer:
        assert answer.code == status
        assert json.loads(answer.read())["errors"][0]["code"] == code


@pytest.mark.slow
@pytest.mark.parametrize("name, head, body, expected", hostile.MALFORMED_FORM_POSTS,
                         ids=[case[0] for case in hostile.MALFORMED_FORM_POSTS])
def test_malformed_form_posts_get_a_4xx_page(web, name, head, body, expected):
    status, headers, page = status_and_body(exchange(web, head, body))
    assert status == expected, page[:500]
    assert headers["content-type"].startswith("text/html")
    assert b'id="kr-form"' in page
    if expected == 400:  # one line, as every refusal logs, never a traceback
        assert "refused POST /embed status=400 code=malformed_form" in web.log_path.read_text()


@pytest.mark.slow
def test_a_refused_photo_logs_one_line_and_no_traceback(web):
    svg = data_uri(b"<svg onload=alert(1)>", "image/jpeg")
    request = urllib.request.Request(
        web.url + "/client/reviews", data=json.dumps(review_body(images=[svg])).encode(),
        method="POST", headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    with refused.value as answer:
        assert answer.code == 422
    log = web.log_path.read_text()
    assert "refused POST /client/reviews status=422 code=invalid " \
           "field=/data/attributes/images/0" in log
    assert "Traceback" not in log and "PhotoError" not in log
