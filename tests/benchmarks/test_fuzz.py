"""The short fuzz run of CI: every service of a real stack against its own OpenAPI."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.fuzz import fuzz_stack, summary
from tests.docker.tools import require_tool

pytestmark = pytest.mark.fuzz


def test_no_service_answers_5xx_or_breaks_its_own_schema(tmp_path: Path) -> None:
    require_tool("redis-server", "redis-server")
    reports = fuzz_stack(max_examples=5, seed=7, home=tmp_path)
    failed = [r for r in reports if r.failed or r.requests == 0]
    assert not failed, summary(reports) + "\n" + "\n".join(r.output for r in failed)
