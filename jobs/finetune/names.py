"""Fine-tuned model names: ``ft:<base>:<suffix>:<job id>``, as the gateway routes them.

``<base>`` is the model group the job fine-tuned (``chat``, ``code``,
``embedding``), ``<suffix>`` the job's (possibly empty) suffix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "ft"
SUFFIX = re.compile(r"^[A-Za-z0-9._-]{1,40}$")  # no ':', the separator


@dataclass(frozen=True)
class ModelName:
    base: str
    suffix: str
    job_id: str

    def __str__(self) -> str:
        return f"{PREFIX}:{self.base}:{self.suffix}:{self.job_id}"


def parse(name: str) -> ModelName | None:
    """The parts of a fine-tuned model's name; None for any other name."""
    parts = name.split(":")
    if len(parts) != 4 or parts[0] != PREFIX or not parts[1] or not parts[3]:
        return None
    return ModelName(parts[1], parts[2], parts[3])
