"""``python -m jobs.finetune.train SPEC``: one fine-tuning run, in its own process.

The worker's pool child starts this (Celery's prefork children cannot use
multiprocessing, and a crash or an out-of-memory kill here must not take the
worker with it); the kernel kills it when that child dies (parent-death
signal), so a cancelled job's memory is freed. Events go to stdout, one JSON
object per line; everything else anything prints goes to stderr (the worker's
log). Exit code 0 after the ``done`` event, 1 after an ``error`` event.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from jobs.finetune.data import DataError
from jobs.finetune.spec import TrainSpec
from p2.core.settings import use_local_models_only


class Events:
    """The event stream: the original stdout, kept for events alone."""

    def __init__(self) -> None:
        events_fd = os.dup(1)
        os.dup2(2, 1)  # library output (progress bars, prints) goes to stderr
        sys.stdout = sys.stderr
        self._out: TextIO = os.fdopen(events_fd, "w", buffering=1)

    def __call__(self, event: dict[str, Any]) -> None:
        self._out.write(json.dumps(event) + "\n")
        self._out.flush()


def pick_device(wanted: str) -> str:
    import torch

    if wanted == "cpu":
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def train(spec: TrainSpec, emit: Events) -> dict[str, Any]:
    import torch

    from jobs.finetune.embed import EmbeddingTask
    from jobs.finetune.loop import Loop
    from jobs.finetune.lora import LoraTask

    torch.manual_seed(spec.seed)
    random.seed(spec.seed)
    device = pick_device(spec.device)
    if device == "cpu":
        torch.set_num_threads(spec.threads)
    started = time.perf_counter()
    task = LoraTask(spec, device) if spec.trainer == "lora" else EmbeddingTask(spec, device)
    loop = Loop(spec, task, emit)
    emit(
        {
            "event": "loaded",
            "device": device,
            "seconds": time.perf_counter() - started,
            "steps": loop.total,
            "steps_per_epoch": loop.per_epoch,
            **task.describe(),
        }
    )
    if spec.resume is not None:
        loop.restore(Path(spec.resume))
    done = loop.run()
    if device == "cuda":
        done["peak_gpu_memory_bytes"] = int(torch.cuda.max_memory_allocated())
    return done


def error_code(exc: BaseException) -> str:
    from jobs.finetune.lora import NoExamples, TemplateError

    if isinstance(exc, DataError | NoExamples):
        return "invalid_training_file"
    if isinstance(exc, TemplateError):
        return "unsupported_model"
    if type(exc).__name__ == "OutOfMemoryError":
        return "out_of_memory"
    return "training_failed"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m jobs.finetune.train SPEC.json", file=sys.stderr)
        return 2
    emit = Events()
    use_local_models_only()
    spec = TrainSpec.loads(Path(argv[0]).read_text())
    try:
        emit(train(spec, emit))
    except Exception as exc:  # noqa: BLE001 - every failure becomes the job's error
        import traceback

        traceback.print_exc()
        emit({"event": "error", "code": error_code(exc), "message": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
