"""Photo references: parse data-URIs, sniff, decode within this process's budget, strip,
orient, downscale, re-encode."""

from __future__ import annotations

import binascii
import hashlib
import io
import re
import time
import warnings
from dataclasses import dataclass

import pybase64
from flask import Flask, current_app
from marshmallow import ValidationError
from PIL import Image, PngImagePlugin

from widget.intake import photo_headers
from widget.intake.decoding import (
    MB,
    CpuOverrun,
    Deadline,
    DecodeBudget,
    PhotoBusy,
    PhotoError,
    PhotoPolicy,
    PhotoTooLarge,
    WallOverrun,
    decode_pool,
    jpeg_scale,
    off_the_event_loop,
    pillow,
    read_pixels,
)
from widget.intake.decoding import ORIENTATION as ORIENTATION  # bench/photos.py reads it here
from widget.intake.photo_headers import Header

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
# Pillow's blocks of pixels (up to 16 MB each) kept for the next photo instead of given back
# at once: with MALLOC_MMAP_THRESHOLD_ (the Procfile), every block was a fresh mapping whose
# pages the decode faulted in, a sixth of a photo's CPU (bench/capacity.py's photo: 45 to 37
# ms a request, p50 at 80% of capacity 62-78 to 34-47 ms). Four: a decode and its rotated
# copy on two threads at once; at most 64 MB stay with the process. The price: a block
# freed mid-request is kept while the photo is encoded, so one 12 MP photo peaks 5.5 MB
# higher (5.9x its body, against 5.0x; bench/photos.py).
PIXEL_BLOCKS_KEPT = 4
BUSY = "Too many photos are being decoded right now; send the review again in a few seconds."
TOO_COSTLY = ("The photo is too costly to decode (over {seconds:g} s of processing); save it "
              "again as an ordinary JPEG.")


class PhotosRefused(ValidationError):
    """Photos of one review that cannot be taken, by index; `status` is 413 when every one
    of them only cannot fit, else 422."""

    def __init__(self, messages: dict[int, str], status: int) -> None:
        super().__init__({"data": {"attributes": {"images": {
            index: [message] for index, message in messages.items()}}}})
        self.status = status


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


@dataclass
class Arrived:
    """A data-URI's photo before decoding: what its header says, what decoding it will
    cost, and its bytes (until the decode takes them)."""

    header: Header
    estimate: int
    data: bytes | None

    def take_data(self) -> bytes:
        data, self.data = self.data, None
        assert data is not None, "a photo is decoded once"
        return data


def inspect(reference: str, policy: PhotoPolicy, share_bytes: int) -> Arrived:
    """Everything known before decoding (cheap): the bytes, their real format, their header
    and its cost. Refuses lies, polyglots, and costs no real photo has."""
    declared, data = decode(reference)
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
    header = photo_headers.read_header(declared, data)
    photo_headers.check_cost(header, policy)
    cost = photo_headers.estimate(header, policy.max_edge, share_bytes)
    if cost > policy.memory_budget:
        raise PhotoTooLarge(
            f"Decoding the photo ({header.width}x{header.height} {declared}) would take about "
            f"{cost / 1e6:,.0f} MB of memory; the limit for one photo is "
            f"{policy.memory_budget / 1e6:,.0f} MB. Send a smaller photo, or a JPEG.")
    return Arrived(header, cost, data)


def reencode(photo: Arrived, policy: PhotoPolicy, budget_bytes: int, wall_until: float) -> str:
    """The photo decoded, oriented, flattened and re-encoded as JPEG of at most
    `budget_bytes`, on this thread, under its deadline."""
    deadline = Deadline(policy.cpu_seconds, wall_until)
    try:
        image, orientation = read_pixels(photo.header, photo.take_data(), policy, deadline)
        image = normalise(image, orientation)
        return encode_within(image, budget_bytes, deadline)
    except CpuOverrun:
        raise PhotoError(TOO_COSTLY.format(seconds=policy.cpu_seconds)) from None
    except WallOverrun:
        raise PhotoBusy(BUSY, policy.retry_after) from None


def normalise(image: Image.Image, orientation: int) -> Image.Image:
    """Apply the EXIF orientation and flatten to RGB (the pixels are loaded)."""
    with pillow("The photo's pixels cannot be turned or converted to RGB."):
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
    return jpeg_scale(longest, longest, max_edge)


def encode_within(image: Image.Image, budget_bytes: int, deadline: Deadline) -> str:
    """The first of ATTEMPTS that fits `budget_bytes`, as a data-URI."""
    longest = max(image.size)
    for scale, quality in ATTEMPTS:
        edge = int(longest * scale)
        candidate = image
        if edge < longest:
            with pillow("The photo cannot be downscaled."):
                candidate = image.copy()
                candidate.thumbnail((edge, edge), Image.Resampling.LANCZOS)
        jpeg = encode_jpeg(candidate, quality)
        if len(jpeg) <= budget_bytes:
            return to_data_uri(jpeg)
        deadline.check()
    raise PhotoTooLarge(
        f"The photo cannot be made smaller than {budget_bytes:,} bytes, its share of "
        "Klaviyo's 5 MB limit. Send fewer or simpler photos."
    )


def encode_jpeg(image: Image.Image, quality: int) -> bytes:
    """A baseline JPEG with no metadata at all: no EXIF (GPS), no comments, no trailer."""
    out = io.BytesIO()
    with pillow("The photo cannot be encoded as JPEG."):
        image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def to_data_uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + pybase64.b64encode(jpeg).decode("ascii")


def process(reference: str, policy: PhotoPolicy, budget_bytes: int) -> str:
    """Turn one reference into what Klaviyo receives: URLs as they are, data-URIs re-encoded
    as JPEG of at most `budget_bytes` (binary). Here and now: no decode budget, no pool."""
    check_reference(reference, policy)
    if is_url(reference):
        return reference
    photo = inspect(reference, policy, budget_bytes)
    return reencode(photo, policy, budget_bytes, time.monotonic() + policy.wall_seconds)


class Photos:
    """This process's photo pipeline: the policy every photo is held to, and the decode
    budget every request shares."""

    def __init__(self, policy: PhotoPolicy) -> None:
        self.policy = policy
        self.budget = DecodeBudget(policy.memory_budget)
        self.pool = decode_pool()

    def prepare(self, references: list[str], share_bytes: int) -> list[str]:
        """Each reference as Klaviyo receives it, each re-encoded within `share_bytes`.
        PhotosRefused names the photos that cannot be taken; PhotoBusy when this process
        has no room for them within the review's wait."""
        now = time.monotonic()
        wait_until, until = now + self.policy.wait_seconds, now + self.policy.wall_seconds
        processed, invalid, too_large = [], {}, {}
        for index, reference in enumerate(references):
            try:
                processed.append(self.take(reference, share_bytes, min(wait_until, until),
                                           until))
            except PhotoTooLarge as error:
                too_large[index] = f"Photo {index + 1}: {error}"
            except PhotoError as error:
                invalid[index] = f"Photo {index + 1}: {error}"
        if invalid:
            raise PhotosRefused(invalid, 422)
        if too_large:
            raise PhotosRefused(too_large, 413)
        return processed

    def take(self, reference: str, share_bytes: int, wait_until: float, until: float) -> str:
        """One reference: checked, inspected, and decoded once its estimate fits the budget."""
        check_reference(reference, self.policy)
        if is_url(reference):
            return reference
        try:
            photo = off_the_event_loop(inspect, reference, self.policy, share_bytes,
                                       timeout=until - time.monotonic(), pool=self.pool)
            self.budget.take(photo.estimate, wait_until)
            return off_the_event_loop(
                self.decode, photo, share_bytes, until, timeout=until - time.monotonic(),
                pool=self.pool, unstarted=lambda: self.budget.give_back(photo.estimate))
        except WallOverrun:
            raise PhotoBusy(BUSY, self.policy.retry_after) from None

    def decode(self, photo: Arrived, share_bytes: int, until: float) -> str:
        """On the pool's thread: the photo re-encoded, its share given back however it ends."""
        try:
            return reencode(photo, self.policy, share_bytes, until)
        finally:
            self.budget.give_back(photo.estimate)


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
    """Load every decoder plugin now (a pool thread importing one under gevent can wait on
    the import lock for good), keep a few blocks of pixels for the next photo, bound what
    Pillow keeps of a PNG's text, quiet Pillow's warnings about damaged metadata (hostile
    bytes are refused or stripped, not news), and build this process's photo pipeline."""
    Image.init()
    Image.core.set_blocks_max(PIXEL_BLOCKS_KEPT)
    PngImagePlugin.MAX_TEXT_MEMORY = photo_headers.PNG_TEXT_BYTES
    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
    config = app.config
    app.extensions["photos"] = Photos(PhotoPolicy(
        max_photos=config["WIDGET_MAX_PHOTOS"],
        max_data_uri_chars=config["PHOTO_MAX_DATA_URI_CHARS"],
        max_pixels=config["PHOTO_MAX_PIXELS"],
        max_edge=config["PHOTO_MAX_EDGE"],
        memory_budget=config["PHOTO_MEMORY_BUDGET_MB"] * MB,
        wait_seconds=config["PHOTO_WAIT_SECONDS"],
        cpu_seconds=config["PHOTO_CPU_SECONDS"],
        wall_seconds=config["PHOTO_WALL_SECONDS"],
    ))


def current() -> Photos:
    return current_app.extensions["photos"]
