"""Photos are decoded, checked and re-encoded; hostile files get a clear refusal."""

from __future__ import annotations

import base64
import io
import json
import math
import os
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image, JpegImagePlugin, PngImagePlugin

from tests import hostile_corpus as hostile
from tests.hostile_corpus import chunk
from tests.reviews import data_uri, decode_data_uri, form_token, image_bytes, review_body
from widget.intake import decoding, photo_headers
from widget.intake import photos as images
from widget.intake.decoding import (
    MB,
    CpuOverrun,
    Deadline,
    DeadlineStream,
    DecodeBudget,
    PhotoBusy,
    WallOverrun,
)
from widget.intake.photo_headers import Header
from widget.intake.photos import PhotoError, PhotoPolicy, PhotoTooLarge

POLICY = PhotoPolicy()
BUDGET = 600_000
ROOT = Path(__file__).resolve().parents[2]


def process(uri: str, policy: PhotoPolicy = POLICY, budget: int = BUDGET) -> Image.Image:
    out = images.process(uri, policy, budget)
    return Image.open(io.BytesIO(decode_data_uri(out)))


def refused(uri: str, policy: PhotoPolicy = POLICY) -> str:
    with pytest.raises(PhotoError) as caught:
        images.process(uri, policy, BUDGET)
    return str(caught.value)


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size (a decompression bomb's calling card)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 1000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def jpeg_with_gps(size=(400, 300), orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps[2] = (52.0, 22.0, 1.0)  # GPSLatitude
    gps[4] = (4.0, 53.0, 1.0)  # GPSLongitude
    if orientation:
        exif[0x0112] = orientation
    out = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(out, "JPEG", exif=exif, quality=90)
    return out.getvalue()


def test_the_app_keeps_a_few_blocks_of_pixels_for_the_next_photo(make_app):
    make_app()
    assert Image.core.get_blocks_max() == images.PIXEL_BLOCKS_KEPT > 0


def test_jpeg_is_reencoded_as_jpeg_without_any_metadata():
    original = jpeg_with_gps()
    assert b"PhoneMaker" in original
    result = process(data_uri(original))
    assert result.format == "JPEG"
    assert dict(result.getexif()) == {}
    assert b"Exif" not in decode_data_uri(images.process(data_uri(original), POLICY, BUDGET))


def test_exif_orientation_is_applied_to_the_pixels():
    result = process(data_uri(jpeg_with_gps(size=(400, 300), orientation=6)))
    assert result.size == (300, 400)


def test_large_photo_is_downscaled_to_the_longest_edge():
    result = process(data_uri(image_bytes(size=(5000, 2500))))
    assert max(result.size) <= POLICY.max_edge
    assert result.size[0] == 2 * result.size[1]


def test_png_and_webp_are_accepted_and_transparency_becomes_white():
    png = image_bytes("PNG", mode="RGBA", color=(0, 0, 0, 0))
    assert process(data_uri(png, "image/png")).getpixel((1, 1)) == (255, 255, 255)
    webp = image_bytes("WEBP")
    assert process(data_uri(webp, "image/webp")).format == "JPEG"


def test_bytes_after_the_image_are_gone():
    original = image_bytes() + b"TRAILING-SECRET" * 10
    out = decode_data_uri(images.process(data_uri(original), POLICY, BUDGET))
    assert b"TRAILING-SECRET" not in out


def test_https_urls_are_kept_and_never_fetched():
    url = "https://cdn.example.com/photo.jpg"
    assert images.process(url, POLICY, BUDGET) == url


@pytest.mark.parametrize("reference, message", [
    ("http://example.com/a.jpg", "https:// URL"),
    ("https://", "https:// URL"),
    ("https://example.com/" + "a" * 3000, "at most 2048"),
    ("data:image/jpeg,notbase64", "base64 data-URI"),
    ("data:image/svg+xml;base64," + base64.b64encode(b"<svg onload=alert(1)/>").decode(),
     "image/svg+xml is not accepted"),
    ("data:text/html;base64,PGh0bWw+", "text/html is not accepted"),
    ("data:image/gif;base64,R0lGODlh", "image/gif is not accepted"),
    ("data:image/jpeg;base64,!!!!", "not valid"),
    ("data:image/jpeg;base64,/9j/4AAQ=", "not valid"),  # padding after a whole quantum
    ("data:image/jpeg;base64,/9j/4A==/9j/", "not valid"),  # data after the padding
    ("data:image/jpeg;base64,/9j/\n4AAQ", "not valid"),  # line breaks
    ("data:image/jpeg;base64,", "empty"),
])
def test_bad_references_are_refused_with_a_reason(reference, message):
    assert message in refused(reference)


def test_declared_type_must_match_the_bytes():
    assert "declared as PNG but its bytes are JPEG" in refused(data_uri(image_bytes(), "image/png"))


def test_svg_sent_as_jpeg_is_refused():
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    assert "SVG and HTML" in refused(data_uri(svg))


def test_gif_sent_as_jpeg_is_refused():
    assert "GIF" in refused(data_uri(image_bytes("GIF")))


def test_html_jpeg_polyglot_is_refused():
    polyglot = image_bytes()[:-2] + b"<html><script>alert(1)</script></html>" + b"\xff\xd9"
    assert "HTML or script" in refused(data_uri(polyglot))


def test_truncated_jpeg_is_refused():
    whole = image_bytes(size=(800, 600), color=None)
    assert "truncated or damaged" in refused(data_uri(whole[: len(whole) // 2]))


def test_png_bomb_is_refused_before_decoding():
    bomb = png_header_only(20000, 20000)
    assert len(bomb) < 50_000
    assert "megapixels" in refused(data_uri(bomb, "image/png"))


def test_pixel_cap_is_configurable():
    policy = PhotoPolicy(max_pixels=100 * 100)
    assert "200x200 pixels" in refused(data_uri(image_bytes(size=(200, 200))), policy)


def test_animated_images_are_refused():
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0))]
    out = io.BytesIO()
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:])
    assert "Animated" in refused(data_uri(out.getvalue(), "image/webp"))


def test_oversized_data_uri_is_refused_by_length_before_decoding():
    policy = PhotoPolicy(max_data_uri_chars=1000)
    with pytest.raises(PhotoTooLarge, match="limit is 1,000"):
        images.process("data:image/jpeg;base64," + "A" * 2000, policy, BUDGET)


def test_photo_that_cannot_fit_its_budget_is_too_large():
    noise = Image.effect_noise((1200, 1200), 100).convert("RGB")
    out = io.BytesIO()
    noise.save(out, "JPEG", quality=95)
    with pytest.raises(PhotoTooLarge, match="cannot be made smaller"):
        images.process(data_uri(out.getvalue()), POLICY, 5_000)


def test_photo_is_shrunk_until_it_fits_its_budget():
    noise = Image.effect_noise((2000, 1500), 100).convert("RGB")
    out = io.BytesIO()
    noise.save(out, "JPEG", quality=95)
    budget = 400_000
    result = decode_data_uri(images.process(data_uri(out.getvalue()), POLICY, budget))
    assert len(result) <= budget


def test_draft_scale_keeps_at_least_ninety_percent_of_the_edge():
    assert images.draft_scale(4000, 2048) == 2
    assert images.draft_scale(3000, 2048) == 1
    assert images.draft_scale(16000, 2048) == 8


# -- what a photo may cost: caps, estimates, the budget, scans, the deadline ---------------
def jpeg_claiming(width, height, **save):
    """A small real JPEG whose frame header (SOF) claims width x height: all the header
    reader looks at."""
    data = image_bytes(size=(16, 16), **save)
    sof = max(data.find(b"\xff\xc0"), data.find(b"\xff\xc2"))
    return data[:sof + 5] + struct.pack(">HH", height, width) + data[sof + 9:]


def header_of(data, fmt="JPEG"):
    return photo_headers.read_header(fmt, data)


def test_a_lossless_webp_of_49_megapixels_is_refused_by_its_header_before_decoding():
    webp = hostile.white_webp()
    assert len(webp) < 3_000
    with pytest.raises(PhotoError, match="16383x3000 pixels; the limit is 8.85 megapixels "
                                         "for WebP photos. Send a larger photo as a JPEG"):
        images.inspect(data_uri(webp, "image/webp"), POLICY, BUDGET)  # no Pillow call yet


def test_png_and_webp_have_caps_far_below_jpegs_which_decode_at_a_reduced_scale():
    for fmt, cap in (("PNG", 4096 * 4096), ("WEBP", 4096 * 2160)):
        photo_headers.check_cost(Header(fmt, 4096, cap // 4096, "RGB"), POLICY)
        with pytest.raises(PhotoError, match="megapixels for"):
            photo_headers.check_cost(Header(fmt, 4096, cap // 4096 + 1, "RGB"), POLICY)
    photo_headers.check_cost(Header("JPEG", 8160, 6120, "RGB"), POLICY)  # 50 MP
    with pytest.raises(PhotoError, match="the limit is 50 megapixels"):
        photo_headers.check_cost(Header("JPEG", 8160, 6200, "RGB"), POLICY)


def test_the_format_caps_are_part_of_the_policy():
    policy = PhotoPolicy(max_webp_pixels=100 * 100)
    webp = data_uri(image_bytes("WEBP", size=(200, 200)), "image/webp")
    assert "the limit is 0.01 megapixels for WebP" in refused(webp, policy)
    assert "5000x4000" in refused(data_uri(png_header_only(5000, 4000), "image/png"))


def test_a_progressive_jpeg_is_estimated_with_its_full_resolution_coefficients():
    baseline = header_of(jpeg_claiming(4000, 3000))
    progressive = header_of(jpeg_claiming(4000, 3000, progressive=True))
    # 4:2:0: luma 500x376 blocks (whole MCUs), each chroma 250x188; 128 bytes a block.
    assert (baseline.coefficients, progressive.coefficients) == (0, 128 * (188_000 + 2 * 47_000))
    decoded = 4 * 2000 * 1500  # at half scale, as a baseline JPEG of this size
    assert photo_headers.estimate(progressive, 2048, BUDGET) >= progressive.coefficients + decoded
    assert photo_headers.estimate(baseline, 2048, BUDGET) < progressive.coefficients


def test_a_baseline_jpeg_is_estimated_at_its_reduced_decoding_scale():
    header = header_of(jpeg_claiming(8000, 6000))
    assert photo_headers.decoded_size(header, 2048) == (2000, 1500)
    assert photo_headers.estimate(header, 2048, BUDGET) < 60 * MB


def test_webp_and_rgba_png_are_estimated_at_what_pillow_holds_for_them():
    webp = Header("WEBP", 4096, 2160, "RGBA", alpha=True)
    assert photo_headers.estimate(webp, 2048, BUDGET) >= 16 * webp.pixels  # canvases, copy
    png = Header("PNG", 4000, 3000, "RGBA", alpha=True)
    assert photo_headers.estimate(png, 2048, BUDGET) >= 11 * png.pixels  # + premultiplied


@pytest.mark.slow
@pytest.mark.parametrize("name, mode, options", [
    ("progressive.jpg", "RGB", {"progressive": True, "subsampling": 0, "quality": 90}),
    ("rgba.png", "RGBA", {"compress_level": 1}),
    ("lossy.webp", "RGB", {"quality": 80}),
])
def test_the_estimate_covers_the_memory_the_decode_really_holds(tmp_path, name, mode, options):
    """In a fresh process (its peak memory is the decode's own), with noisy pixels: blank
    ones may leave pages untouched."""
    path = tmp_path / name
    noise = Image.effect_noise((2600, 1800), 80)
    Image.merge(mode, [noise] * len(mode)).save(path, **options)
    out = subprocess.run([sys.executable, "-m", "tests.hostile_corpus", "peak", str(path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "1048576"})
    figures = json.loads(out.stdout)
    assert figures["measured_mb"] <= figures["estimate_mb"] <= 2 * figures["measured_mb"], figures


def test_a_photo_estimated_over_the_whole_budget_is_refused_413_saying_why(make_app):
    policy = PhotoPolicy(memory_budget=50 * MB)
    with pytest.raises(PhotoTooLarge, match=r"4000x3000 JPEG\) would take about \d+ MB of "
                                            "memory; the limit for one photo is 50 MB"):
        images.inspect(data_uri(jpeg_claiming(4000, 3000, progressive=True, subsampling=0)),
                       policy, BUDGET)
    client = make_app(PHOTO_MEMORY_BUDGET_MB=20).test_client()
    photo = image_bytes("PNG", size=(2500, 2000), mode="RGBA")
    response = client.post("/client/reviews", json=review_body(images=[
        data_uri(photo, "image/png")]))
    [error] = response.get_json()["errors"]
    assert response.status_code == 413
    assert error["source"]["pointer"] == "/data/attributes/images/0"
    assert "the limit for one photo is 20 MB" in error["detail"]


def test_a_review_waits_for_room_in_the_budget_and_gets_it_when_a_decode_ends():
    budget = DecodeBudget(100)
    budget.take(80, time.monotonic())
    taken = []
    waiter = threading.Thread(target=lambda: taken.append(
        budget.take(50, time.monotonic() + 5) or budget.held))
    waiter.start()
    time.sleep(0.1)
    assert taken == []
    budget.give_back(80)
    waiter.join(2)
    assert taken == [50]


def test_a_review_that_cannot_get_room_in_time_is_told_to_come_back():
    budget = DecodeBudget(100)
    budget.take(100, time.monotonic())
    started = time.monotonic()
    with pytest.raises(WallOverrun):
        budget.take(1, started + 0.1)
    assert 0.1 <= time.monotonic() - started < 0.5


def test_a_full_budget_answers_503_with_retry_after_and_takes_photos_again_once_free(make_app):
    app = make_app(PHOTO_WAIT_SECONDS=0.2)
    budget = app.extensions["photos"].budget
    budget.take(budget.capacity, time.monotonic())  # as if other requests were decoding
    client = app.test_client()
    body = review_body(images=[data_uri(image_bytes())])
    response = client.post("/client/reviews", json=body)
    [error] = response.get_json()["errors"]
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert error["source"]["pointer"] == "/data/attributes/images"
    assert "Too many photos are being decoded" in error["detail"]
    budget.give_back(budget.capacity)
    assert client.post("/client/reviews", json=body).status_code == 202
    assert budget.held == 0


def test_the_form_shares_the_budget_and_answers_503_with_retry_after_when_it_is_full(make_app):
    app = make_app(PHOTO_WAIT_SECONDS=0.1, WIDGET_OPEN_API=False, WIDGET_TOKEN_MIN_SECONDS=0)
    budget = app.extensions["photos"].budget
    budget.take(budget.capacity, time.monotonic())
    fields = {"review_type": "review", "rating": "5", "content": "Great fit.", "author": "Ann",
              "email": "ann@example.com", "product_id": "42", "integration": "shopify",
              "idempotency_key": "k" * 32, "form_token": form_token("shopify:42"),
              "photos": (io.BytesIO(image_bytes()), "shirt.jpg", "image/jpeg")}
    page = app.test_client().post("/embed", data=fields, content_type="multipart/form-data")
    assert page.status_code == 503 and page.headers["Retry-After"] == "1"
    assert "<form" in page.get_data(as_text=True)


def test_a_decode_gives_its_share_back_however_it_ends(make_app):
    photos = make_app().extensions["photos"]
    for reference in (data_uri(image_bytes()), data_uri(hostile.truncated_png(), "image/png")):
        photo = images.inspect(reference, photos.policy, BUDGET)
        photos.budget.take(photo.estimate, time.monotonic())
        try:
            photos.decode(photo, BUDGET, time.monotonic() + 5)
        except PhotoError:
            pass
        assert photos.budget.held == 0


def test_a_jpeg_with_its_last_scan_repeated_5000_times_is_refused_before_decoding():
    started = time.thread_time()
    message = refused(data_uri(hostile.repeated_scans()))
    assert "The JPEG has 5,010 scans; one of 4.2 megapixels may have at most 238" in message
    assert time.thread_time() - started < 0.1


def test_ordinary_progressive_jpegs_pass_the_scan_count():
    colour = image_bytes(size=(640, 480), color=None, progressive=True)
    cmyk = image_bytes(size=(64, 48), mode="CMYK", color=None, progressive=True)
    assert (header_of(colour).scans, header_of(cmyk).scans) == (10, 18)
    process(data_uri(colour))
    process(data_uri(cmyk))


def test_scan_markers_in_metadata_before_the_image_are_not_counted():
    jpeg = image_bytes(size=(64, 48))
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + 400) + b"\xff\xda" * 200  # say, a thumbnail
    assert header_of(jpeg[:2] + app1 + jpeg[2:]).scans == 1


def test_the_scans_a_jpeg_may_have_shrink_as_its_pixels_grow():
    photo_headers.check_cost(Header("JPEG", 2048, 2048, "RGB", scans=238), POLICY)
    with pytest.raises(PhotoError, match="at most 238"):
        photo_headers.check_cost(Header("JPEG", 2048, 2048, "RGB", scans=239), POLICY)
    photo_headers.check_cost(Header("JPEG", 8160, 6120, "RGB", scans=24), POLICY)
    with pytest.raises(PhotoError, match="at most 24"):
        photo_headers.check_cost(Header("JPEG", 8160, 6120, "RGB", scans=25), POLICY)


def test_a_decode_over_its_cpu_seconds_is_refused_as_too_costly():
    photo = data_uri(image_bytes("PNG", size=(1500, 1000), color=None), "image/png")
    message = refused(photo, PhotoPolicy(cpu_seconds=0.001))
    assert "too costly to decode (over 0.001 s of processing)" in message


def test_a_photo_past_its_reviews_time_is_busy_not_the_shoppers_fault():
    with pytest.raises(PhotoBusy) as caught:
        images.process(data_uri(image_bytes()), PhotoPolicy(wall_seconds=0), BUDGET)
    assert caught.value.retry_after == 5


def test_the_stream_pillow_reads_stops_a_decode_at_its_deadline():
    stream = DeadlineStream(b"12345678", Deadline(cpu_seconds=-1, wall_until=math.inf))
    with pytest.raises(CpuOverrun):
        stream.read(4)
    stream = DeadlineStream(b"12345678", Deadline(cpu_seconds=10, wall_until=0))
    with pytest.raises(WallOverrun):
        stream.read()


# -- every Pillow failure is a refusal, with its step's reason --------------------------------
def l_jpeg_turned():
    """A grey JPEG (converted to RGB), turned (EXIF orientation 6), wide enough for its
    decoder to scale it by half: every step of the pipeline runs."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return image_bytes(size=(3700, 100), mode="L", color=128, exif=exif)


STEPS = {
    "open": (lambda: Image, "open", "not a readable JPEG image"),
    "draft": (lambda: JpegImagePlugin.JpegImageFile, "draft", "reduced scale"),
    "load": (lambda: Image.Image, "thumbnail", "truncated or damaged"),
    "exif": (lambda: PngImagePlugin.PngImageFile, "getexif", "EXIF metadata is damaged"),
    "transpose": (lambda: Image.Image, "transpose", "cannot be turned or converted"),
    "convert": (lambda: Image.Image, "convert", "cannot be turned or converted"),
    "save": (lambda: Image.Image, "save", "cannot be encoded as JPEG"),
}


@pytest.mark.parametrize("error", decoding.PILLOW_ERRORS, ids=lambda error: error.__name__)
@pytest.mark.parametrize("step", STEPS)
def test_every_failure_of_pillow_at_every_step_is_a_refusal_with_a_reason(
        monkeypatch, step, error):
    owner, name, reason = STEPS[step]

    def fail(*args, **kwargs):
        raise error("hostile bytes")

    exif = Image.Exif()
    exif[0x0112] = 6
    photo = (data_uri(image_bytes("PNG", exif=exif), "image/png") if step == "exif"
             else data_uri(l_jpeg_turned()))
    monkeypatch.setattr(owner(), name, fail)
    assert reason in refused(photo)


def test_the_pipeline_runs_every_step_on_the_photo_the_step_test_uses():
    result = process(data_uri(l_jpeg_turned()))
    assert result.size == (50, 1850) and result.mode == "RGB"  # half scale, then turned


def test_our_own_errors_are_not_taken_for_hostile_bytes(monkeypatch):
    def bug(*args, **kwargs):
        raise NameError("a bug of ours")

    monkeypatch.setattr(images, "normalise", bug)
    with pytest.raises(NameError):
        images.process(data_uri(image_bytes()), POLICY, BUDGET)


def test_refusals_come_back_from_a_pool_thread_as_values_and_bugs_do_not():
    def refuse():
        raise PhotoError("no")

    assert isinstance(decoding.outcome(refuse), PhotoError)
    with pytest.raises(ZeroDivisionError):
        decoding.outcome(lambda: 1 / 0)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_a_png_or_webp_with_a_broken_exif_header_gets_a_422_not_a_500(client, fmt):
    photo = data_uri(hostile.bad_exif(fmt), f"image/{fmt.lower()}")
    response = client.post("/client/reviews", json=review_body(images=[photo]))
    assert response.status_code == 422
    assert "EXIF metadata is damaged" in response.get_json()["errors"][0]["detail"]


def test_a_jpeg_with_a_broken_exif_header_is_taken_as_pillow_takes_it(client):
    photo = data_uri(hostile.bad_exif("JPEG"))
    assert client.post("/client/reviews", json=review_body(images=[photo])).status_code == 202


def test_an_orientation_that_is_not_a_number_is_ignored():
    # A TIFF header, then IFD0 at 8 with one entry: Orientation (0x0112) as ASCII "6".
    exif = b"II*\x00" + struct.pack("<IHHHI4sI", 8, 1, 0x0112, 2, 2, b"6\x00\x00\x00", 0)
    assert process(data_uri(image_bytes("PNG", size=(40, 30), exif=exif), "image/png")
                   ).size == (40, 30)


def test_a_truncated_png_gets_a_422_not_a_500(client):
    photo = data_uri(hostile.truncated_png(), "image/png")
    response = client.post("/client/reviews", json=review_body(images=[photo]))
    assert response.status_code == 422
    assert "truncated or damaged" in response.get_json()["errors"][0]["detail"]


def test_a_png_whose_headers_disagree_is_refused_before_its_pixels_are_decoded():
    assert "headers disagree" in refused(data_uri(hostile.png_two_headers(), "image/png"))


def test_png_text_beyond_what_pillow_may_keep_is_refused(client):
    text = b"".join(chunk(b"zTXt", b"k\0\0" + zlib.compress(b"x" * 900_000)) for _ in range(5))
    png = image_bytes("PNG")
    response = client.post("/client/reviews", json=review_body(images=[
        data_uri(png[:33] + text + png[33:], "image/png")]))
    assert response.status_code == 422
    assert "not a readable PNG" in response.get_json()["errors"][0]["detail"]


@pytest.mark.parametrize("mutate, message", [
    (lambda jpeg: jpeg.replace(b"\xff\xc0", b"\xff\xc9", 1), "arithmetic-coded"),
    (lambda jpeg: jpeg[:2] + b"\xff\xfe\x00\x02" * 1001 + jpeg[2:], "more than 1,000 segments"),
    (lambda jpeg: jpeg[:jpeg.find(b"\xff\xc0")] + jpeg[jpeg.find(b"\xff\xc4"):],
     "no frame header"),
    (lambda jpeg: jpeg[:jpeg.find(b"\xff\xda")], "ends before its image data"),
])
def test_jpegs_no_camera_writes_are_refused_by_their_header(mutate, message):
    assert message in refused(data_uri(mutate(image_bytes(size=(64, 48)))))


def test_junk_between_jpeg_segments_is_skipped_as_libjpeg_skips_it():
    jpeg = image_bytes(size=(64, 48))
    at = jpeg.find(b"\xff\xdb")
    assert process(data_uri(jpeg[:at] + b"\x00junk" + jpeg[at:])).size == (64, 48)


def test_a_multi_picture_jpeg_is_taken_as_its_first_picture():
    out = io.BytesIO()
    Image.new("RGB", (400, 300), "red").save(out, "MPO", save_all=True,
                                              append_images=[Image.new("RGB", (400, 300))])
    result = process(data_uri(out.getvalue()))
    assert result.size == (400, 300) and result.getpixel((10, 10))[0] > 200


def test_a_jpeg_of_odd_size_is_still_decoded_at_half_scale():
    assert decoding.jpeg_scale(4001, 3001, 2048) == 2
    with Image.open(io.BytesIO(jpeg_claiming(4001, 3001))) as opened:
        opened.draft("RGB", (4001 // 2, 3001 // 2))
        assert opened.size == photo_headers.decoded_size(header_of(jpeg_claiming(4001, 3001)),
                                                         2048) == (2001, 1501)


def test_an_animated_webp_is_refused_by_its_header():
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0))]
    out = io.BytesIO()
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:])
    with pytest.raises(PhotoError, match="Animated"):
        photo_headers.read_header("WEBP", out.getvalue())


def test_pillow_plugins_are_loaded_when_the_app_starts(make_app):
    make_app()
    assert Image._initialized == 2 and "WEBP" in Image.OPEN
    assert PngImagePlugin.MAX_TEXT_MEMORY == photo_headers.PNG_TEXT_BYTES
