"""KlaviyoClient and KlaviyoError: the only module that talks to Klaviyo.

One client per thread (a requests.Session is not shared between threads). Every call has a
(connect, read) timeout. Errors carry the upstream status and Klaviyo's `errors[].detail`,
never a key: the private key lives only in the Authorization header of a request.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import requests

JSONAPI = "application/vnd.api+json"
LEADING_NUMBER = re.compile(r"\s*(\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class RateLimitReading:
    """What an answer's RateLimit-* headers said about the account's steady window: its
    limit, the calls left in it (approximate) and the seconds until it ends, read `at`
    (time.time()) when the answer came."""

    limit: int
    remaining: int
    reset: float
    at: float

    @property
    def reset_at(self) -> float:
        return self.at + self.reset


def rate_limit_reading(headers: Mapping[str, str], at: float) -> RateLimitReading | None:
    """The three headers, or None when one is missing or unreadable. Only the leading
    number of each is read (`150` or a structured `150;w=60` alike)."""
    numbers = []
    for name in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"):
        match = LEADING_NUMBER.match(headers.get(name, ""))
        if match is None:
            return None
        numbers.append(float(match.group(1)))
    limit, remaining, reset = numbers
    if limit < 1:
        return None
    return RateLimitReading(int(limit), max(0, int(remaining)), reset, at)


def next_page(document: Mapping[str, Any], params: Mapping[str, str]) -> dict[str, str] | None:
    """The query of the page after this one, from links.next's cursor; None on the last page.
    Only the cursor is taken: no URL from an answer is ever called with the key."""
    link = (document.get("links") or {}).get("next")
    cursor = parse_qs(urlsplit(link).query).get("page[cursor]", [None])[0] if link else None
    return {**params, "page[cursor]": cursor} if cursor else None


class KlaviyoError(Exception):
    """A call to Klaviyo failed. `status` is None when no HTTP answer came back."""

    def __init__(self, message: str, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    @property
    def detail(self) -> str:
        return str(self)


class KlaviyoRateLimited(KlaviyoError):
    """429: wait `retry_after` seconds before any further call."""


class KlaviyoUnavailable(KlaviyoError):
    """5xx or no connection: the request certainly did not create anything we can see."""


class KlaviyoTimeout(KlaviyoError):
    """The request was sent but no answer came in time: it may have been acted on."""


class KlaviyoRejected(KlaviyoError):
    """A 4xx other than 429: sending the same request again will not help."""


class KlaviyoKeyMissing(KlaviyoError):
    """KLAVIYO_PRIVATE_KEY is not set, so nothing can be read from Klaviyo."""


def _details(response: requests.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        parts = [str(e.get("detail") or e.get("title") or "") for e in errors]
        text = "; ".join(p for p in parts if p)
    except (ValueError, AttributeError):
        text = ""
    return text or f"HTTP {response.status_code} {response.reason or ''}".strip()


def _retry_after(response: requests.Response) -> float | None:
    raw = response.headers.get("Retry-After", "")
    try:
        return max(0.0, math.ceil(float(raw)))
    except ValueError:
        return None


class KlaviyoClient:
    """Calls Klaviyo's review endpoints with the configured keys, revision and timeouts."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.base_url = config["KLAVIYO_BASE_URL"]
        self.revision = config["KLAVIYO_REVISION"]
        self.public_key = config["KLAVIYO_PUBLIC_KEY"]
        self._private_key = config["KLAVIYO_PRIVATE_KEY"]
        self.timeout = (config["KLAVIYO_CONNECT_TIMEOUT"], config["KLAVIYO_READ_TIMEOUT"])
        self.session = requests.Session()
        self.session.headers.update({"revision": self.revision, "Accept": JSONAPI})
        # The RateLimit-* headers of the last answer (None: no answer, a 429, or none sent);
        # the caller hands them to the pacer.
        self.last_reading: RateLimitReading | None = None

    def __repr__(self) -> str:  # never show the key, even in a debugger or a traceback
        return f"KlaviyoClient({self.base_url!r}, revision={self.revision!r})"

    def create_review(self, body: bytes) -> int:
        """POST /client/reviews with the stored body; returns the status (202) or raises."""
        if not self.public_key:
            raise KlaviyoUnavailable("KLAVIYO_PUBLIC_KEY is not set")
        response = self._send(
            "POST", "/client/reviews", params={"company_id": self.public_key},
            data=body, headers={"Content-Type": JSONAPI},
        )
        return response.status_code

    def list_reviews(self, params: Mapping[str, str]) -> dict[str, Any]:
        """GET /api/reviews with Klaviyo's query parameters (filter, sort, page[size],
        page[cursor]); returns the JSON:API document."""
        return self._read("/api/reviews", params)

    def list_client_reviews(self, params: Mapping[str, str]) -> dict[str, Any]:
        """GET /client/reviews: published reviews only, without emails; no key but the
        public one (company_id)."""
        if not self.public_key:
            raise KlaviyoKeyMissing("KLAVIYO_PUBLIC_KEY is not set")
        response = self._send("GET", "/client/reviews",
                              params={**params, "company_id": self.public_key})
        try:
            return response.json()
        except ValueError:
            raise KlaviyoUnavailable("Klaviyo answered with something other than JSON",
                                     response.status_code) from None

    def get_review(self, review_id: str, include_events: bool = True) -> dict[str, Any]:
        """GET /api/reviews/{id}. `include=events` draws on a stricter limit: detail only."""
        params = {"include": "events"} if include_events else {}
        return self._read(f"/api/reviews/{quote(review_id, safe='')}", params)

    def _read(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        if not self._private_key:
            raise KlaviyoKeyMissing("KLAVIYO_PRIVATE_KEY is not set")
        # The key goes on this request only, never into the session's headers: the create
        # call shares the session and must carry no Authorization header.
        headers = {"Authorization": f"Klaviyo-API-Key {self._private_key}"}
        try:
            response = self._send("GET", path, params=params, headers=headers)
            return response.json()
        except KlaviyoError as error:  # an upstream message that echoes the key loses it
            if self._private_key not in str(error):
                raise
            message = str(error).replace(self._private_key, "[private key]")
            raise type(error)(message, error.status, error.retry_after) from None
        except ValueError:
            raise KlaviyoUnavailable("Klaviyo answered with something other than JSON",
                                     response.status_code) from None

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        self.last_reading = None
        try:
            response = self.session.request(
                method, self.base_url + path, timeout=self.timeout, allow_redirects=False,
                **kwargs,
            )
        except requests.ConnectTimeout:
            raise KlaviyoUnavailable("could not connect to Klaviyo in time") from None
        except requests.ConnectionError as error:
            # A ReadTimeout from urllib3 can surface as a ConnectionError subclass.
            if isinstance(error, requests.ReadTimeout) or "Read timed out" in str(error):
                raise KlaviyoTimeout("Klaviyo did not answer in time") from None
            raise KlaviyoUnavailable("could not connect to Klaviyo") from None
        except requests.Timeout:
            raise KlaviyoTimeout("Klaviyo did not answer in time") from None
        except requests.RequestException as error:
            raise KlaviyoUnavailable(f"request to Klaviyo failed: {type(error).__name__}") from None
        status = response.status_code
        if status != 429:
            self.last_reading = rate_limit_reading(response.headers, time.time())
        if status < 300:
            return response
        if status == 429:
            raise KlaviyoRateLimited(_details(response), status, _retry_after(response))
        if status >= 500 or status == 408:
            raise KlaviyoUnavailable(_details(response), status, _retry_after(response))
        raise KlaviyoRejected(_details(response), status)

    def close(self) -> None:
        self.session.close()
