"""What the worker asks of the training subprocess, and the layout of a job's work folder.

The worker writes a ``TrainSpec`` as ``spec.json`` in the job's work folder
(``<artifact dir>/finetune/<job id>/``) and runs ``python -m jobs.finetune.train``
on it; the subprocess answers with one JSON event per line on its stdout.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DONE = "DONE"  # written last into a checkpoint folder: it is complete
STATE = "trainer.pt"  # optimizer, scheduler, step, RNG


@dataclass(frozen=True)
class TrainSpec:
    trainer: str  # "lora" | "embedding"
    base: str  # the base GGUF (lora) or sentence-transformers folder (embedding)
    train_file: str
    valid_file: str | None
    workdir: str
    n_epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    max_tokens: int
    lora_rank: int
    lora_alpha: int
    threads: int
    device: str  # auto | cpu | cuda
    checkpoint_steps: int  # besides each epoch's end; 0: epochs only
    eval_max_examples: int
    resume: str | None  # a checkpoint folder to continue from
    eval_before: bool  # a validation pass before the first step (baseline loss)

    def dumps(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def loads(cls, text: str) -> TrainSpec:
        data: dict[str, Any] = json.loads(text)
        return cls(**data)


def workdir(artifacts: Path, job_id: str) -> Path:
    return artifacts / "finetune" / job_id


def checkpoints_dir(work: Path) -> Path:
    return work / "checkpoints"


def checkpoint_dir(work: Path, step: int) -> Path:
    return checkpoints_dir(work) / f"step-{step:07d}"


def output_dir(work: Path) -> Path:
    """The trained result: a peft adapter folder, or a sentence-transformers model."""
    return work / "output"


def base_config_dir(work: Path) -> Path:
    """The base's config and tokenizer (no weights): what the GGUF converter reads."""
    return work / "base"


def complete(folder: Path) -> bool:
    """Whether ``folder`` is a whole checkpoint (a kill mid-write leaves none)."""
    return (folder / DONE).is_file() and (folder / STATE).is_file()
