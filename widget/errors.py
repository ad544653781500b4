"""One JSON:API error shape for the API, produced only by the handlers registered here."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

JSONAPI = "application/vnd.api+json"

log = logging.getLogger(__name__)


@dataclass
class Problem:
    """One entry of a JSON:API `errors` array."""

    detail: str
    pointer: str | None = None
    code: str = "invalid"
    title: str = "Invalid input"
    parameter: str | None = None

    def as_json(self, status: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "status": str(status),
            "code": self.code,
            "title": self.title,
            "detail": self.detail,
        }
        if self.pointer is not None:
            body["source"] = {"pointer": self.pointer}
        elif self.parameter is not None:
            body["source"] = {"parameter": self.parameter}
        return body


@dataclass
class ApiError(Exception):
    """Raised anywhere below a view; rendered once, as JSON:API, by the handler."""

    status: int
    problems: list[Problem]
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def one(cls, status: int, code: str, title: str, detail: str, **kwargs: Any) -> ApiError:
        headers = kwargs.pop("headers", {})
        return cls(status, [Problem(detail, code=code, title=title, **kwargs)], headers)


def pointers(messages: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Flatten marshmallow's nested messages into (JSON pointer, message) pairs."""
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            if key == "_schema":
                yield from pointers(value, prefix)
            else:
                token = str(key).replace("~", "~0").replace("/", "~1")
                yield from pointers(value, f"{prefix}/{token}")
    elif isinstance(messages, Iterable) and not isinstance(messages, str):
        for value in messages:
            yield from pointers(value, prefix)
    else:
        yield (prefix or "/", str(messages))


def from_validation(error: ValidationError, status: int = 422) -> ApiError:
    problems = [Problem(message, pointer=pointer) for pointer, message in pointers(error.messages)]
    return ApiError(status, problems)


def log_refusal(error: ApiError) -> None:
    """One line for a refused request (what and where, never the values sent): refusals are
    ordinary; a traceback in the log means our own fault."""
    first = error.problems[0] if error.problems else Problem("")
    field = first.pointer or first.parameter or "-"
    more = f" (+{len(error.problems) - 1} more)" if len(error.problems) > 1 else ""
    log.info("refused %s %s status=%d code=%s field=%s%s", request.method, request.path,
             error.status, first.code, field, more)


def api_response(error: ApiError) -> Response:
    response = jsonify({"errors": [p.as_json(error.status) for p in error.problems]})
    response.status_code = error.status
    response.content_type = JSONAPI
    response.headers.update(error.headers)
    return response


def _http_problem(error: HTTPException) -> ApiError:
    code = {
        400: "bad_request",
        404: "not_found",
        405: "method_not_allowed",
        411: "length_required",
        413: "payload_too_large",
        415: "unsupported_media_type",
        429: "throttled",
    }.get(error.code or 500, "http_error")
    headers = {}
    if error.code == 429:
        retry_after = getattr(error, "retry_after", None) or 60
        headers["Retry-After"] = str(retry_after)
    if error.code == 405 and error.valid_methods:
        headers["Allow"] = ", ".join(error.valid_methods)
    return ApiError.one(error.code or 500, code, error.name, error.description or error.name,
                        headers=headers)


def wants_json() -> bool:
    """The API and machine endpoints always answer JSON; pages answer HTML."""
    path = request.path
    if path.startswith(("/client/", "/openapi.json", "/healthz", "/readyz")):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json", JSONAPI])
    return best in ("application/json", JSONAPI)


def init_app(app: Flask) -> None:
    """Register the handlers: JSON:API on the API, plain pages elsewhere.

    Call before limiter.init_app(): after_request functions run last-registered first, so
    the clean-up below sees flask-limiter's headers.
    """

    @app.after_request
    def retry_after_only_when_refused(response: Response) -> Response:
        # flask-limiter adds Retry-After to every limited response; it means something
        # only on a refusal.
        if response.status_code not in (429, 503):
            response.headers.pop("Retry-After", None)
        return response

    @app.errorhandler(ApiError)
    def handle_api_error(error: ApiError) -> Response:
        log_refusal(error)
        return api_response(error)

    @app.errorhandler(ValidationError)
    def handle_validation(error: ValidationError) -> Response:
        refusal = from_validation(error)
        log_refusal(refusal)
        return api_response(refusal)

    @app.errorhandler(HTTPException)
    def handle_http(error: HTTPException) -> Any:
        if wants_json():
            return api_response(_http_problem(error))
        return error

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.path)
        if wants_json():
            return api_response(ApiError.one(
                500, "server_error", "Server error",
                "Something went wrong on our side; the request was not accepted.",
            ))
        return "Something went wrong on our side.", 500, {"Content-Type": "text/plain"}
