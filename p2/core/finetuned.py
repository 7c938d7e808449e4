"""Fine-tuned model names, ``ft:<base>:<suffix>:<id>``: the one format every service reads.

``<base>`` is the model group that was fine-tuned (``chat``, ``code``,
``embedding``), ``<suffix>`` the job's (possibly empty) suffix and ``<id>`` the
job's id, which also names the result's files.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "ft"


@dataclass(frozen=True)
class FineTunedName:
    base: str
    suffix: str
    id: str

    def __str__(self) -> str:
        return f"{PREFIX}:{self.base}:{self.suffix}:{self.id}"


def parse_finetuned(name: str) -> FineTunedName | None:
    """The parts of a fine-tuned model's name; None for any other name."""
    parts = name.split(":")
    if len(parts) != 4 or parts[0] != PREFIX or not parts[1] or not parts[3]:
        return None
    return FineTunedName(parts[1], parts[2], parts[3])
