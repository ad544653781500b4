"""Decoding with Pillow at a bounded cost: the limits (PhotoPolicy), a deadline checked
between Pillow's reads, every Pillow step guarded, and the decode budget and pool threads
this process's requests share."""

from __future__ import annotations

import io
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from PIL import Image

from widget.background import gevent_patched

if TYPE_CHECKING:
    from widget.intake.photo_headers import Header

MB = 1_000_000
T = TypeVar("T")
ORIENTATION = 0x0112  # the EXIF tag
# Per-format pixel caps, far above what phones and screens make and far below what the
# formats allow. PNG holds screenshots: a 5K display's full screen is 14.7 MP and a phone's
# long scrolling capture about 10; 4096x4096 takes both, and costs up to 11 bytes a pixel
# (RGBA: the image, its premultiplied copy for resampling, the resampler's rows). WebP is
# what browsers save from the web (4K at most) and what converters make of photos; no phone
# camera writes it. Pillow decodes it at 16 to 20 bytes a pixel with no reduced scale, so a
# 4096x2160 (DCI 4K) image, 8.8 MP, already takes 145 to 172 MB. JPEG keeps PHOTO_MAX_PIXELS:
# it is decoded at 1/2, 1/4 or 1/8 scale, so a 50 MP baseline photo takes about 13 MB.
PNG_MAX_PIXELS = 4096 * 4096
WEBP_MAX_PIXELS = 4096 * 2160
# What Pillow raises on hostile bytes, at every step (open, draft, load, EXIF, transpose,
# convert, save): OSError (UnidentifiedImageError, "broken data stream", "truncated"),
# SyntaxError ("not a TIFF file", "broken PNG file"), ValueError (bad chunk and text
# lengths), EOFError and struct.error from its chunk readers, and the bomb guard (its
# warning when a filter makes it an error). 100,000 mutants of tests/photo_mutants.py found
# nothing else (no IndexError, KeyError, TypeError or ZeroDivisionError reached us).
PILLOW_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error,
                 Image.DecompressionBombError, Image.DecompressionBombWarning)

# How often a review waiting for room in the decode budget looks again (seconds).
POLL_SECONDS = 0.01


class PhotoError(ValueError):
    """The reference is not a photo we can accept (answered 422)."""


class PhotoTooLarge(PhotoError):
    """The photo cannot be taken or made to fit Klaviyo's body cap (answered 413)."""


class PhotoBusy(Exception):
    """No room to decode the photo now (answered 503 with Retry-After)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Overrun(Exception):
    """A decode ran past its deadline (raised between Pillow's reads; not a Pillow error,
    so that no `except` of Pillow's swallows it)."""


class CpuOverrun(Overrun):
    """More CPU than one photo may cost: the file's fault."""


class WallOverrun(Overrun):
    """The review's time ran out (waiting for room or for a thread, or decoding on a busy
    machine): the process's load, not the file's fault."""


@dataclass(frozen=True)
class PhotoPolicy:
    """The limits every photo is held to (the PHOTO_* settings)."""

    max_photos: int = 5
    max_data_uri_chars: int = 16_000_000
    max_pixels: int = 50_000_000  # any photo; JPEG's own cap
    max_png_pixels: int = PNG_MAX_PIXELS
    max_webp_pixels: int = WEBP_MAX_PIXELS
    max_edge: int = 2048
    memory_budget: int = 256 * MB  # bytes of decoding in flight in this process
    wait_seconds: float = 5.0  # one review's wait for room in that budget
    cpu_seconds: float = 2.0  # one photo's decode
    wall_seconds: float = 20.0  # all photos of one review

    @property
    def retry_after(self) -> int:
        """Seconds to tell a client to wait when busy: the budget turns over within a wait."""
        return max(1, round(self.wait_seconds))


def jpeg_scale(width: int, height: int, max_edge: int) -> int:
    """The largest JPEG decode scale (1, 2, 4, 8) that keeps the longest edge >= 90% of
    max_edge, and both edges at least a pixel."""
    scale = 1
    while (scale < 8 and max(width, height) / (scale * 2) >= max_edge * 0.9
           and min(width, height) >= scale * 2):
        scale *= 2
    return scale


class Deadline:
    """CPU (of the thread decoding) and wall-clock limits of one photo. Made on the thread
    that decodes: time.thread_time() counts that thread only."""

    def __init__(self, cpu_seconds: float, wall_until: float) -> None:
        self.cpu_until = time.thread_time() + cpu_seconds
        self.wall_until = wall_until

    def check(self) -> None:
        if time.thread_time() > self.cpu_until:
            raise CpuOverrun
        if time.monotonic() > self.wall_until:
            raise WallOverrun


class DeadlineStream(io.BytesIO):
    """The photo's bytes as Pillow reads them. Pillow feeds its JPEG and PNG decoders a
    chunk at a time through read(), and parses headers and chunks through it too, so a
    decode past its deadline stops at its next read. WebP decodes in one call, bounded by
    its pixel cap."""

    def __init__(self, data: bytes, deadline: Deadline) -> None:
        super().__init__(data)  # shares data's buffer: no copy
        self.deadline = deadline

    def read(self, size: int | None = -1, /) -> bytes:
        self.deadline.check()
        return super().read(size)


@contextmanager
def pillow(failure: str) -> Iterator[None]:
    """Around Pillow's calls only: what hostile bytes make it raise becomes a refusal."""
    try:
        yield
    except PILLOW_ERRORS:
        raise PhotoError(failure) from None


def read_pixels(header: Header, data: bytes, policy: PhotoPolicy,
                deadline: Deadline) -> tuple[Image.Image, int]:
    """The decoded photo at most max_edge on its longest side, and its EXIF orientation.
    The bytes are freed once decoded (the stream is their only holder when the caller has
    let go of them)."""
    kind = header.format
    with DeadlineStream(data, deadline) as stream:
        del data
        with pillow(f"The photo is not a readable {kind} image."):
            image = Image.open(stream, formats=[kind])
            size, mode, frames = image.size, image.mode, getattr(image, "n_frames", 1)
        if size != (header.width, header.height) or (kind != "WEBP" and mode != header.mode):
            raise PhotoError(f"The {kind} image's headers disagree about its size or colours.")
        if frames > 1 and kind != "JPEG":  # a JPEG's further pictures (MPF) are not decoded
            raise PhotoError("Animated images are not accepted; send a still photo.")
        if kind == "JPEG":
            scale = jpeg_scale(*size, policy.max_edge)
            if scale > 1:
                with pillow("The JPEG cannot be decoded at a reduced scale."):
                    image.draft("RGB", (size[0] // scale, size[1] // scale))
        with pillow("The photo is truncated or damaged."):
            image.thumbnail((policy.max_edge, policy.max_edge), Image.Resampling.LANCZOS,
                            reducing_gap=None)
            image.load()
        deadline.check()  # a decode's last chunk is not followed by a read
        with pillow("The photo's EXIF metadata is damaged; save the photo again."):
            orientation = image.getexif().get(ORIENTATION, 1)
    return image, orientation if isinstance(orientation, int) else 1


# -- sharing the process: the decode budget and the pool's threads ------------------------
class DecodeBudget:
    """Bytes of decoding in flight in this process, shared by every request (API and form).
    A request takes a photo's estimate before decoding it; the thread that decoded gives it
    back when the decode has really finished, so an abandoned decode holds its share until
    then. The lock is the OS's: pool threads use it too, and gevent's locks are not for
    them (it is held for a few instructions, never while waiting)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0
        self._lock = native_lock()

    def take(self, amount: int, until: float) -> None:
        """Wait (polling: the waiter is a greenlet, the giver a thread) until `amount` fits;
        WallOverrun when the clock passes `until` first."""
        while True:
            with self._lock:
                if self.held + amount <= self.capacity:
                    self.held += amount
                    return
            if time.monotonic() >= until:
                raise WallOverrun
            time.sleep(POLL_SECONDS)  # gevent's sleep where gevent has patched time

    def give_back(self, amount: int) -> None:
        with self._lock:
            self.held -= amount


def native_lock() -> Any:
    """A lock of the OS's, which greenlets and pool threads can share."""
    if gevent_patched():
        from gevent.monkey import get_original

        return get_original("_thread", "allocate_lock")()
    return threading.Lock()


def decode_pool() -> Any:
    """Real threads for decoding when gevent drives this process (None otherwise): a pool
    of the photos' own, so that decodes never hold the threads gevent's hub pool lends to
    DNS lookups (the sender's, moderation's). Twice the cores: decoding is CPU work."""
    if not gevent_patched():
        return None
    from gevent.threadpool import ThreadPool

    return ThreadPool(max(2, 2 * (os.cpu_count() or 1)))


def off_the_event_loop(work: Callable[..., T], *args: Any, timeout: float, pool: Any = None,
                       unstarted: Callable[[], None] | None = None) -> T:
    """Run CPU-heavy work on a real thread of `pool` when gevent drives this process, so
    other requests are served meanwhile (Pillow releases the GIL while it decodes); without
    gevent, here. Past `timeout` (the wait for a free thread included), WallOverrun: the
    work goes on to its own deadline, and `unstarted` runs if it never got a thread.
    Refusals come back from the thread as values and are raised here."""
    if not gevent_patched():
        return work(*args)
    import gevent

    if timeout <= 0:
        raise WallOverrun
    spawned = None
    try:
        with gevent.Timeout(timeout):
            spawned = (pool or gevent.get_hub().threadpool).spawn(outcome, work, *args)
            result = spawned.get()
    except gevent.Timeout:
        if spawned is None and unstarted is not None:
            unstarted()
        raise WallOverrun from None
    if isinstance(result, PhotoError | PhotoBusy):
        raise result
    return result


def outcome(work: Callable[..., T], *args: Any) -> T | PhotoError | PhotoBusy:
    """work(*args), or the refusal it raised, returned: gevent prints the traceback of any
    exception raised on its pool's threads, and a refused photo is not our fault."""
    try:
        return work(*args)
    except (PhotoError, PhotoBusy) as refusal:
        return refusal
