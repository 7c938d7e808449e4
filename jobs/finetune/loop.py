"""The training loop both trainers share: batches, AdamW with warm-up and linear decay,
gradient clipping, evaluation and resumable checkpoints, reported as events.

Data order is a pure function of (seed, epoch), so a run resumed from a
checkpoint (model, optimizer, scheduler, step, RNG) takes the very batches the
uninterrupted run would have. A checkpoint is written to a temporary folder,
marked complete, then renamed into place: a kill leaves the old one or the new.
Runs only in the training subprocess (it imports torch).
"""

from __future__ import annotations

import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from jobs.finetune.spec import DONE, STATE, TrainSpec, checkpoint_dir, output_dir

WARMUP_STEPS = 5
CLIP_NORM = 1.0

Emit = Callable[[dict[str, Any]], None]


@dataclass
class StepResult:
    loss: torch.Tensor  # the batch's mean loss, with its graph
    tokens: int  # tokens processed (billed as trained tokens)
    metrics: dict[str, float] = field(default_factory=dict)  # e.g. train_mean_token_accuracy


class Task(Protocol):
    """What a trainer provides the loop: its examples, a loss per batch, an evaluation,
    and how its model is saved."""

    examples: int

    def parameters(self) -> list[torch.nn.Parameter]: ...

    def step(self, batch: Sequence[int]) -> StepResult: ...

    def evaluate(self) -> dict[str, float]: ...

    def save(self, folder: Path) -> None: ...


def epoch_order(count: int, seed: int, epoch: int) -> list[int]:
    order = list(range(count))
    random.Random(seed * 1000 + epoch).shuffle(order)
    return order


def write_checkpoint(folder: Path, task: Task, state: dict[str, Any]) -> None:
    """``folder`` holds the model and the trainer state, complete, or is left as it was."""
    partial = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    task.save(partial)
    torch.save(state, partial / STATE)
    (partial / DONE).write_text(str(state["step"]))
    replace_dir(partial, folder)


def replace_dir(source: Path, target: Path) -> None:
    """Move ``source`` to ``target``, replacing a folder there with one rename."""
    aside = target.with_name(f".{target.name}.old")
    shutil.rmtree(aside, ignore_errors=True)
    if target.exists():
        os.replace(target, aside)
    os.replace(source, target)
    shutil.rmtree(aside, ignore_errors=True)


class Loop:
    def __init__(self, spec: TrainSpec, task: Task, emit: Emit) -> None:
        self.spec = spec
        self.task = task
        self.emit = emit
        self.work = Path(spec.workdir)
        self.per_epoch = math.ceil(task.examples / spec.batch_size)
        self.total = self.per_epoch * spec.n_epochs
        trainable = task.parameters()
        self.optimizer = torch.optim.AdamW(trainable, lr=spec.learning_rate, weight_decay=0.0)
        total, warmup = self.total, min(WARMUP_STEPS, max(1, self.total // 10))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (total - s) / total),
        )
        self.step = 0
        self.tokens = 0
        self.losses: list[float] = []

    def restore(self, folder: Path) -> None:
        """Continue from a checkpoint's trainer state (the task loaded its model)."""
        state = torch.load(folder / STATE, weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.tokens = int(state["step"]), int(state["tokens"])
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        self.emit({"event": "resumed", "step": self.step, "total": self.total})

    def _state(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "tokens": self.tokens,
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
        }

    def _evaluate(self, epoch: int) -> dict[str, float]:
        if self.spec.valid_file is None:
            return {}
        started = time.perf_counter()
        metrics = self.task.evaluate()
        self.emit(
            {
                "event": "eval",
                "step": self.step,
                "total": self.total,
                "epoch": epoch,
                "seconds": time.perf_counter() - started,
                **metrics,
            }
        )
        return metrics

    def _checkpoint(self, epoch: int, metrics: dict[str, float]) -> None:
        folder = checkpoint_dir(self.work, self.step)
        started = time.perf_counter()
        write_checkpoint(folder, self.task, self._state())
        recent = self.losses[-self.per_epoch :]
        self.emit(
            {
                "event": "checkpoint",
                "step": self.step,
                "epoch": epoch,
                "path": str(folder),
                "seconds": time.perf_counter() - started,
                "metrics": {"train_loss": sum(recent) / max(1, len(recent)), **metrics},
            }
        )

    def run(self) -> dict[str, Any]:
        """Train to the end; the ``done`` event."""
        spec = self.spec
        if self.step == 0 and spec.eval_before:
            self._evaluate(0)
        while self.step < self.total:
            epoch, position = divmod(self.step, self.per_epoch)
            order = epoch_order(self.task.examples, spec.seed, epoch)
            batch = order[position * spec.batch_size : (position + 1) * spec.batch_size]
            started = time.perf_counter()
            result = self.task.step(batch)
            torch.autograd.backward(result.loss)
            torch.nn.utils.clip_grad_norm_(self.task.parameters(), CLIP_NORM)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            self.tokens += result.tokens
            loss = float(result.loss.item())
            self.losses.append(loss)
            self.emit(
                {
                    "event": "step",
                    "step": self.step,
                    "total": self.total,
                    "epoch": epoch + 1,
                    "train_loss": loss,
                    "learning_rate": self.scheduler.get_last_lr()[0],
                    "tokens": result.tokens,
                    "seconds": time.perf_counter() - started,
                    **result.metrics,
                }
            )
            epoch_end = self.step % self.per_epoch == 0
            every = spec.checkpoint_steps and self.step % spec.checkpoint_steps == 0
            if epoch_end or every:
                metrics = self._evaluate(epoch + 1) if epoch_end else {}
                self._checkpoint(epoch + 1 if epoch_end else epoch, metrics)
        final = output_dir(self.work)
        partial = final.with_name(f".{final.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        self.task.save(partial)
        replace_dir(partial, final)
        return {
            "event": "done",
            "output": str(final),
            "steps": self.step,
            "trained_tokens": self.tokens,
        }
