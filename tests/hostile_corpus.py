"""Every hostile case of issue 11, as an attacker would send it, for the tests that answer it.

Photos (answered by tests/intake/test_hostile.py, test_photos.py, test_photo_load.py and
bench/hostile.py): a 2.6 KB lossless WebP of 16383x3000 pixels (`white_webp`, alone and four
at once), a progressive JPEG whose last scan is repeated 5,000 times (`repeated_scans`, alone
and five in one review), a truncated PNG, PNGs and WebPs with a malformed EXIF/TIFF header,
a PNG with two headers, bombs, type lies, SVG and polyglots (`make`), and the mutants of
tests/photo_mutants.py.

Requests (see "requests, not photos" below): a malformed chunked or multipart body posted to
/embed (`MALFORMED_FORM_POSTS`, tests/test_bodies.py), a body over the limit sent whole
without `Expect` (`oversized_body`, tests/test_bodies.py), a rotating `X-Forwarded-For`
(`rotating_forwarded_for`, tests/test_security.py), 200 wrong passwords in a row
(`wrong_passwords`, tests/moderation/test_login.py), one form token reused for other
products and past its posts (tests/reviews.py's `form_token`, in
tests/intake/test_submissions.py), a password
typed into the Basic-auth user field and moderation search text (`SECRET_IN_USER`,
`MODERATION_SEARCH`, tests/test_access_log.py), and a second gunicorn on the same machine
(tests/test_security.py, with the Procfile's own line).

    python -m tests.hostile_corpus make DIR     writes one request body per photo case
    python -m tests.hostile_corpus answer DIR   posts them; prints answers and memory growth
    python -m tests.hostile_corpus peak FILE    decodes one photo; prints its estimate and the
                                                peak memory its decode really held
"""

from __future__ import annotations

import base64
import io
import json
import os
import struct
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import requests
from PIL import Image
from requests import Response

from tests.reviews import review_body


def peak_rss_mb() -> int:
    return status_kb("VmHWM") // 1024


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


def white_webp(size=(16383, 3000)) -> bytes:
    """A lossless WebP of white pixels: 49 MP in about 2 KB (the format's widest is 16383)."""
    out = io.BytesIO()
    Image.new("RGB", size, "white").save(out, "WEBP", lossless=True)
    return out.getvalue()


def repeated_scans(times=5000, size=(2048, 2048)) -> bytes:
    """A progressive JPEG whose last scan is repeated: each copy costs the decoder a pass
    over every coefficient (about 0.8 ms a megapixel) for a few dozen bytes."""
    out = io.BytesIO()
    Image.new("RGB", size, (9, 99, 199)).save(out, "JPEG", progressive=True)
    data = out.getvalue()
    last, end = data.rfind(b"\xff\xda"), data.rfind(b"\xff\xd9")
    return data[:end] + data[last:end] * times + data[end:]


def truncated_png() -> bytes:
    out = io.BytesIO()
    Image.effect_noise((400, 300), 60).convert("RGB").save(out, "PNG")
    return out.getvalue()[:out.tell() // 2]


def bad_exif(fmt: str) -> bytes:
    """A small image whose EXIF (PNG eXIf, WebP EXIF, JPEG APP1) has a broken TIFF header."""
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(out, fmt, exif=exif)
    data = out.getvalue()
    tiff = data.find(b"II*\x00") if b"II*\x00" in data else data.find(b"MM\x00*")
    data = data[:tiff] + b"XX*\x00" + data[tiff + 4:]
    return fix_png_crcs(data) if fmt == "PNG" else data


def fix_png_crcs(data: bytes) -> bytes:
    """The PNG with every whole chunk's CRC made right again (Pillow checks them)."""
    out, at = bytearray(data), 8
    while at + 12 <= len(data):
        end = at + 12 + struct.unpack(">I", data[at:at + 4])[0]
        if end > len(data):
            break
        out[end - 4:end] = struct.pack(">I", zlib.crc32(data[at + 4:end - 4]) & 0xFFFFFFFF)
        at = end
    return bytes(out)


def png_two_headers() -> bytes:
    """A PNG whose second IHDR claims far more pixels than the first (Pillow takes the
    last one; a check of the first alone would be fooled)."""
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (9, 99, 199)).save(out, "PNG")
    data = out.getvalue()
    second = chunk(b"IHDR", struct.pack(">IIBBBBB", 8000, 8000, 8, 6, 0, 0, 0))
    return data[:33] + second + data[33:]


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
        "webp_49mp": uri(white_webp(), "image/webp"),
        "webp_49mp_x4": [uri(white_webp(), "image/webp")] * 4,
        "jpeg_5000_scans": uri(repeated_scans()),
        "jpeg_5000_scans_x5": [uri(repeated_scans())] * 5,
        "png_truncated": uri(truncated_png(), "image/png"),
        "png_bad_exif": uri(bad_exif("PNG"), "image/png"),
        "webp_bad_exif": uri(bad_exif("WEBP"), "image/webp"),
        "png_two_headers": uri(png_two_headers(), "image/png"),
    }
    for name, photos in corpus.items():
        body = review_body(content=name, images=photos if isinstance(photos, list) else [photos])
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


def peak(path: Path, share_bytes: int = 3_300_000) -> dict:
    """One photo's estimate (widget/intake/photo_headers.py) against the peak RSS growth of
    its decode, orientation and re-encoding in this fresh process (the compressed bytes and
    the data-URI are held before the baseline, as a request holds them)."""
    from widget.intake import photos

    mime = {".jpg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}[path.suffix]
    policy = photos.PhotoPolicy(memory_budget=10**12)
    Image.init()
    photos.process(uri(jpeg((16, 16))), policy, share_bytes)  # warm up: the encoder, its pages
    photo = photos.inspect(uri(path.read_bytes(), mime), policy, share_bytes)
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = status_kb("VmRSS")
    photos.reencode(photo, policy, share_bytes, time.monotonic() + 60)
    growth = (status_kb("VmHWM") - before) * 1024
    return {"photo": path.name, "size": f"{photo.header.width}x{photo.header.height}",
            "mode": photo.header.mode, "estimate_mb": round(photo.estimate / 1e6, 1),
            "measured_mb": round(growth / 1e6, 1)}


def status_kb(field: str, pid: int | str = "self") -> int:
    """A memory figure of a process (VmRSS, VmHWM: its peak RSS), in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field}")


# -- against the real service (tests/processes.gunicorn) ------------------------------------
def worker_pid(web) -> int:
    """The one gunicorn worker: the master's child."""
    master = web.process.pid
    [worker] = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(worker)


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def post_together(url: str, photos: list[list[str]]) -> list[tuple[int, float, Response]]:
    """One review per list of photos, all sent at once: (status, seconds, response) each."""
    answers: list = [None] * len(photos)

    def post(index: int) -> None:
        body = review_body(email=f"load-{index}-{time.time_ns()}@example.com",
                           content=f"Review {index} {time.time_ns()}.", images=photos[index])
        started = time.monotonic()
        response = requests.post(url + "/client/reviews", json=body, timeout=60)
        answers[index] = (response.status_code, time.monotonic() - started, response)

    threads = [threading.Thread(target=post, args=(index,)) for index in range(len(photos))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(70)
    return answers



# -- requests, not photos ------------------------------------------------------------------
MIB = 1024 * 1024


def form_head(content_type: str, extra: str = "") -> bytes:
    return (f"POST /embed HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n"
            f"Content-Type: {content_type}\r\n{extra}\r\n").encode()


# (name, request head, body, the status it must get) posted to /embed: what a broken
# client or proxy sends; the form answers each with a 4xx page, never a 5xx.
MALFORMED_FORM_POSTS = [
    ("bad chunk size",
     form_head("application/x-www-form-urlencoded", "Transfer-Encoding: chunked\r\n"),
     b"zz\r\nabc\r\n0\r\n\r\n", 400),
    ("chunked cut short",
     form_head("multipart/form-data; boundary=XX", "Transfer-Encoding: chunked\r\n"),
     b"10\r\n--XX\r\nContent-Dis\r\n3\r\nabc", 400),
    ("truncated multipart", form_head("multipart/form-data; boundary=XX",
                                      "Content-Length: 60\r\n"),
     b"--XX\r\nContent-Disposition: form-data; name=\"content\"\r\n\r\nhalf" + b" " * 10, 400),
    ("no boundary", form_head("multipart/form-data", "Content-Length: 4\r\n"), b"abcd", 400),
    ("json", form_head("application/json", "Content-Length: 2\r\n"), b"{}", 400),
    ("bad percent-encoding",
     form_head("application/x-www-form-urlencoded; charset=utf-8", "Content-Length: 18\r\n"),
     b"content=%ff%fe%fd&", 403),
]


def oversized_body(mib: int = 40) -> tuple[bytes, bytes]:
    """A JSON body of `mib` MiB (over WIDGET_MAX_BODY_BYTES's 40,000,000) with the head of
    a client that sends it whole before reading anything (urllib: Connection: close, no
    Expect: 100-continue)."""
    body = b'{"data": "' + b"x" * (mib * MIB) + b'"}'
    head = (f"POST /client/reviews HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    return head, body


def rotating_forwarded_for(count: int) -> list[dict[str, str]]:
    """A fresh X-Forwarded-For on every request: a fresh per-IP quota, if it were believed."""
    return [{"X-Forwarded-For": f"198.18.{n // 250}.{n % 250 + 1}"} for n in range(count)]


def basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def wrong_passwords(count: int = 200) -> list[dict[str, str]]:
    """A guesser's Authorization headers: `count` wrong passwords in a row."""
    return [basic("moderator", f"guess-{n:04d}") for n in range(count)]


# A password typed into the user field of the login prompt, and a moderator's search text:
# neither may reach the access log.
SECRET_IN_USER = "hunter2-typed-as-user"
MODERATION_SEARCH = "/moderation/?q=private+search"


if __name__ == "__main__":
    command, where = sys.argv[1], Path(sys.argv[2])
    print(json.dumps({"make": make, "answer": answer, "peak": peak}[command](where)))
