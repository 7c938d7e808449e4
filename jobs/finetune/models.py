"""The fine-tuning job models: ``chat`` and ``code`` (LoRA adapters on their GGUF bases)
and ``embedding`` (the sentence-transformers model), one class each in the registry.

On a worker, a job's run is: find the base and the newest complete checkpoint
(a re-run after a lost worker resumes from it), write the spec, run the training
subprocess while relaying its events to the job's journal (and MLflow),
checkpoints included, then publish the result where the servers look: a GGUF
adapter (converted with llama.cpp's script) or the model's folder.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from jobs.finetune import convert, tracking
from jobs.finetune.bases import BASES, TASK, Base, Trainer, base_gguf, embedding_base
from jobs.finetune.names import ModelName
from jobs.finetune.process import Beat, run_trainer
from jobs.finetune.publish import publish_adapter, publish_folder
from jobs.finetune.settings import FinetuneSettings
from jobs.finetune.spec import (
    TrainSpec,
    base_config_dir,
    complete,
    output_dir,
    workdir,
)
from jobs.journal import BoundJournal, Checkpoint
from jobs.registry import Artifact, JobModel, ModelError, Progress, Result, RunningJob, register
from p2.core.files import atomic_write

TRAIN_SHARE = 0.95  # of the job's progress; the rest is conversion and publishing
CSV_COLUMNS = ("step", "train_loss", "train_accuracy", "valid_loss", "valid_accuracy")


@dataclass(frozen=True)
class Plan:
    spec: TrainSpec
    spec_path: Path
    name: ModelName
    resume: Checkpoint | None


@dataclass(frozen=True)
class Trained:
    name: str
    path: Path
    trained_tokens: int
    steps: int
    table: bytes


class _Relay:
    """Trainer events to the job's journal, MLflow and the job's progress."""

    def __init__(
        self, journal: BoundJournal, tracker: tracking.Tracker, settings: FinetuneSettings
    ) -> None:
        self.journal = journal
        self.tracker = tracker
        self.settings = settings
        self.fraction = 0.0

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "loaded":
            self._loaded(event)
        elif kind == "resumed":
            self.journal.forget_metrics_after(int(event["step"]))
            self.journal.log(f"Resumed from the checkpoint at step {event['step']}")
        elif kind == "step":
            self._step(event)
        elif kind == "eval":
            self._eval(event)
        elif kind == "checkpoint":
            self._checkpoint(event)

    def _loaded(self, event: dict[str, Any]) -> None:
        message = (
            f"Base model loaded on {event['device']} in {event['seconds']:.1f}s: "
            f"{event['examples']} training examples, {event['steps']} steps"
        )
        cut = int(event.get("truncated", 0))
        if cut:
            message += f"; {cut} examples cut to FINETUNE_MAX_TOKENS={self.settings.max_tokens}"
        self.journal.log(message, level="warn" if cut else "info", data=event)

    def _step(self, event: dict[str, Any]) -> None:
        step, total = int(event["step"]), int(event["total"])
        self.fraction = TRAIN_SHARE * step / max(total, 1)
        data = {
            "step": step,
            "total_steps": total,
            "epoch": event["epoch"],
            "train_loss": event["train_loss"],
            "learning_rate": event["learning_rate"],
            "tokens": event["tokens"],
            "seconds": event["seconds"],
        }
        if "train_mean_token_accuracy" in event:
            data["train_mean_token_accuracy"] = event["train_mean_token_accuracy"]
        message = f"Step {step}/{total}: training loss={event['train_loss']:.4f}"
        self.journal.log(message, kind="metrics", data=data)
        self.tracker.metrics(
            {k: float(v) for k, v in data.items() if k.startswith(("train_", "learning"))}, step
        )

    def _eval(self, event: dict[str, Any]) -> None:
        step = int(event["step"])
        metrics = {k: float(v) for k, v in event.items() if k.startswith("valid_")}
        data = {"step": step, "total_steps": event["total"], "epoch": event["epoch"], **metrics}
        message = f"Step {step}/{event['total']}: validation loss={event['valid_loss']:.4f}"
        if "valid_recall_at_1" in event:
            message += f", recall@1={event['valid_recall_at_1']:.3f}"
        self.journal.log(message, kind="metrics", data=data)
        self.tracker.metrics(metrics, step)

    def _checkpoint(self, event: dict[str, Any]) -> None:
        step, epoch = int(event["step"]), int(event["epoch"])
        self.journal.checkpoint(
            step=step, epoch=epoch, metrics=dict(event["metrics"]), path=str(event["path"])
        )
        self.journal.log(f"Checkpoint created at step {step} (epoch {epoch})", data=event)
        kept = [c for c in self.journal.checkpoints() if c.path is not None]
        for old in kept[: -self.settings.keep_checkpoints]:
            prune(self.journal, old)


def prune(journal: BoundJournal, checkpoint: Checkpoint) -> None:
    if checkpoint.path is not None:
        shutil.rmtree(checkpoint.path, ignore_errors=True)
    journal.pruned(checkpoint.id)


def metrics_table(journal: BoundJournal) -> bytes:
    """OpenAI's result file: one CSV row per step, validation values on evaluated steps."""
    rows: dict[int, dict[str, Any]] = {}
    for entry in journal.entries():
        data = entry.data or {}
        if entry.kind != "metrics" or "step" not in data:
            continue
        row = rows.setdefault(int(data["step"]), {"step": int(data["step"])})
        for source, column in (
            ("train_loss", "train_loss"),
            ("train_mean_token_accuracy", "train_accuracy"),
            ("valid_loss", "valid_loss"),
            ("valid_mean_token_accuracy", "valid_accuracy"),
            ("valid_recall_at_1", "valid_accuracy"),
        ):
            if source in data:
                row[column] = data[source]
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for step in sorted(rows):
        writer.writerow(rows[step])
    return out.getvalue().encode()


class FineTune(JobModel):
    """A fine-tuning job on one model group (``base``); see the module docstring."""

    task = TASK
    direct = False  # created with POST /v1/fine_tuning/jobs, after its files are validated
    base: ClassVar[Base]

    def load(self, device: str) -> None:
        self.device = device
        self.settings = FinetuneSettings()

    def attach(self, job: RunningJob) -> None:
        self.job = job

    def _base_path(self) -> Path:
        if self.base.trainer is Trainer.EMBEDDING:
            return embedding_base(self.settings)
        return base_gguf(self.base.name, self.settings, self.job.home)

    def _resume(self) -> Checkpoint | None:
        for checkpoint in reversed(self.job.journal.checkpoints()):
            if checkpoint.path is not None and complete(Path(checkpoint.path)):
                return checkpoint
        return None

    def preprocess(
        self, input: Mapping[str, Any], files: Mapping[str, Path], config: Mapping[str, Any]
    ) -> Plan:
        job, settings = self.job, self.settings
        work = workdir(job.artifacts, job.id)
        work.mkdir(parents=True, exist_ok=True)
        valid = input.get("validation_file_id")
        resume = self._resume()
        device = settings.device if settings.device != "auto" else self.device
        spec = TrainSpec(
            trainer=self.base.trainer.value,
            base=str(self._base_path()),
            train_file=str(files[input["training_file_id"]]),
            valid_file=str(files[valid]) if valid else None,
            workdir=str(work),
            n_epochs=int(config["n_epochs"]),
            batch_size=int(config["batch_size"]),
            learning_rate=float(config["learning_rate_multiplier"]) * self._learning_rate(),
            seed=int(input.get("seed", 0)),
            max_tokens=settings.max_tokens,
            lora_rank=settings.lora_rank,
            lora_alpha=settings.lora_alpha,
            threads=settings.torch_threads,
            device="cpu" if device == "cpu" else "auto",
            checkpoint_steps=settings.checkpoint_steps,
            eval_max_examples=settings.eval_max_examples,
            resume=resume.path if resume is not None else None,
            eval_before=valid is not None,
        )
        spec_path = work / "spec.json"
        atomic_write(spec_path, spec.dumps())
        name = ModelName(self.base.name, str(input.get("suffix") or ""), job.id)
        return Plan(spec, spec_path, name, resume)

    def _learning_rate(self) -> float:
        if self.base.trainer is Trainer.EMBEDDING:
            return self.settings.embedding_learning_rate
        return self.settings.chat_learning_rate

    def _tracker(self, plan: Plan) -> tracking.Tracker:
        earlier = next(
            (
                str(e.data[tracking.RUN_ID])
                for e in self.job.journal.entries()
                if e.data and tracking.RUN_ID in e.data
            ),
            None,
        )
        settings = self.settings
        tracker = tracking.tracker(
            settings.mlflow_tracking_uri,
            settings.mlflow_experiment,
            self.job.id,
            earlier,
            settings.mlflow_artifact_location,
        )
        if tracker.run_id is not None and tracker.run_id != earlier:
            self.job.journal.log(
                f"Tracking in MLflow run {tracker.run_id}", data={tracking.RUN_ID: tracker.run_id}
            )
        spec = plan.spec
        tracker.params(
            {
                "model": self.base.name,
                "base": Path(spec.base).name,
                "n_epochs": spec.n_epochs,
                "batch_size": spec.batch_size,
                "learning_rate": spec.learning_rate,
                "seed": spec.seed,
                "lora_rank": spec.lora_rank,
                "lora_alpha": spec.lora_alpha,
                "max_tokens": spec.max_tokens,
            }
        )
        return tracker

    def predict(self, prepared: Plan, progress: Progress) -> Trained:
        journal = self.job.journal
        tracker = self._tracker(prepared)
        relay = _Relay(journal, tracker, self.settings)

        def beat() -> None:
            progress(relay.fraction)

        try:
            tree = None
            if self.base.trainer is Trainer.LORA:  # fetched before any training is spent
                tree = convert.converter_tree(self.settings.llama_cpp_dir, beat)
            if prepared.resume is not None:
                journal.log(f"Resuming from the checkpoint at step {prepared.resume.step}")
            done = run_trainer(prepared.spec_path, beat=beat, on_event=relay)
            work = Path(prepared.spec.workdir)
            path = self._publish(prepared, tree, work, beat)
        except ModelError as exc:  # final: the job fails; its work folder is not needed
            tracker.finish("FAILED")
            journal.log(f"Fine-tuning failed: {exc.message}", level="error")
            shutil.rmtree(prepared.spec.workdir, ignore_errors=True)
            raise
        except Exception:  # cancelled or taken over: a re-run may still need the checkpoints
            tracker.finish("KILLED")
            raise
        journal.log(f"New fine-tuned model created: {prepared.name}", data={"path": str(path)})
        tracker.artifact(path)
        tracker.finish("FINISHED")
        table = metrics_table(journal)
        for checkpoint in journal.checkpoints():
            prune(journal, checkpoint)
        shutil.rmtree(work, ignore_errors=True)
        return Trained(
            str(prepared.name), path, int(done["trained_tokens"]), int(done["steps"]), table
        )

    def _publish(self, plan: Plan, tree: Path | None, work: Path, beat: Beat) -> Path:
        home = self.job.home
        if self.base.trainer is Trainer.EMBEDDING:
            target = self.settings.embedding_models(home) / self.job.id
            return publish_folder(output_dir(work), target, str(plan.name))
        assert tree is not None
        converted = work / "adapter.gguf"
        convert.to_gguf(tree, output_dir(work), base_config_dir(work), converted, beat)
        target = self.settings.adapters(home) / f"{self.job.id}.gguf"
        return publish_adapter(converted, target, self.base.name, plan.name.suffix)

    def postprocess(self, output: Trained) -> Result:
        data = {
            "fine_tuned_model": output.name,
            "trained_tokens": output.trained_tokens,
            "steps": output.steps,
            "path": str(output.path),
        }
        return Result(data, (Artifact("step_metrics.csv", output.table, "text/csv"),))


@register("chat")
class ChatFineTune(FineTune):
    base = BASES["chat"]


@register("code")
class CodeFineTune(FineTune):
    base = BASES["code"]


@register("embedding")
class EmbeddingFineTune(FineTune):
    base = BASES["embedding"]
