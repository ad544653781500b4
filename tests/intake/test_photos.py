"""Photos are decoded, checked and re-encoded; hostile files get a clear refusal."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
from PIL import Image

from tests.reviews import data_uri, decode_data_uri, image_bytes
from widget.intake import photos as images
from widget.intake.photos import PhotoError, PhotoPolicy, PhotoTooLarge

POLICY = PhotoPolicy()
BUDGET = 600_000


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
