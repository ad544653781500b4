"""Early answers reach the client: a request body left unread is drained after the answer.

A view may answer before it reads the body (411, 413, 415, 403, 429). A client that sends
its whole body before it reads anything (urllib, many SDKs: no `Expect: 100-continue`) is
still sending when the server closes the connection, and closing a socket with unread data
makes the kernel send a reset, which destroys the answer on the client's side. So after the
answer has been written, whatever the client still sends is read and thrown away, up to a
bound in bytes and seconds: it costs what the client sends, never memory.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from typing import Any

from flask import Flask
from werkzeug.wsgi import ClosingIterator

CHUNK = 64 * 1024
# A client has this long to finish sending a body we do not want (gunicorn's own --timeout).
DRAIN_SECONDS = 30.0


class CountingInput:
    """wsgi.input, counting what the app has read of it."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.consumed = 0
        self.ended = False

    def read(self, size: int | None = -1) -> bytes:
        data = self.stream.read() if size is None or size < 0 else self.stream.read(size)
        self._count(data, size)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        data = self.stream.readline() if size is None or size < 0 \
            else self.stream.readline(size)
        self._count(data, size)
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines = self.stream.readlines(hint)
        for line in lines:
            self._count(line, len(line))
        self.ended = True
        return lines

    def __iter__(self) -> CountingInput:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def _count(self, data: bytes, size: int | None) -> None:
        self.consumed += len(data)
        if not data and size != 0:
            self.ended = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class DrainUnread:
    """WSGI middleware: after each answer, read what is left of the request body, at most
    `max_bytes` of it (beyond that the connection is simply closed)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        counting = environ["wsgi.input"] = CountingInput(environ["wsgi.input"])
        length = _content_length(environ)
        if length == 0:
            return self.app(environ, start_response)
        answer = self.app(environ, start_response)
        return ClosingIterator(answer, lambda: self.drain(counting, length))

    def drain(self, body: CountingInput, length: int | None) -> None:
        """Read and drop the rest of the body (`length` None: chunked, read to its end)."""
        if body.ended or (length is not None and body.consumed >= length):
            return
        left = self.max_bytes if length is None else length - body.consumed
        if left > self.max_bytes:
            return  # too much to wait for: the client gets a reset, as before
        deadline = time.monotonic() + DRAIN_SECONDS
        try:
            with _time_limit(DRAIN_SECONDS):
                while left > 0 and time.monotonic() < deadline:
                    data = body.stream.read(min(CHUNK, left))
                    if not data:
                        return
                    left -= len(data)
        except Exception:  # a client gone or a broken body: nothing left to save
            return


def _content_length(environ: dict[str, Any]) -> int | None:
    """The body's declared length; None for a chunked body (its end is in the stream)."""
    declared = environ.get("CONTENT_LENGTH")
    if declared:
        return int(declared) if declared.isdigit() else 0
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    return None if chunked else 0


def _time_limit(seconds: float) -> Any:
    """Under gevent (the Procfile's web role), a read that stalls is cut off after
    `seconds`; elsewhere reads end when the client does."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("socket"):
        import gevent

        return gevent.Timeout(seconds, False)
    return nullcontext()


def init_app(app: Flask) -> None:
    """Drain what a client still sends after an early answer, up to twice the largest body
    taken (a body just over the limit must still get its 413)."""
    app.wsgi_app = DrainUnread(app.wsgi_app,  # type: ignore[method-assign]
                               max_bytes=2 * app.config["MAX_CONTENT_LENGTH"])
