"""Slow clients cannot freeze the service: the Procfile's web role serves others meanwhile.

gunicorn's gevent worker (the Procfile) gives each connection a greenlet rather than one of
a few threads, so bodies that trickle in cost memory, not capacity.
"""

from __future__ import annotations

import socket
import time

import pytest
import requests

from tests.processes import gunicorn
from tests.reviews import review_body

SLOW_CLIENTS = 60  # far more than any thread pool the web role could have


@pytest.mark.slow
def test_trickling_uploads_do_not_hold_up_other_requests(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'outbox.db'}", "WIDGET_SENDER": "off",
           "RATELIMIT_ENABLED": "false", "WIDGET_OPEN_API": "true", "SECRET_KEY": "test",
           "WIDGET_TRUSTED_PROXIES": "0"}
    web = gunicorn(env, log_path=tmp_path / "web.log").wait_ready()
    slow = []
    try:
        for _ in range(SLOW_CLIENTS):
            conn = socket.create_connection(("127.0.0.1", web.port))
            conn.sendall(b"POST /client/reviews HTTP/1.1\r\nHost: shop\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
            slow.append(conn)
        time.sleep(0.5)
        for conn in slow[::3]:  # still trickling
            conn.sendall(b" ")
        started = time.monotonic()
        assert requests.get(web.url + "/healthz", timeout=5).status_code == 200
        response = requests.post(web.url + "/client/reviews", json=review_body(), timeout=5)
        assert response.status_code == 202
        assert time.monotonic() - started < 2.0
    finally:
        for conn in slow:
            conn.close()
        web.stop()
