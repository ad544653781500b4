"""Helpers for the form's browser tests: a storefront on another origin, photos, frames."""

from __future__ import annotations

import base64
import io
import re
from html import escape
from pathlib import Path

from flask import Flask
from PIL import ExifTags, Image

from tests.services import unavailable

AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
THANKS = "We received your review. It will appear on the site after moderation."
QUESTIONS = [
    {"id": "fit", "label": {"en": "How does it fit?", "fr": "Quelle taille ?"},
     "choices": ["Small", "True to size", "Large"], "required": True},
    {"id": "use", "label": "What do you use it for?"},
]


def storefront(widget_url: str, **data: str) -> Flask:
    """A shop's product page that embeds the form with the loader, as a merchant would."""
    attributes = " ".join(f'data-{key.replace("_", "-")}="{value}"'
                          for key, value in data.items())
    html = (f"<!doctype html><html lang=en><title>Shop</title><h1>Shirt</h1>"
            f'<script src="{widget_url}/embed.js" {attributes} async></script>'
            "<footer>Shop footer</footer></html>")
    shop = Flask("shop")
    shop.add_url_rule("/", "product", lambda: html)
    return shop


def widget_frame(page):
    """The form's frame once the loader has shown it."""
    page.wait_for_selector("iframe", state="visible", timeout=10_000)
    frame = page.frame_locator("iframe").locator("#kr-form")
    frame.wait_for()
    return next(f for f in page.frames if re.search(r"/embed\?", f.url))


def photo_12mp(directory: Path) -> Path:
    """A 4000x3000 camera JPEG (about 5.6 MB) with EXIF, GPS included."""
    noise = Image.effect_noise((4000, 3000), 40)
    gradient = Image.linear_gradient("L").resize((4000, 3000))
    image = Image.merge("RGB", (noise, gradient, Image.eval(gradient, lambda v: 255 - v)))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "TestCam"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 29.0)
    path = directory / "IMG_0001.jpg"
    image.save(path, "JPEG", quality=90, exif=exif)
    return path


def small_photo(directory: Path, name: str = "small.png", color=(30, 120, 200)) -> Path:
    path = directory / name
    Image.new("RGB", (320, 240), color).save(path)
    return path


def jpeg_from(uri: str) -> bytes:
    header, _, payload = uri.partition(",")
    assert header == "data:image/jpeg;base64", header
    return base64.b64decode(payload)


def open_jpeg(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    return image


def axe_source() -> str:
    """axe-core from npm (tests/browser/package.json); required in CI, optional elsewhere."""
    if not AXE.exists():
        unavailable("axe-core", "npm ci --prefix tests/browser")
    return AXE.read_text(encoding="utf-8")


def focused_id(frame) -> str:
    return frame.evaluate("document.activeElement && document.activeElement.id")


# -- the reviews display ----------------------------------------------------------------------
def shop(widget_url: str, pages: dict[str, dict[str, str]]) -> Flask:
    """A shop whose pages (path: the loader's data-* attributes) each embed one widget, the
    attributes escaped as a theme's template escapes them."""
    shop = Flask("shop")
    for path, data in pages.items():
        attributes = " ".join(f'data-{key.replace("_", "-")}="{escape(value)}"'
                              for key, value in data.items())
        html = (f"<!doctype html><html lang=en><title>Shop</title><h1>Shirt</h1>"
                f'<script src="{widget_url}/embed.js" {attributes} async></script>'
                "<footer>Shop footer</footer></html>")
        shop.add_url_rule(path, path, lambda html=html: html)
    return shop


def reviews_frame(page):
    """The reviews' frame once the loader has shown it."""
    page.wait_for_selector("iframe", state="visible", timeout=10_000)
    page.frame_locator("iframe").locator(".kr-display").wait_for()
    return next(f for f in page.frames if re.search(r"/reviews\?", f.url))


def host_jsonld(page) -> list[str]:
    """The text of each schema.org script in the host page's head (and how many elsewhere)."""
    return page.evaluate("""() => [...document.querySelectorAll(
        'script[type="application/ld+json"]')].map(s => s.parentNode === document.head
        ? s.textContent : 'outside the head: ' + s.textContent)""")
