"""Hostile photos for the memory test, run in fresh processes (see tests/intake/test_hostile.py).

    python -m tests.hostile_corpus make DIR     writes one request body per case
    python -m tests.hostile_corpus answer DIR   posts them; prints answers and memory growth
"""

from __future__ import annotations

import base64
import io
import json
import struct
import sys
import tempfile
import zlib
from pathlib import Path

from PIL import Image

from tests.reviews import review_body


def peak_rss_mb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no VmHWM")


def uri(data: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def jpeg(size=(64, 48), **save) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (9, 99, 199)).save(out, "JPEG", **save)
    return out.getvalue()


def chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_bomb() -> bytes:
    """A real 20000x20000 1-bit PNG: 50 MB of rows that compress to under 50 KB."""
    compressor, row, idat = zlib.compressobj(9), b"\0" * 2501, []
    for _ in range(20000):
        idat.append(compressor.compress(row))
    idat.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(idat))
            + chunk(b"IEND", b""))


def gif_bomb() -> bytes:
    """Animated frames on a large canvas."""
    frames = [Image.new("P", (4000, 4000), i) for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:])
    return out.getvalue()


def make(folder: Path) -> dict:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif.get_ifd(0x8825)[2] = (52.0, 22.0, 1.0)  # GPS latitude
    whole = jpeg((800, 600))
    bomb = png_bomb()
    corpus = {
        "type_lie": uri(jpeg(), "image/png"),
        "svg_script": uri(b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script>"
                          b"</svg>", "image/svg+xml"),
        "svg_as_jpeg": uri(b"<svg onload=alert(1)>"),
        "polyglot": uri(jpeg()[:-2] + b"<html><script>alert(1)</script></html>\xff\xd9"),
        "truncated": uri(whole[: len(whole) // 2]),
        "png_bomb": uri(bomb, "image/png"),
        "gif_bomb": uri(gif_bomb(), "image/gif"),
        "gif_as_png": uri(gif_bomb(), "image/png"),
        "oversized": "data:image/jpeg;base64," + "A" * 17_000_000,
        "exif_gps": uri(jpeg((64, 48), exif=exif)),
    }
    for name, photo in corpus.items():
        body = review_body(content=name, images=[photo])
        (folder / f"{name}.json").write_text(json.dumps(body))
    return {"bomb_bytes": len(bomb), "names": list(corpus)}


def answer(folder: Path) -> dict:
    from widget import create_app

    bodies = {path.stem: path.read_bytes() for path in sorted(folder.glob("*.json"))}
    app = create_app({"TESTING": True, "WIDGET_SENDER": "off", "RATELIMIT_ENABLED": False,
                      "WIDGET_OPEN_API": True, "WIDGET_TRUSTED_PROXIES": 0,
                      "DATABASE_URL": f"sqlite:///{tempfile.mkdtemp()}/outbox.db",
                      "KLAVIYO_PUBLIC_KEY": "P"})
    client = app.test_client()
    client.post("/client/reviews", json=review_body())  # warm up: imports, first queries
    # The request streams are made before the baseline: they are what a server would have
    # received anyway, and what is measured is what the service adds to them.
    streams = {name: io.BytesIO(body) for name, body in bodies.items()}
    del bodies
    before = peak_rss_mb()
    answers = {}
    for name, stream in streams.items():
        response = client.post("/client/reviews", input_stream=stream,
                               content_type="application/json",
                               headers={"Content-Length": str(len(stream.getbuffer()))})
        error = (response.get_json().get("errors") or [{}])[0]
        answers[name] = [response.status_code, error.get("detail", ""),
                         error.get("source", {}).get("pointer")]
        if response.status_code == 202:
            row = app.extensions["outbox"].get(response.get_json()["data"]["id"])
            answers[name].append("PhoneMaker" in row.body or "Exif" in row.body)
    largest = max(len(stream.getbuffer()) for stream in streams.values()) // 2**20
    return {"answers": answers, "growth_mb": peak_rss_mb() - before, "before_mb": before,
            "largest_body_mb": largest}


if __name__ == "__main__":
    command, folder = sys.argv[1], Path(sys.argv[2])
    print(json.dumps((make if command == "make" else answer)(folder)))
