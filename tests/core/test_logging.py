from __future__ import annotations

import logging

import pytest

from p2.core.logging import RedactingFilter, redact


@pytest.mark.parametrize(
    "line",
    [
        "Authorization: Bearer sk-live-1234567890abcdef",
        "bad key sk-proj-ABCDEF123456 rejected",
        "header bearer abc.def-ghi",
    ],
)
def test_keys_never_reach_the_log(line: str) -> None:
    cleaned = redact(line)
    assert "1234567890abcdef" not in cleaned
    assert "ABCDEF123456" not in cleaned
    assert "***" in cleaned


def test_filter_redacts_formatted_arguments(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("p2.test.redact")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="p2.test.redact"):
        logger.info("client sent %s", "Bearer topsecret-token")
    assert "topsecret" not in caplog.text
