"""The web worker the Procfile runs: gunicorn's gevent worker, taking turns between
connections.

gevent switches greenlets only when one would block. A kept-alive connection whose next
request has already arrived by the time its response is written (a busy storefront, a
proxy reusing connections, a load test) is then read and served again at once, and again:
up to hundreds of requests in a row were seen while the other connections' requests waited,
a second and more (docs/benchmarks.md, "Taking turns"). Yielding to the hub after each
request serves the waiting connections in turn, for 1-5% of throughput.
"""

from __future__ import annotations

from typing import Any

import gevent
from gunicorn.workers.ggevent import GeventWorker


class FairGeventWorker(GeventWorker):
    """GeventWorker that lets every other ready connection go before its next request."""

    def handle_request(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().handle_request(*args, **kwargs)
        finally:
            gevent.sleep(0)
