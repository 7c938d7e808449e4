"""The rule for external tools: skipped on a developer's machine, a failure in CI."""

from __future__ import annotations

import pytest

from tests.docker.tools import require_tool

MISSING = "p2-no-such-tool-anywhere"


def test_missing_tool_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y some-package"):
        require_tool(MISSING, "some-package")


def test_missing_tool_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y some-package"):
        require_tool(MISSING, "some-package")


def test_present_tool_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert require_tool("sh", "dash").endswith("/sh")
