"""The model registry: one class per model, unknown names refused with the known ones."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from jobs.registry import JobModel, Progress, Registry, Result, UnknownModel, discover


def _model(task_name: str) -> type[JobModel]:
    class Model(JobModel):
        task = task_name

        def load(self, device: str) -> None:
            self.device = device

        def preprocess(
            self, input: Mapping[str, Any], files: Mapping[str, Path], config: Mapping[str, Any]
        ) -> Any:
            return input

        def predict(self, prepared: Any, progress: Progress) -> Any:
            progress(1.0)
            return prepared

        def postprocess(self, output: Any) -> Result:
            return Result({"out": output})

    return Model


def test_a_registered_class_is_found_by_task_and_name() -> None:
    registry = Registry()
    cls = registry.register("one")(_model("demo"))
    registry.register("two")(_model("other"))
    assert registry.find("demo", "one") is cls and cls.name == "one"
    assert registry.tasks() == ["demo", "other"]
    assert registry.models("demo") == ["one"]


def test_unknown_task_and_model_name_the_known_ones() -> None:
    registry = Registry()
    registry.register("one")(_model("demo"))
    with pytest.raises(UnknownModel, match="Known tasks: demo") as task:
        registry.find("nope", "one")
    assert task.value.param == "task"
    with pytest.raises(UnknownModel, match="Known models: one") as model:
        registry.find("demo", "two")
    assert model.value.param == "model"


def test_a_name_cannot_be_taken_twice() -> None:
    registry = Registry()
    registry.register("one")(_model("demo"))
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("one")(_model("demo"))


def test_discover_imports_the_test_models_when_asked() -> None:
    assert "echo" in discover(test_models=True).models("test")
