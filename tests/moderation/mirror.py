"""Filling the mirror for moderation tests: by one sync against the fake, or rows directly."""

from __future__ import annotations

import re

from widget.delivery.outbox import utcnow

# How long a test's page cache may keep a page before it asks the mirror again. Long enough
# that a loaded CI machine never spends it between two requests meant to fall inside it
# (0.3 s did not: the second read already saw another process's write).
CHECK_SECONDS = 1.5


def sync(app):
    """One sync of the mirror from the fake Klaviyo's fixtures (every status, with emails)."""
    run = app.extensions["syncer"].sync_once()
    assert run is not None and run.error is None, run
    return run


def store(app, resources):
    """Put these review resources straight into the mirror (as a sync would)."""
    mirror = app.extensions["mirror"]
    mirror.upsert(resources)
    mirror.record(source="private", last_sync_at=utcnow())


def ids_on(page_text):
    return re.findall(r'data-review-id="([^"]+)"', page_text)


def link(page_text, rel):
    """The href of the page's rel=next / rel=prev link (unescaped), or None."""
    found = re.search(rf'rel="{rel}" href="([^"]+)"', page_text)
    return found.group(1).replace("&amp;", "&") if found else None


def forget_calls(fake):
    """Forget what the fake Klaviyo has seen so far (the sync's reads)."""
    with fake.lock:
        fake.received.clear()
