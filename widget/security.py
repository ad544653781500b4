"""Client addresses and security headers: who a request came from, and what every answer says.

The client address and scheme come from X-Forwarded-For / X-Forwarded-Proto only through
the WIDGET_TRUSTED_PROXIES hops a platform's router appends; with 0 they are ignored (said
once per process). Headers a blueprint already set (moderation sets its own CSP and
Cache-Control) are left as they are. Views marked `@frameable` may be framed by
WIDGET_FRAME_ANCESTORS; every other page only by this site. Answers over https carry HSTS.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, current_app, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

log = logging.getLogger(__name__)

# No inline script or style anywhere; photos preview from blob: URLs and may be https:
# links; the form posts and fetches only to this origin; the demo page frames the form.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob: https:; connect-src 'self'; form-action 'self'; "
    "frame-src 'self'; base-uri 'none'; frame-ancestors {ancestors}"
)
# Powerful features the widget never uses, denied to it and to anything it could frame.
PERMISSIONS = (
    "camera=(), microphone=(), geolocation=(), payment=(), usb=(), serial=(), "
    "magnetometer=(), gyroscope=(), accelerometer=(), display-capture=()"
)
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": PERMISSIONS,
}
# Browsers that saw this over https use only https here for a year (seconds). Not
# includeSubDomains: the merchant's other subdomains are not this service's to decide.
HSTS = "max-age=31536000"


class ForwardedForIgnored:
    """WSGI middleware for WIDGET_TRUSTED_PROXIES=0: says once per process that a request
    carried X-Forwarded-For, which is then ignored, and when to trust it."""

    def __init__(self, wsgi_app: WSGIApp) -> None:
        self.wsgi_app = wsgi_app
        self.told = False
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not self.told and "HTTP_X_FORWARDED_FOR" in environ:
            with self._lock:
                if not self.told:
                    self.told = True
                    log.warning(
                        "X-Forwarded-For ignored: WIDGET_TRUSTED_PROXIES=0, so a client's "
                        "address is its connection's (here %s). If a proxy or platform "
                        "router is in front, set WIDGET_TRUSTED_PROXIES to the number of "
                        "proxies that append to X-Forwarded-For (1 for one router): until "
                        "then all clients share that proxy's address and rate limits. Said "
                        "once per process.", environ.get("REMOTE_ADDR", "-"))
        return self.wsgi_app(environ, start_response)


def frameable(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a view whose pages storefronts may frame (the form and its answers)."""
    view.frameable = True  # type: ignore[attr-defined]
    return view


@functools.lru_cache(maxsize=8)
def csp(ancestors: str) -> str:
    return CSP.format(ancestors=ancestors)


def _frame_ancestors() -> str:
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "frameable", False):
        return current_app.config["WIDGET_FRAME_ANCESTORS"]
    return "'self'"


class NoSessions(SecureCookieSessionInterface):
    """The widget keeps no Flask session and sets no cookie (storefronts frame it, and the
    form needs none): a request opens none, instead of building a cookie signer for it."""

    def open_session(self, app: Flask, request: Any) -> Any:
        return self.make_null_session(app)

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        return None


def init_app(app: Flask) -> None:
    """Take the client address and scheme from trusted proxies only; add the headers; keep
    no sessions."""
    app.session_interface = NoSessions()
    hops = app.config["WIDGET_TRUSTED_PROXIES"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore
    else:
        app.wsgi_app = ForwardedForIgnored(app.wsgi_app)  # type: ignore

    @app.after_request
    def security_headers(response: Response) -> Response:
        # One pass over the headers a view set (each lookup by name would be another).
        present = {name.lower() for name, _ in response.headers.items()}
        added = [(name, value) for name, value in HEADERS.items()
                 if name.lower() not in present]
        if request.is_secure and "strict-transport-security" not in present:
            added.append(("Strict-Transport-Security", HSTS))  # https only (RFC 6797, 8.1)
        if response.mimetype == "text/html" and "content-security-policy" not in present:
            added.append(("Content-Security-Policy", csp(_frame_ancestors())))
        response.headers.extend(added)
        return response
