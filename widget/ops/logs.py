"""LOG_FORMAT=json: every line the process writes is one JSON object.

The app's loggers (set up in create_app), gunicorn's error and access logs
(widget/access_log.py), warnings and uncaught exceptions in any thread all go through
JsonFormatter; a traceback is a field of its line, not lines of its own. The default, text,
is unchanged.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Any

from flask import Flask

# Fields of an access-log record (gunicorn's atoms, already without secrets), by name.
ACCESS_FIELDS = {"h": "remote", "m": "method", "U": "path", "s": "status", "B": "bytes",
                 "a": "user_agent"}


class JsonFormatter(logging.Formatter):
    """One object a line: time (UTC), level, logger, message, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        atoms = record.args if isinstance(record.args, dict) else None
        if record.name == "gunicorn.access" and atoms:
            for atom, name in ACCESS_FIELDS.items():
                if atom in atoms:
                    line[name] = atoms[atom]
            if "D" in atoms:  # microseconds
                line["duration_ms"] = round(int(atoms["D"]) / 1000, 3)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def use_json(handlers: list[logging.Handler]) -> None:
    formatter = JsonFormatter()
    for handler in handlers:
        handler.setFormatter(formatter)


def log_uncaught() -> None:
    """Uncaught exceptions (the main thread, other threads) and warnings as log records,
    not as raw tracebacks on standard error."""
    uncaught = logging.getLogger("widget.uncaught")

    def excepthook(kind: Any, value: Any, traceback: Any) -> None:
        uncaught.critical("uncaught exception", exc_info=(kind, value, traceback))

    def thread_excepthook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread else "?"
        uncaught.critical("uncaught exception in thread %s", name,
                          exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook
    logging.captureWarnings(True)


def init_app(app: Flask) -> None:
    """JSON lines on the root logger's handlers (standard error), when LOG_FORMAT=json."""
    if app.config["LOG_FORMAT"] != "json" or app.testing:
        return
    use_json(logging.getLogger().handlers)
    log_uncaught()
