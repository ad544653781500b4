"""The rule for what a test needs and cannot find: it fails in CI and skips elsewhere."""

from __future__ import annotations

import pytest

from tests.services import unavailable


@pytest.mark.parametrize("ci", ["true", "1", "yes"])
def test_a_missing_service_browser_or_file_fails_the_test_in_ci(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="Chromium is needed in CI.*apt-get"):
        unavailable("Chromium", "apt-get install -y chromium")


@pytest.mark.parametrize("ci", [None, "false", ""])
def test_outside_ci_a_missing_service_skips_the_test(monkeypatch, ci):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="Redis is not available"):
        unavailable("Redis")
