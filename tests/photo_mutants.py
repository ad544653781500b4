"""Seeded mutants of small valid photos, for the fuzz test and bench/hostile.py.

Seeds: JPEG (baseline and progressive, with EXIF), PNG (RGB, RGBA, palette with tRNS, 16-bit
grey and colour, Adam7-interlaced, with eXIf) and WebP (lossy, lossless, with alpha, with
EXIF). Mutations: byte flips, truncation, segment (JPEG) or chunk (PNG, RIFF) duplication,
removal and splicing from another seed, length-field edits, EXIF/TIFF header edits, junk.
PNG mutants mostly get their CRCs made right again, so that Pillow reads past them.
"""

from __future__ import annotations

import base64
import io
import random
import struct
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from PIL import Image

from tests.hostile_corpus import chunk, fix_png_crcs
from tests.reviews import review_body

MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
SIZE = (48, 32)
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2))  # (x0, y0, dx, dy) of each pass


@dataclass(frozen=True)
class Seed:
    name: str
    format: str
    data: bytes


@dataclass(frozen=True)
class Mutant:
    seed: str
    mutation: str
    format: str
    data: bytes

    @property
    def uri(self) -> str:
        return f"data:{MIME[self.format]};base64," + base64.b64encode(self.data).decode()


def seeds() -> list[Seed]:
    """The valid photos mutants start from, the same on every run."""
    rng = random.Random(7)
    rgb = Image.frombytes("RGB", SIZE, rng.randbytes(SIZE[0] * SIZE[1] * 3))
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(SIZE))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "PhoneMaker"
    exif.get_ifd(0x8825)[2] = (52.0, 22.0, 1.0)
    return [
        Seed("jpeg_baseline_exif", "JPEG", save(rgb, "JPEG", exif=exif, quality=80)),
        Seed("jpeg_progressive_exif", "JPEG",
             save(rgb, "JPEG", exif=exif, progressive=True, quality=80)),
        Seed("png_rgb", "PNG", save(rgb, "PNG")),
        Seed("png_rgba", "PNG", save(rgba, "PNG")),
        Seed("png_palette_trns", "PNG", save(rgb.convert("P"), "PNG", transparency=3)),
        Seed("png_16bit_grey", "PNG", raw_png(SIZE, 16, 0, rng.randbytes(SIZE[0] * 2), rng)),
        Seed("png_16bit_rgb", "PNG", raw_png(SIZE, 16, 2, rng.randbytes(SIZE[0] * 6), rng)),
        Seed("png_interlaced", "PNG", raw_png(SIZE, 8, 2, b"", rng, interlaced=True)),
        Seed("png_exif", "PNG", save(rgb, "PNG", exif=exif)),
        Seed("webp_lossy", "WEBP", save(rgb, "WEBP", quality=70)),
        Seed("webp_lossless", "WEBP", save(rgb, "WEBP", lossless=True)),
        Seed("webp_alpha", "WEBP", save(rgba, "WEBP", quality=70)),
        Seed("webp_exif", "WEBP", save(rgb, "WEBP", exif=exif, quality=70)),
    ]


def save(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def raw_png(size, depth: int, colour: int, row: bytes, rng: random.Random,
            interlaced: bool = False) -> bytes:
    """A PNG Pillow cannot write: 16-bit colour, or Adam7-interlaced (each pass's rows
    filtered with type 0). `row` is repeated for every row of a plain image."""
    width, height = size
    channels = {0: 1, 2: 3}[colour]
    bytes_per_pixel = channels * depth // 8
    if interlaced:
        raw = b""
        for x0, y0, dx, dy in ADAM7:
            columns = len(range(x0, width, dx))
            for _ in range(y0, height, dy):
                if columns:
                    raw += b"\0" + rng.randbytes(columns * bytes_per_pixel)
    else:
        raw = b"".join(b"\0" + row for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, int(interlaced))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


# -- the pieces of each format ------------------------------------------------------------
def pieces(fmt: str, data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each segment or chunk, in order; what follows the last is not one."""
    return {"JPEG": jpeg_segments, "PNG": png_chunks, "WEBP": riff_chunks}[fmt](data)


def jpeg_segments(data: bytes) -> list[tuple[int, int]]:
    found, at = [], 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        length = struct.unpack(">H", data[at + 2:at + 4])[0]
        end = at + 2 + length
        if marker == 0xDA:  # the scans and their tables, up to the end of the image
            end = data.rfind(b"\xff\xd9")
            found.append((at, end if end > at else len(data)))
            break
        found.append((at, min(end, len(data))))
        at = end
    return found


def png_chunks(data: bytes) -> list[tuple[int, int]]:
    found, at = [], 8
    while at + 12 <= len(data):
        end = at + 12 + struct.unpack(">I", data[at:at + 4])[0]
        found.append((at, min(end, len(data))))
        at = end
    return found


def riff_chunks(data: bytes) -> list[tuple[int, int]]:
    found, at = [], 12
    while at + 8 <= len(data):
        size = struct.unpack("<I", data[at + 4:at + 8])[0]
        end = at + 8 + size + (size & 1)
        found.append((at, min(end, len(data))))
        at = end
    return found


def length_field(fmt: str, data: bytes, start: int) -> tuple[int, str]:
    """Where a piece's length is, and its struct format."""
    return {"JPEG": (start + 2, ">H"), "PNG": (start, ">I"), "WEBP": (start + 4, "<I")}[fmt]


def fix_riff_size(data: bytes) -> bytes:
    return data[:4] + struct.pack("<I", max(0, len(data) - 8)) + data[8:]


# -- mutations --------------------------------------------------------------------------------
def flip(rng, data, fmt, donors):
    out = bytearray(data or b"\0")
    for _ in range(rng.choice((1, 1, 2, 3, 8, 24))):
        at = rng.randrange(len(out))
        out[at] ^= rng.randrange(1, 256)
    return bytes(out)


def truncate(rng, data, fmt, donors):
    return data[:rng.randrange(min(16, len(data)), len(data) + 1)]


def duplicate(rng, data, fmt, donors):
    if not pieces(fmt, data):
        return flip(rng, data, fmt, donors)
    start, end = rng.choice(pieces(fmt, data))
    times = rng.choice((1, 1, 2, 5, 40))
    return data[:end] + data[start:end] * times + data[end:]


def remove(rng, data, fmt, donors):
    if not pieces(fmt, data):
        return flip(rng, data, fmt, donors)
    start, end = rng.choice(pieces(fmt, data))
    return data[:start] + data[end:]


def splice(rng, data, fmt, donors):
    donor = rng.choice([seed.data for seed in donors if seed.format == fmt])
    if not pieces(fmt, data):
        return flip(rng, data, fmt, donors)
    start, end = rng.choice(pieces(fmt, donor))
    at = rng.choice([s for s, _ in pieces(fmt, data)] + [len(data)])
    if rng.random() < 0.5:  # replace the piece there
        here = [(s, e) for s, e in pieces(fmt, data) if s == at]
        if here:
            return data[:at] + donor[start:end] + data[here[0][1]:]
    return data[:at] + donor[start:end] + data[at:]


def edit_length(rng, data, fmt, donors):
    if not pieces(fmt, data):
        return flip(rng, data, fmt, donors)
    start, end = rng.choice(pieces(fmt, data))
    at, kind = length_field(fmt, data, start)
    maximum = 0xFFFF if kind == ">H" else 0xFFFFFFFF
    real = end - start - {"JPEG": 2, "PNG": 12, "WEBP": 8}[fmt]
    value = rng.choice((0, 1, 2, max(0, real - 1), real + 1, real * 2, maximum,
                        rng.randrange(maximum)))
    field_end = at + struct.calcsize(kind)
    return data[:at] + struct.pack(kind, min(max(value, 0), maximum)) + data[field_end:]


def edit_tiff(rng, data, fmt, donors):
    """The EXIF's TIFF header or first directory: byte order, IFD offset, entry count, an
    entry's type, count or offset."""
    tiff = max(data.find(b"II*\x00"), data.find(b"MM\x00*"))
    if tiff < 0 or tiff + 8 > len(data):
        return flip(rng, data, fmt, donors)
    order = "<" if data[tiff] == 0x49 else ">"
    out = bytearray(data)
    choice = rng.randrange(6)
    if choice == 0:
        out[tiff:tiff + 4] = rng.choice((b"MM\x00*", b"II*\x00", b"XX*\x00", b"II\x00\x00"))
    elif choice == 1:
        offset = rng.choice((0, 1, 7, 0xFFFF, 0x7FFFFFFF, rng.randrange(64)))
        out[tiff + 4:tiff + 8] = struct.pack(order + "I", offset)
    else:
        ifd = tiff + struct.unpack(order + "I", data[tiff + 4:tiff + 8])[0]
        if ifd + 14 > len(data):
            return flip(rng, data, fmt, donors)
        if choice == 2:
            out[ifd:ifd + 2] = struct.pack(order + "H", rng.choice((0, 1, 0xFFFF, 300)))
        else:
            entry = ifd + 2 + 12 * rng.randrange(max(1, min(4, (len(data) - ifd - 2) // 12)))
            place, kind = {3: (entry + 2, "H"), 4: (entry + 4, "I"), 5: (entry + 8, "I")}[choice]
            value = rng.choice((0, 1, 7, 13, 0xFFFF, 0x7FFFFFFF, rng.randrange(1 << 16)))
            out[place:place + struct.calcsize(kind)] = struct.pack(
                order + kind, value & (0xFFFF if kind == "H" else 0xFFFFFFFF))
    return bytes(out)


def junk(rng, data, fmt, donors):
    at = rng.randrange(min(2, len(data)), len(data) + 1)
    return data[:at] + rng.choice((b"\x00", b"\xff" * 3, rng.randbytes(rng.randrange(1, 64)),
                                   b"\xff\xda", b"\xff\xd9", b"IDAT")) + data[at:]


MUTATIONS = {"flip": flip, "truncate": truncate, "duplicate": duplicate, "remove": remove,
             "splice": splice, "length": edit_length, "tiff": edit_tiff, "junk": junk}


def mutants(count: int, seed: int = 1) -> Iterator[Mutant]:
    """`count` mutants, the same ones for the same `seed`: one to three mutations each,
    of seeds taken in turn."""
    rng = random.Random(seed)
    valid = seeds()
    for index in range(count):
        original = valid[index % len(valid)]
        data, names = original.data, []
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            name = rng.choice(sorted(MUTATIONS))
            data = MUTATIONS[name](rng, data, original.format, valid) or data
            names.append(name)
        if original.format == "PNG" and rng.random() < 0.75:
            data = fix_png_crcs(data)
        if original.format == "WEBP" and rng.random() < 0.5:
            data = fix_riff_size(data)
        yield Mutant(original.name, "+".join(names), original.format, data)


# -- running them -------------------------------------------------------------------------------
@dataclass
class Tally:
    """Answers by status, and the mutants answered badly (a 5xx, or a 4xx without a detail)."""

    statuses: Counter = field(default_factory=Counter)
    bad: list[tuple[int, str, str]] = field(default_factory=list)

    def record(self, mutant: Mutant, status: int, problem: str | None) -> None:
        self.statuses[status] += 1
        if problem is not None:
            self.bad.append((status, f"{mutant.seed} {mutant.mutation}", problem))

    @property
    def mutants(self) -> int:
        return sum(self.statuses.values())

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


def api_answer(client, mutant: Mutant, number: int) -> tuple[int, str | None]:
    """POST /client/reviews with the mutant: the status, and what is wrong with the answer
    (None for a 202 or a 4xx with a JSON:API detail)."""
    body = review_body(email=f"fuzz-{number}@example.com", content=f"Fuzzed review {number}.",
                       images=[mutant.uri])
    response = client.post("/client/reviews", json=body)
    status = response.status_code
    if status == 202:
        return status, None
    errors = (response.get_json(silent=True) or {}).get("errors") or []
    if not 400 <= status < 500:
        return status, response.get_data(as_text=True)[:300]
    if not errors or not all(error.get("detail") for error in errors):
        return status, "no JSON:API detail: " + response.get_data(as_text=True)[:200]
    return status, None


def run_api(client, count: int, seed: int = 1) -> Tally:
    tally = Tally()
    for number, mutant in enumerate(mutants(count, seed)):
        tally.record(mutant, *api_answer(client, mutant, number))
    return tally
