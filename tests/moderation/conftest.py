"""The moderation tests' app: moderation open, its mirror synced from the fake's fixtures."""

from __future__ import annotations

import pytest

from tests.moderation.mirror import forget_calls, sync
from tests.moderation.test_views import MODERATOR, PASSWORD


@pytest.fixture
def moderation(make_app, fake_klaviyo):
    """Moderation open, its mirror synced from the fake's fixtures; the fake then forgets
    the sync's reads, so a test sees only what its pages asked."""
    app = make_app(MODERATION_PASSWORD=PASSWORD)
    sync(app)
    forget_calls(fake_klaviyo)
    return app


@pytest.fixture
def browse(moderation):
    """GET a page as the moderator, expecting `expect`; the response."""
    client = moderation.test_client()

    def get(url, expect=200):
        response = client.get(url, headers=MODERATOR)
        assert response.status_code == expect, response.get_data(as_text=True)[:2000]
        return response
    return get
