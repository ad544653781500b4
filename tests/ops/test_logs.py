"""LOG_FORMAT=json: one object a line, a traceback inside its line."""

from __future__ import annotations

import json
import logging
import sys

from widget.ops.logs import JsonFormatter


def record(message, *args, exc_info=None, name="widget.test"):
    return logging.LogRecord(name, logging.WARNING, __file__, 1, message, args, exc_info)


def test_a_record_is_one_json_line_with_time_level_logger_and_message():
    line = JsonFormatter().format(record("sent %s\nnext", "é"))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "sent é\nnext"
    assert (entry["level"], entry["logger"]) == ("warning", "widget.test")
    assert entry["time"].endswith("Z") and "T" in entry["time"]


def test_a_traceback_is_a_field_of_its_line_not_lines_of_its_own():
    try:
        raise ValueError("boom")
    except ValueError:
        line = JsonFormatter().format(record("failed", exc_info=sys.exc_info()))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["exception"].startswith("Traceback") and "ValueError: boom" in entry["exception"]


def test_an_access_line_carries_its_request_as_fields():
    atoms = {"h": "10.0.0.1", "m": "GET", "U": "/moderation/", "s": "401", "B": 12,
             "a": "curl", "D": 2500, "r": "GET /moderation/ HTTP/1.1"}
    entry = json.loads(JsonFormatter().format(record("%(r)s %(s)s", atoms,
                                                     name="gunicorn.access")))
    assert entry["message"] == "GET /moderation/ HTTP/1.1 401"
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/moderation/", "401")
    assert entry["duration_ms"] == 2.5 and entry["remote"] == "10.0.0.1"
