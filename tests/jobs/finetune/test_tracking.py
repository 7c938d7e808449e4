"""MLflow tracking (the optional ``mlflow`` extra) on its SQLite backend: a job's
parameters, per-step metrics and result land in one run, continued after a resume;
a tracking server that fails never fails the job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jobs.finetune.tracking import MlflowTracker, NoTracking, tracker
from tests.jobs.finetune.helpers import chat_lines
from tests.jobs.finetune.test_worker import _create, _final, _upload
from tests.jobs.helpers import JobStack, http

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402


def _uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_a_run_gets_params_metrics_and_artifacts_and_a_resume_continues_it(
    tmp_path: Path,
) -> None:
    uri, artifacts = _uri(tmp_path), str(tmp_path / "artifacts")
    first = tracker(uri, "ft", "job-1", None, artifacts)
    assert isinstance(first, MlflowTracker) and first.run_id is not None
    first.params({"n_epochs": 2, "model": "chat"})
    first.metrics({"train_loss": 2.0}, 1)
    resumed = tracker(uri, "ft", "job-1", first.run_id, artifacts)
    assert resumed.run_id == first.run_id
    resumed.metrics({"train_loss": 1.0}, 2)
    (tmp_path / "adapter.gguf").write_bytes(b"GGUF")
    resumed.artifact(tmp_path / "adapter.gguf")
    resumed.finish("FINISHED")
    client = MlflowClient(uri)
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED" and run.data.params == {"n_epochs": "2", "model": "chat"}
    history = client.get_metric_history(first.run_id, "train_loss")
    assert [(m.step, m.value) for m in history] == [(1, 2.0), (2, 1.0)]
    assert [a.path for a in client.list_artifacts(first.run_id)] == ["adapter.gguf"]
    assert run.data.tags["p2.job_id"] == "job-1"


def test_no_uri_means_no_tracking_and_a_failing_server_is_ignored(tmp_path: Path) -> None:
    assert isinstance(tracker(None, "ft", "job-1", None), NoTracking)

    class Refusing:
        def __getattr__(self, name: str) -> Any:
            raise ConnectionError("tracking server down")

    broken = MlflowTracker(Refusing(), "ft", "job-1", None)
    broken.params({"a": 1})  # logged once, then ignored: nothing raises
    broken.metrics({"train_loss": 1.0}, 1)
    broken.finish("FINISHED")
    assert broken.run_id is None


def test_a_worker_tracks_its_job_in_mlflow(ft_stack: JobStack, tmp_path: Path) -> None:
    uri = _uri(tmp_path)
    ft_stack.env.update(
        {"MLFLOW_TRACKING_URI": uri, "FINETUNE_MLFLOW_ARTIFACT_LOCATION": str(tmp_path / "art")}
    )
    client = http(ft_stack.api().url)
    ft_stack.worker()
    job = _create(
        client,
        model="chat",
        training_file=_upload(client, chat_lines(8)),
        hyperparameters={"n_epochs": 1, "batch_size": 4},
    )
    assert _final(client, job["id"])["status"] == "succeeded"
    [run] = MlflowClient(uri).search_runs(
        [MlflowClient(uri).get_experiment_by_name("p2-fine-tuning").experiment_id]
    )
    assert run.info.run_name == job["id"] and run.info.status == "FINISHED"
    assert run.data.params["n_epochs"] == "1" and run.data.params["model"] == "chat"
    steps = MlflowClient(uri).get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in steps] == [1, 2]
    [artifact] = MlflowClient(uri).list_artifacts(run.info.run_id)
    assert artifact.path == f"{job['id']}.gguf"
