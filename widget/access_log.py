"""gunicorn's access log without secrets: no Basic-auth user name, no moderation query strings.

gunicorn's default format logs the Basic-auth user (a password typed into the user field
lands there) and the whole request line, whose query string on /moderation is a
moderator's search text. The Procfile runs gunicorn with `--logger-class
widget.access_log.AccessLog`.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from widget.config import environ, log_format
from widget.ops.logs import use_json

MODERATION = "/moderation"
# Atoms a custom --access-logformat could use to print the Authorization header itself.
AUTHORIZATION_ATOMS = ("{authorization}i", "{http_authorization}e")


def without_query(uri: str) -> str:
    """The request target up to its query string."""
    return uri.split("?", 1)[0]


class AccessLog(Logger):
    """gunicorn's Logger whose user atom is always '-' and whose /moderation lines keep the
    path but drop the query from every atom that carries it (request line, URL, query);
    one JSON object a line with LOG_FORMAT=json."""

    def setup(self, cfg: Any) -> None:
        """gunicorn's handlers, given the JSON formatter when LOG_FORMAT=json (read from the
        environment: the master sets up its logs before any app exists)."""
        super().setup(cfg)
        if log_format(environ()) == "json":
            use_json(self.error_log.handlers + self.access_log.handlers)

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any],
              request_time: Any) -> dict[str, Any]:
        """gunicorn's atoms, with the user and moderation queries left out."""
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["u"] = "-"
        for name in AUTHORIZATION_ATOMS:
            if name in atoms:
                atoms[name] = "-"
        # PATH_INFO is decoded, so /%6Doderation is caught too; the raw target is cut rather
        # than rebuilt from it, so nothing decoded (a %0A) reaches the log line.
        if (environ.get("PATH_INFO") or "").startswith(MODERATION):
            raw = environ.get("RAW_URI") or ""
            atoms["r"] = (f"{environ.get('REQUEST_METHOD')} {without_query(raw)} "
                          f"{environ.get('SERVER_PROTOCOL')}")
            atoms["q"] = ""
            for name in ("{raw_uri}e", "{request_uri}e"):
                if name in atoms:
                    atoms[name] = without_query(str(atoms[name]))
            if "{query_string}e" in atoms:
                atoms["{query_string}e"] = ""
        return atoms
