"""What a photo's header says (size, colours, scans) and what decoding it will cost, read
by us before Pillow sees the bytes: the caps no real photo reaches, and the estimate of the
memory its decode holds, which the decode budget is counted in."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from widget.intake.decoding import MB, PhotoError, PhotoPolicy, jpeg_scale

# A progressive JPEG's decoder passes over every coefficient once per scan: about 0.8 ms a
# scan per megapixel (Pillow 13), whatever few bytes the scan takes. Scans times megapixels
# is held to 1,000 (about a second of CPU), and any JPEG may have 24: encoders write 10 for
# colour (libjpeg, mozjpeg, Photoshop fewer), 18 for CMYK.
SCAN_MEGAPIXELS = 1_000
MIN_SCANS = 24
# Segments before the first scan: a camera's JPEG has a few dozen (APPn, tables, frame).
MAX_SEGMENTS = 1_000
# Bytes Pillow keeps per pixel in each mode (one band takes a byte, three or four take four).
PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "LA": 4, "RGB": 4, "RGBA": 4, "CMYK": 4}
# A WebP decode, per pixel at its peak: libwebp's canvas and the previous-frame canvas
# WebPAnimDecoder keeps (4 + 4, held until the image is freed), the frame copied out to
# Python (4) and Pillow's image (4). Measured: 16.4 (lossy), 18.1 (lossless) with the resize.
WEBP_DECODE_BYTES, WEBP_HELD_BYTES = 16, 8
# PNG text chunks Pillow keeps (zTXt and iTXt inflate up to 1 MB each): 64 MB by default,
# set to this at start (init_app) so that a PNG's metadata is inside its estimate.
PNG_TEXT_BYTES = 4 * MB
# What the estimate adds to its sum: Python's objects, decoder state, the allocator's slack.
ESTIMATE_MARGIN, ESTIMATE_FIXED = 1.15, 4 * MB

JPEG_FRAMES = {0xC0, 0xC1, 0xC2}  # baseline, extended sequential, progressive (Huffman)
JPEG_TABLES = {0xC4, 0xCC, 0xDB, 0xDD, 0xFE} | set(range(0xE0, 0xF0))  # DHT DAC DQT DRI COM APPn
JPEG_STANDALONE = {0x00, 0x01} | set(range(0xD0, 0xD8))  # stuffing, TEM, RSTn: no length
PNG_MODES = {(1, 0): "1", (2, 0): "L", (4, 0): "L", (8, 0): "L", (16, 0): "I;16", (8, 2): "RGB",
             (16, 2): "RGB", (1, 3): "P", (2, 3): "P", (4, 3): "P", (8, 3): "P", (8, 4): "LA",
             (16, 4): "RGBA", (8, 6): "RGBA", (16, 6): "RGBA"}  # as PngImagePlugin._MODES
FILL = re.compile(rb"\xff+")
# A scan's marker. The regex engine finds it in a 4.5 MB photo in 1.5 ms where
# bytes.count and bytes.find take 3.7.
SCAN = re.compile(rb"\xff\xda")


@dataclass(frozen=True)
class Header:
    """What a photo's header says, read before Pillow sees the bytes."""

    format: str  # JPEG, PNG or WEBP
    width: int
    height: int
    mode: str  # the mode Pillow decodes it into
    alpha: bool = False  # may be transparent (flattened onto white at the end)
    scans: int = 1  # JPEG: 0xFFDA markers from the first scan on
    coefficients: int = 0  # JPEG: bytes of DCT coefficients a multi-scan decode holds

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_header(declared: str, data: bytes) -> Header:
    """The header of bytes already sniffed as `declared`; PhotoError if it cannot be read."""
    header = {"JPEG": jpeg_header, "PNG": png_header, "WEBP": webp_header}[declared](data)
    if header.width < 1 or header.height < 1:
        raise PhotoError(f"The {declared} image has no size ({header.width}x{header.height}).")
    return header


def jpeg_header(data: bytes) -> Header:
    """The frame (SOF) before the first scan, and the scans from there on. Segments are
    walked by their lengths as libjpeg does; junk between them is skipped, as both it and
    Pillow do."""
    at, frame = 2, None
    for _ in range(MAX_SEGMENTS):
        at = data.find(b"\xff", at)
        if at < 0:
            break
        at = FILL.match(data, at).end() - 1  # the last 0xFF of a run of fill bytes
        if at + 1 >= len(data):
            break
        marker = data[at + 1]
        if marker in JPEG_STANDALONE:
            at += 2
            continue
        length = int.from_bytes(data[at + 2:at + 4], "big")
        if marker in JPEG_FRAMES:
            if frame is not None:
                raise PhotoError("The JPEG has two frame headers (SOF); it is damaged.")
            frame = data[at + 1:at + 2 + length]  # the marker byte, then the segment
        elif marker == 0xDA:
            if frame is None:
                raise PhotoError("The JPEG has no frame header (SOF) before its image data.")
            in_first_scan = data[at + 4] if at + 4 < len(data) else 0
            return jpeg_frame(frame, in_first_scan, scans=count_scans(data, at))
        elif marker not in JPEG_TABLES:
            raise PhotoError(_jpeg_marker(marker))
        at += 2 + length
    else:  # no break: as many segments as we read, and no scan yet
        raise PhotoError(f"The JPEG has more than {MAX_SEGMENTS:,} segments before its image "
                         "data; save it again.")
    raise PhotoError("The JPEG ends before its image data.")


def count_scans(data: bytes, first: int) -> int:
    """The scans from the first one's marker at `first` on. Most photos are baseline JPEGs
    of one scan: the regex engine looks for a second one in one fast pass, and only a photo
    that has one is counted (bytes.count holds no match objects, whatever the count)."""
    if SCAN.search(data, first + 2) is None:
        return 1
    return data.count(b"\xff\xda", first)


def _jpeg_marker(marker: int) -> str:
    if marker in (0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
        return ("Lossless, hierarchical and arithmetic-coded JPEGs are not accepted; save the "
                "photo again as an ordinary JPEG.")
    return f"The JPEG is damaged (marker 0xFF{marker:02X} before its image data)."


def jpeg_frame(frame: bytes, in_first_scan: int, scans: int) -> Header:
    """The header from a frame segment: marker byte, length (2), precision, height (2),
    width (2), component count, then 3 bytes a component (id, sampling factors, table)."""
    height, width = int.from_bytes(frame[4:6], "big"), int.from_bytes(frame[6:8], "big")
    count = frame[8] if len(frame) > 8 else 0
    sampling = [(byte >> 4, byte & 15) for byte in frame[10:9 + 3 * count:3]]
    if count not in (1, 3, 4) or len(sampling) != count:
        raise PhotoError(f"JPEGs with {count} colour components are not accepted.")
    if not all(1 <= h <= 4 and 1 <= v <= 4 for h, v in sampling):
        raise PhotoError("The JPEG's sampling factors are not valid.")
    # libjpeg holds every DCT coefficient (64 a block, 2 bytes each) of a progressive or
    # multi-scan image at full resolution, whatever scale it outputs, in whole MCUs.
    coefficients = 0
    if frame[0] == 0xC2 or in_first_scan != count:
        h_max, v_max = max(h for h, _ in sampling), max(v for _, v in sampling)
        for h, v in sampling:
            across = ceil_div(ceil_div(width * h, h_max), 8)
            down = ceil_div(ceil_div(height * v, v_max), 8)
            coefficients += 128 * ceil_div(across, h) * h * ceil_div(down, v) * v
    mode = {1: "L", 3: "RGB", 4: "CMYK"}[count]
    return Header("JPEG", width, height, mode, scans=scans, coefficients=coefficients)


def ceil_div(a: int, b: int) -> int:
    """a / b rounded up (whole blocks, whole pixels)."""
    return -(-a // b)


def png_header(data: bytes) -> Header:
    """The IHDR chunk, which must come first."""
    if len(data) < 29 or data[8:16] != b"\x00\x00\x00\x0dIHDR":
        raise PhotoError("The PNG does not start with its header (IHDR).")
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    mode = PNG_MODES.get((depth, colour))
    if mode is None:
        raise PhotoError(f"The PNG's bit depth {depth} and colour type {colour} are not valid.")
    # Any PNG may carry a tRNS chunk (transparency) besides an alpha channel.
    return Header("PNG", width, height, mode, alpha=True)


def webp_header(data: bytes) -> Header:
    """The canvas size of the first chunk (VP8X, VP8L or VP8), read as Pillow reads it."""
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        if data[20] & 0x02:
            raise PhotoError("Animated images are not accepted; send a still photo.")
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
    elif chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    elif chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        height = int.from_bytes(data[28:30], "little") & 0x3FFF
    else:
        raise PhotoError("The WebP's header is not readable.")
    # Transparency is told by a flag or by the bitstream; the estimate assumes it.
    return Header("WEBP", width, height, "RGBA", alpha=True)


def check_cost(header: Header, policy: PhotoPolicy) -> None:
    """Refuse what no real photo needs: pixels past the format's cap, absurd scan counts."""
    cap = {"JPEG": policy.max_pixels, "PNG": min(policy.max_pixels, policy.max_png_pixels),
           "WEBP": min(policy.max_pixels, policy.max_webp_pixels)}[header.format]
    if header.pixels > cap:
        raise PhotoError(too_many_pixels(header, cap, policy.max_pixels))
    allowed = max(MIN_SCANS, int(SCAN_MEGAPIXELS / (header.pixels / 1e6)))
    if header.scans > allowed:
        raise PhotoError(
            f"The JPEG has {header.scans:,} scans; one of {header.pixels / 1e6:.1f} megapixels "
            f"may have at most {allowed:,} (encoders write about 10). It is too costly to "
            "decode; save it again.")


def too_many_pixels(header: Header, cap: int, max_pixels: int) -> str:
    message = (f"The photo is {header.width}x{header.height} pixels; the limit is "
               f"{cap / 1e6:.3g} megapixels")
    if cap < max_pixels:
        name = {"PNG": "PNG", "WEBP": "WebP"}[header.format]
        return f"{message} for {name} photos. Send a larger photo as a JPEG."
    return message + "."


def decoded_size(header: Header, max_edge: int) -> tuple[int, int]:
    """The size Pillow decodes to: a JPEG at its reduced (DCT) scale, others in full."""
    scale = jpeg_scale(header.width, header.height, max_edge) if header.format == "JPEG" else 1
    return ceil_div(header.width, scale), ceil_div(header.height, scale)


def fitted(size: tuple[int, int], max_edge: int) -> tuple[int, int]:
    """The size after Image.thumbnail((max_edge, max_edge)) (aspect kept, at least 1)."""
    width, height = size
    if max(size) <= max_edge:
        return size
    if width >= height:
        return max_edge, max(1, round(height * max_edge / width))
    return max(1, round(width * max_edge / height)), max_edge


def estimate(header: Header, max_edge: int, share_bytes: int) -> int:
    """Bytes a photo's decode holds at its peak, from its header: the largest of decoding,
    resizing to max_edge, and finishing (orientation, flattening, encoding)."""
    width, height = decoded_size(header, max_edge)
    out_width, out_height = fitted((width, height), max_edge)
    pixel = PIXEL_BYTES[header.mode]
    image = pixel * width * height
    # Held from decoding to the end: WebP's canvases, PNG's text chunks.
    held = {"WEBP": WEBP_HELD_BYTES * header.pixels, "PNG": PNG_TEXT_BYTES}.get(header.format, 0)
    if header.format == "WEBP":
        decoding = WEBP_DECODE_BYTES * header.pixels
    else:  # the image, the DCT coefficients of a multi-scan JPEG, PNG's two rows
        decoding = held + image + header.coefficients + 2 * pixel * header.width
    resizing = 0
    if (out_width, out_height) != (width, height):
        # LANCZOS resamples RGBA and LA premultiplied (a copy), across and then down (rows
        # of out_width), then back to the mode.
        premultiplied = 4 * width * height if header.mode in ("RGBA", "LA") else 0
        band = 4 if premultiplied else pixel
        resizing = (held + image + premultiplied + band * out_width * height
                    + 2 * band * out_width * out_height)
    # Finishing: the image, its oriented copy, its RGB conversion, and for transparency an
    # RGBA copy and the white background; the encoded JPEG, its copy and its base64.
    copies = 2 + (header.mode != "RGB") + 2 * header.alpha
    finishing = held + 4 * out_width * out_height * copies + 3 * share_bytes
    return int(max(decoding, resizing, finishing) * ESTIMATE_MARGIN) + ESTIMATE_FIXED
