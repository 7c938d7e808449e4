"""Hyperparameters: OpenAI's three (``n_epochs``, ``batch_size``,
``learning_rate_multiplier``), with ``auto`` resolved once the file's size is known."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobs.finetune.data import Format

AUTO = "auto"


@dataclass(frozen=True)
class Defaults:
    n_epochs: int
    batch_size: int


# Chat: LoRA converges in a few epochs on small files; embeddings: one pass of in-batch
# negatives (a batch of 32 gives each pair 31 negatives).
DEFAULTS = {Format.CHAT: Defaults(n_epochs=3, batch_size=8), Format.PAIRS: Defaults(1, 32)}


def resolve(given: Mapping[str, Any], fmt: Format, examples: int) -> dict[str, Any]:
    """Concrete values for ``given`` (``auto`` or missing: the defaults); a batch is never
    larger than the file."""
    defaults = DEFAULTS[fmt]
    epochs = given.get("n_epochs")
    batch = given.get("batch_size")
    multiplier = given.get("learning_rate_multiplier")
    return {
        "n_epochs": int(epochs) if isinstance(epochs, int) else defaults.n_epochs,
        "batch_size": max(
            1, min(int(batch) if isinstance(batch, int) else defaults.batch_size, examples)
        ),
        "learning_rate_multiplier": float(multiplier)
        if isinstance(multiplier, int | float) and not isinstance(multiplier, bool)
        else 1.0,
    }
