"""Builders for request bodies and photos used across the tests; this package holds the
tests of widget/reviews/ too."""

from __future__ import annotations

import base64
import io
import os
import time
from typing import Any

from PIL import Image


def review_body(**attributes: Any) -> dict[str, Any]:
    """A valid create_client_review body; keyword arguments replace attributes
    (a value of `...` removes the attribute)."""
    attrs: dict[str, Any] = {
        "review_type": "review",
        "email": "ann@example.com",
        "author": "Ann",
        "content": "Lovely shirt, true to size.",
        "title": "Great fit",
        "rating": 5,
        "product": {"external_id": "7549950034135", "integration_key": "shopify"},
    }
    attrs.update(attributes)
    attrs = {key: value for key, value in attrs.items() if value is not ...}
    return {"data": {"type": "review", "attributes": attrs}}


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (64, 48), color: Any = (200, 30, 30),
                mode: str = "RGB", **save: Any) -> bytes:
    image = Image.new(mode, size, color)
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


def data_uri(data: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def decode_data_uri(uri: str) -> bytes:
    header, _, payload = uri.partition(",")
    assert header.endswith(";base64"), header
    return base64.b64decode(payload)


REVIEWED_PRODUCT = "shopify:7549950034135"  # the product of review_body()


def form_token(product: str = REVIEWED_PRODUCT, seconds_ago: float = 10,
               secret: str = "test-secret") -> str:
    """A form token as GET /embed would have issued it `seconds_ago` for `product`."""
    from itsdangerous import TimestampSigner, URLSafeTimedSerializer

    from widget.intake.defences import TOKEN_SALT

    issued = time.time() - seconds_ago

    class Signer(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(issued)

    serializer = URLSafeTimedSerializer(secret, salt=TOKEN_SALT, signer=Signer)
    return serializer.dumps({"n": base64.urlsafe_b64encode(os.urandom(6)).decode(),
                             "p": product, "t0": int(issued)})
