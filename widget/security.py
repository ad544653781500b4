"""Security headers on every response; a strict Content-Security-Policy on pages.

Headers a blueprint already set (moderation sets its own CSP and Cache-Control) are left as
they are. Views marked `@frameable` may be framed by WIDGET_FRAME_ANCESTORS; every other
page only by this site.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, request

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


def frameable(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a view whose pages storefronts may frame (the form and its answers)."""
    view.frameable = True  # type: ignore[attr-defined]
    return view


def _frame_ancestors() -> str:
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "frameable", False):
        return current_app.config["WIDGET_FRAME_ANCESTORS"]
    return "'self'"


def init_app(app: Flask) -> None:
    @app.after_request
    def security_headers(response: Response) -> Response:
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if response.mimetype == "text/html":
            response.headers.setdefault(
                "Content-Security-Policy", CSP.format(ancestors=_frame_ancestors())
            )
        return response
