"""Tests of widget/ops/: metrics, webhooks, JSON logs; and a webhook receiver on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client.parser import text_string_to_metric_families


class Receiver:
    """A real HTTP server on loopback that takes webhook POSTs, checks nothing, and keeps
    each one (headers, body); it can be told to answer an error the next `count` times."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.answered: list[int] = []
        self.lock = threading.Lock()
        self.failures: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    status = receiver.failures.pop(0) if receiver.failures else 204
                    if status < 300:
                        receiver.received.append((dict(self.headers), body))
                    receiver.answered.append(status)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/widget"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail(self, count: int, status: int = 503) -> None:
        with self.lock:
            self.failures = [status] * count

    def events(self) -> list[dict]:
        with self.lock:
            return [json.loads(body) for _, body in self.received]

    def wait_for(self, predicate, timeout: float = 10.0) -> list[dict]:
        """The events received once `predicate(events)` holds (or the timeout passes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.events()):
                break
            time.sleep(0.02)
        return self.events()


def signed_by(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does: recompute the HMAC of the raw body, compare in constant time."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get("X-Widget-Signature", ""), expected)


def scrape(client_or_get, token: str = "metrics-token") -> dict[str, dict]:
    """/metrics parsed by prometheus-client: {family name: {(sample name, labels): value}}."""
    response = client_or_get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.status_code
    text = response.get_data(as_text=True) if hasattr(response, "get_data") else response.text
    families = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for sample in family.samples}
    return families


def sample(families, family, name=None, **labels):
    """One sample's value (0 when the sample is absent)."""
    key = (name or family, tuple(sorted(labels.items())))
    return families.get(family, {}).get(key, 0.0)
