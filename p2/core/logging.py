"""Logging set-up shared by all services, with secret redaction."""

from __future__ import annotations

import logging
import re

_SECRET = re.compile(r"(Bearer\s+)[A-Za-z0-9._\-]+|\bsk-[A-Za-z0-9._\-]{4,}", re.IGNORECASE)


def redact(text: str) -> str:
    """Hide bearer tokens and ``sk-`` keys: keys never reach a log file."""
    return _SECRET.sub(lambda m: (m.group(1) or "") + "***", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure_logging(level: str = "info", service: str = "p2") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s")
    )
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
