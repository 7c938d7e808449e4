"""The model registry: which class runs a job's ``(task, model)``; a new model is one class.

The contract a model keeps (``jobs/segmentation/`` and ``jobs/testmodels.py`` follow it)::

    from jobs.registry import Artifact, InvalidInput, JobModel, Progress, Result, register

    @register("otsu")                      # the job's "model"; names are unique across tasks
    class Otsu(JobModel):
        task = "segmentation"              # the job's "task"

        @classmethod
        def validate(cls, input, config):  # in the job API at submit time: cheap, no heavy imports;
            ...                            # raise InvalidInput(message, param=...) -> 400

        def load(self, device):            # once per worker child, kept between jobs; "cpu" or
            ...                            # "cuda" (CUDA_VISIBLE_DEVICES picks the GPU); import
                                           # torch and read weights here, never at module import
        def preprocess(self, input, files, config):  # files: {file_id: Path} for every string under
            ...                            # an input key ending "file_id" (or a list under
                                           # "file_ids"), checked by the API to be the caller's
        def predict(self, prepared, progress):        # progress(fraction in 0..1) is the job's
            ...                            # heartbeat: call it at least every few seconds, or the
                                           # worker is judged wedged (WORKER_STALL_TIMEOUT)
        def postprocess(self, output):     # -> Result(data=JSON-able dict, artifacts=(Artifact(
            ...                            #    "mask-0.png", png_bytes, "image/png"),))

A model that needs to know which job it runs (to record checkpoints and
messages in the job's journal, or to resume after a lost worker) overrides
``attach(job)``, called with a ``RunningJob`` before ``preprocess``. A model
with ``direct = False`` is submitted through its own API (fine-tuning), not
``POST /v1/jobs``.

A failure the user caused raises ``InvalidInput`` (the job fails with code
``invalid_input``); any other expected failure raises ``ModelError`` with a
code. Anything else fails the job as ``internal_error``. Importing
``jobs.segmentation`` registers its models; ``discover`` does that import.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from jobs.journal import BoundJournal

Progress = Callable[[float], None]
"""Report a fraction done (0..1); every call is also the worker's heartbeat."""


class ModelError(Exception):
    """A job cannot be done; ``code`` says why in the job's ``error``."""

    code = "model_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidInput(ModelError):
    """The job's input or config is wrong; ``param`` names the field (``input.boxes``)."""

    code = "invalid_input"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class UnknownModel(LookupError):
    """No model of that name (or no task of that name); the message lists the known ones."""

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True)
class Artifact:
    """A result file: stored under the artifact directory and listed as a file of the job."""

    name: str
    data: bytes
    media_type: str = "application/octet-stream"


@dataclass(frozen=True)
class Result:
    """What a job produced: a JSON-able ``data`` dict and optional artifact files."""

    data: dict[str, Any]
    artifacts: tuple[Artifact, ...] = ()


@dataclass(frozen=True)
class RunningJob:
    """The job a model is about to run, given to ``JobModel.attach``."""

    id: str
    owner: str
    attempt: int  # 1 on the first start; more after a lost worker
    home: Path  # the worker's P2_HOME
    artifacts: Path  # the artifact directory (JOBS_ARTIFACT_DIR), shared with the API
    journal: BoundJournal  # the job's log and checkpoints


class JobModel(ABC):
    """Base of every model a worker runs; see the module docstring for the contract."""

    task: ClassVar[str]
    name: ClassVar[str] = ""
    direct: ClassVar[bool] = True  # False: not submitted with POST /v1/jobs

    def attach(self, job: RunningJob) -> None:
        """Called before ``preprocess`` with the job about to run; the default ignores it."""
        return None

    @classmethod
    def validate(cls, input: Mapping[str, Any], config: Mapping[str, Any]) -> None:
        """Refuse a bad input at submit time (``InvalidInput``); the default accepts any."""
        return None

    @abstractmethod
    def load(self, device: str) -> None:
        """Load weights onto ``device``; runs once per worker child."""

    @abstractmethod
    def preprocess(
        self, input: Mapping[str, Any], files: Mapping[str, Path], config: Mapping[str, Any]
    ) -> Any:
        """Decode and check the input (``files`` maps the input's file ids to local paths)."""

    @abstractmethod
    def predict(self, prepared: Any, progress: Progress) -> Any:
        """The model's work; calls ``progress`` as it goes."""

    @abstractmethod
    def postprocess(self, output: Any) -> Result:
        """Shape the output as the job's result."""


M = TypeVar("M", bound=type[JobModel])


class Registry:
    """Model classes by name; a model's task is its class's ``task``."""

    def __init__(self) -> None:
        self._models: dict[str, type[JobModel]] = {}

    def register(self, name: str) -> Callable[[M], M]:
        def add(cls: M) -> M:
            if name in self._models and self._models[name] is not cls:
                raise ValueError(f"model {name!r} is registered twice")
            cls.name = name
            self._models[name] = cls
            return cls

        return add

    def tasks(self) -> list[str]:
        return sorted({cls.task for cls in self._models.values()})

    def models(self, task: str | None = None) -> list[str]:
        return sorted(n for n, c in self._models.items() if task is None or c.task == task)

    def find(self, task: str, model: str) -> type[JobModel]:
        """The class for ``model`` of ``task``; ``UnknownModel`` names the known ones."""
        if task not in self.tasks():
            raise UnknownModel(
                f"The task '{task}' does not exist. Known tasks: {_names(self.tasks())}.",
                param="task",
            )
        cls = self._models.get(model)
        if cls is None or cls.task != task:
            raise UnknownModel(
                f"The model '{model}' does not exist for task '{task}'. "
                f"Known models: {_names(self.models(task))}.",
                param="model",
            )
        return cls


def _names(names: Iterable[str]) -> str:
    return ", ".join(names) or "none"


registry = Registry()
register = registry.register

MODEL_PACKAGES = ("jobs.segmentation", "jobs.finetune")
TEST_MODELS = "jobs.testmodels"


def discover(*, test_models: bool = False) -> Registry:
    """Import the packages whose models register themselves; the test models on request."""
    for package in (*MODEL_PACKAGES, *((TEST_MODELS,) if test_models else ())):
        importlib.import_module(package)
    return registry
