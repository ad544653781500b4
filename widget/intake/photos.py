"""Photo references: parse data-URIs, sniff, decode fully, strip, orient, downscale, re-encode."""

from __future__ import annotations

import binascii
import hashlib
import io
import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pybase64
from flask import Flask, current_app
from marshmallow import ValidationError
from PIL import Image, UnidentifiedImageError

# Declared media types we take, and the Pillow decoder each one may use (an allowlist:
# nothing else is ever tried on the bytes).
DECLARED = {"image/jpeg": "JPEG", "image/jpg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
DATA_URI = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)(?:;[\w-]+=[^;,]*)*;base64,", re.ASCII)
# Markup inside image bytes means a polyglot (a file that is also a page or a script).
MARKUP = re.compile(rb"<\s*(?:script|html|svg|iframe|body|object|embed|\?xml|!doctype)", re.I)
MAX_URL_CHARS = 2048
# An https URL with a plain host name and printable ASCII after it. Klaviyo fetches it
# itself; we never do. The same pattern describes photo URLs in /openapi.json.
URL_PATTERN = r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?([/?#][\x21-\x7e]*)?$"
ORIENTATION = 0x0112
T = TypeVar("T")
TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
HASH_CHUNK = 1 << 20
# Tried in order until the photo fits its share of the body: (longest edge cap, JPEG quality).
ATTEMPTS = ((1.0, 85), (1.0, 75), (1.0, 65), (0.75, 70), (0.5, 65))


class PhotoError(ValueError):
    """The reference is not a photo we can accept (answered 422)."""


class PhotoTooLarge(PhotoError):
    """The photo cannot be taken or made to fit Klaviyo's body cap (answered 413)."""


class PhotoBusy(Exception):
    """No room to decode the photo now (answered 503 with Retry-After)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PhotosRefused(ValidationError):
    """Photos of one review that cannot be taken, by index; `status` is 413 when every one
    of them only cannot fit, else 422."""

    def __init__(self, messages: dict[int, str], status: int) -> None:
        super().__init__({"data": {"attributes": {"images": {
            index: [message] for index, message in messages.items()}}}})
        self.status = status


@dataclass(frozen=True)
class PhotoPolicy:
    max_photos: int = 5
    max_data_uri_chars: int = 16_000_000
    max_pixels: int = 50_000_000
    max_edge: int = 2048


def is_url(reference: str) -> bool:
    return not reference.startswith("data:")


def check_reference(reference: str, policy: PhotoPolicy) -> None:
    """Cheap checks before any decoding: the scheme, the declared type, the length."""
    if reference.startswith("data:"):
        match = DATA_URI.match(reference)
        if not match:
            raise PhotoError("A photo must be a base64 data-URI (data:image/jpeg;base64,...).")
        mime = match["mime"].lower()
        if mime not in DECLARED:
            raise PhotoError(f"{mime} is not accepted; send a JPEG, PNG or WebP photo.")
        if len(reference) > policy.max_data_uri_chars:
            raise PhotoTooLarge(
                f"The photo is {len(reference):,} characters of base64; the limit is "
                f"{policy.max_data_uri_chars:,}. Send a smaller photo."
            )
        return
    if len(reference) > MAX_URL_CHARS:
        raise PhotoError(f"A photo URL must be at most {MAX_URL_CHARS} characters.")
    if not re.match(URL_PATTERN, reference):
        raise PhotoError("A photo must be an https:// URL (plain host name, no spaces) or a "
                         "base64 data-URI.")


def sniff(data: bytes) -> str | None:
    """Name the format the bytes really are, whatever was declared."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return "markup"
    return None


def decode(reference: str) -> tuple[str, bytes]:
    """The declared Pillow format and the raw bytes of a data-URI."""
    match = DATA_URI.match(reference)
    assert match, "check_reference() runs first"
    try:
        # pybase64 (SIMD) decodes a 6 MB data-URI in 0.4 ms where binascii takes 7.5, reads
        # the ASCII str without a bytes copy, and is as strict (stricter on padding).
        data = pybase64.b64decode(reference[match.end():], validate=True)
    except (binascii.Error, ValueError):
        raise PhotoError("The photo's base64 data is not valid.") from None
    if not data:
        raise PhotoError("The photo is empty.")
    return DECLARED[match["mime"].lower()], data


def open_photo(declared: str, photo: io.BytesIO, policy: PhotoPolicy) -> Image.Image:
    """Open with the one allowed decoder, refusing lies, polyglots, bombs and animations."""
    data = photo.getvalue()  # the stream's own buffer, not a copy
    actual = sniff(data)
    if actual == "markup":
        raise PhotoError("SVG and HTML are not accepted; send a JPEG, PNG or WebP photo.")
    if actual == "GIF":
        raise PhotoError("GIF images are not accepted; send a JPEG, PNG or WebP photo.")
    if actual is None:
        raise PhotoError("The data is not a JPEG, PNG or WebP image.")
    if actual != declared:
        raise PhotoError(f"The photo is declared as {declared} but its bytes are {actual}.")
    if MARKUP.search(data):
        raise PhotoError("The photo also contains HTML or script; it is refused.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(photo, formats=[declared])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoError(_too_many_pixels(policy)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise PhotoError(f"The photo is not a readable {declared} image.") from None
    width, height = image.size
    if width * height > policy.max_pixels or width < 1 or height < 1:
        raise PhotoError(_too_many_pixels(policy, image.size))
    if getattr(image, "n_frames", 1) > 1:
        raise PhotoError("Animated images are not accepted; send a still photo.")
    return image


def _too_many_pixels(policy: PhotoPolicy, size: tuple[int, int] | None = None) -> str:
    limit = f"the limit is {policy.max_pixels / 1e6:g} megapixels"
    if size:
        return f"The photo is {size[0]}x{size[1]} pixels; {limit}."
    return f"The photo has too many pixels; {limit}."


def load_scaled(image: Image.Image, max_edge: int) -> None:
    """Decode the pixels, at a reduced scale when the longest edge allows it."""
    if image.format == "JPEG":
        # Let the JPEG decoder scale by 1/2, 1/4 or 1/8 while decoding (DCT scaling) when
        # the result keeps at least 90% of the edge we send: a 12 MP photo then costs a
        # quarter of a full decode. A truncated file still fails in load().
        scale = draft_scale(max(image.size), max_edge)
        if scale > 1:
            width, height = image.size
            image.draft("RGB", (-(-width // scale), -(-height // scale)))
    try:
        image.thumbnail((max_edge, max_edge), Image.Resampling.LANCZOS, reducing_gap=None)
        image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise PhotoError("The photo is truncated or damaged.") from None


def normalise(image: Image.Image, orientation: int) -> Image.Image:
    """Apply the EXIF orientation and flatten to RGB (the pixels are loaded)."""
    if orientation in TRANSPOSE:
        image = image.transpose(TRANSPOSE[orientation])
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.new("RGB", rgba.size, (255, 255, 255))
        image.paste(rgba, mask=rgba.getchannel("A"))
    elif image.mode != "RGB":
        image = image.convert("RGB")
    return image


def draft_scale(longest: int, max_edge: int) -> int:
    """The largest JPEG decode scale (1, 2, 4, 8) that keeps the longest edge >= 90% of max."""
    scale = 1
    while scale < 8 and longest / (scale * 2) >= max_edge * 0.9:
        scale *= 2
    return scale


def encode_jpeg(image: Image.Image, quality: int) -> bytes:
    """A baseline JPEG with no metadata at all: no EXIF (GPS), no comments, no trailer."""
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def to_data_uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + pybase64.b64encode(jpeg).decode("ascii")


def off_the_event_loop(work: Callable[..., T], *args: Any) -> T:
    """Run CPU-heavy work on a real thread when gevent drives this process (the Procfile's
    web role), so other requests are served meanwhile; Pillow releases the GIL while it
    decodes and encodes. Without gevent, call it here."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        import gevent

        return gevent.get_hub().threadpool.apply(work, args)
    return work(*args)


def process(reference: str, policy: PhotoPolicy, budget_bytes: int) -> str:
    """Turn one reference into what Klaviyo receives: URLs as they are, data-URIs re-encoded
    as JPEG of at most `budget_bytes` (binary)."""
    check_reference(reference, policy)
    if is_url(reference):
        return reference
    declared, data = decode(reference)
    # Memory: the stream shares data's buffer and is the only holder of it once data is
    # deleted, so closing it frees the compressed bytes before orientation copies the pixels.
    with io.BytesIO(data) as photo:
        del data
        opened = open_photo(declared, photo, policy)
        orientation = opened.getexif().get(ORIENTATION, 1)
        load_scaled(opened, policy.max_edge)
    image = normalise(opened, orientation)
    del opened  # the pixels before orientation, when it made a copy: not kept while encoding
    longest = max(image.size)
    for scale, quality in ATTEMPTS:
        edge = int(longest * scale)
        candidate = image
        if edge < longest:
            candidate = image.copy()
            candidate.thumbnail((edge, edge), Image.Resampling.LANCZOS)
        jpeg = encode_jpeg(candidate, quality)
        if len(jpeg) <= budget_bytes:
            return to_data_uri(jpeg)
    raise PhotoTooLarge(
        f"The photo cannot be made smaller than {budget_bytes:,} bytes, its share of "
        "Klaviyo's 5 MB limit. Send fewer or simpler photos."
    )


class Photos:
    """This process's photo pipeline: the policy every photo is held to."""

    def __init__(self, policy: PhotoPolicy) -> None:
        self.policy = policy

    def prepare(self, references: list[str], share_bytes: int) -> list[str]:
        """Each reference as Klaviyo receives it, each re-encoded within `share_bytes`.
        PhotosRefused names the photos that cannot be taken."""
        processed, invalid, too_large = [], {}, {}
        for index, reference in enumerate(references):
            try:
                processed.append(off_the_event_loop(process, reference, self.policy,
                                                    share_bytes))
            except PhotoTooLarge as error:
                too_large[index] = f"Photo {index + 1}: {error}"
            except PhotoError as error:
                invalid[index] = f"Photo {index + 1}: {error}"
        if invalid:
            raise PhotosRefused(invalid, 422)
        if too_large:
            raise PhotosRefused(too_large, 413)
        return processed


def content_hash(reference: str) -> str:
    """What identifies a photo as sent: its base64 payload (a data-URI) or its URL. Hashed a
    megabyte at a time: a data-URI may be 16 MB, and its whole encoded copy would count."""
    marker = reference.find(";base64,") if reference.startswith("data:") else -1
    start = marker + len(";base64,") if marker >= 0 else 0
    digest = hashlib.sha256()
    for at in range(start, len(reference), HASH_CHUNK):
        digest.update(reference[at:at + HASH_CHUNK].encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def init_app(app: Flask) -> None:
    """Build this process's photo pipeline."""
    config = app.config
    app.extensions["photos"] = Photos(PhotoPolicy(
        max_photos=config["WIDGET_MAX_PHOTOS"],
        max_data_uri_chars=config["PHOTO_MAX_DATA_URI_CHARS"],
        max_pixels=config["PHOTO_MAX_PIXELS"],
        max_edge=config["PHOTO_MAX_EDGE"],
    ))


def current() -> Photos:
    return current_app.extensions["photos"]
