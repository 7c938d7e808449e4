"""MLflow, when ``MLFLOW_TRACKING_URI`` is set: the job's parameters, per-step metrics and
result go to one MLflow run as well (``pip install 'p2[mlflow]'`` on the workers).

P2's own job database stays the truth: MLflow is a copy for those who use it,
so a tracking server that is down or refuses a call is logged once and then
ignored; it never fails a job. A job resumed after a lost worker continues the
same run (its id is in the job's log).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("p2.jobs.finetune")

RUN_ID = "mlflow_run_id"


class Tracker(Protocol):
    run_id: str | None

    def params(self, values: Mapping[str, Any]) -> None: ...

    def metrics(self, values: Mapping[str, float], step: int) -> None: ...

    def artifact(self, path: Path) -> None: ...

    def finish(self, status: str) -> None: ...


class NoTracking:
    run_id: str | None = None

    def params(self, values: Mapping[str, Any]) -> None:
        return None

    def metrics(self, values: Mapping[str, float], step: int) -> None:
        return None

    def artifact(self, path: Path) -> None:
        return None

    def finish(self, status: str) -> None:
        return None


class MlflowTracker:
    """One MLflow run per job, through an ``MlflowClient`` (explicit run ids, no global
    active run)."""

    def __init__(
        self,
        client: Any,
        experiment: str,
        job_id: str,
        run_id: str | None,
        artifact_location: str | None = None,
    ) -> None:
        self.client = client
        self.run_id = run_id
        self.artifact_location = artifact_location
        self._broken = False
        self._call("start the run", self._start, experiment, job_id)

    def _start(self, experiment: str, job_id: str) -> None:
        if self.run_id is not None:
            self.client.update_run(self.run_id, status="RUNNING")
            return
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = (
            found.experiment_id
            if found is not None
            else self.client.create_experiment(experiment, artifact_location=self.artifact_location)
        )
        run = self.client.create_run(experiment_id, run_name=job_id, tags={"p2.job_id": job_id})
        self.run_id = run.info.run_id

    def _call(self, what: str, fn: Any, *args: Any) -> None:
        if self._broken:
            return
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - MLflow is optional: it never fails a job
            self._broken = True
            log.warning("MLflow: could not %s (%s); tracking off for this job", what, exc)

    def params(self, values: Mapping[str, Any]) -> None:
        def log_params() -> None:
            from mlflow.entities import Param

            params = [Param(k, str(v)) for k, v in values.items()]
            self.client.log_batch(self.run_id, params=params)

        self._call("log parameters", log_params)

    def metrics(self, values: Mapping[str, float], step: int) -> None:
        def log_metrics() -> None:
            from mlflow.entities import Metric

            stamp = int(time.time() * 1000)
            metrics = [Metric(k, float(v), stamp, step) for k, v in values.items()]
            self.client.log_batch(self.run_id, metrics=metrics)

        self._call("log metrics", log_metrics)

    def artifact(self, path: Path) -> None:
        def log_artifact() -> None:
            if path.is_dir():
                self.client.log_artifacts(self.run_id, str(path))
            else:
                self.client.log_artifact(self.run_id, str(path))

        self._call("log the result", log_artifact)

    def finish(self, status: str) -> None:
        self._call("end the run", lambda: self.client.set_terminated(self.run_id, status))


def tracker(
    uri: str | None,
    experiment: str,
    job_id: str,
    run_id: str | None,
    artifact_location: str | None = None,
) -> Tracker:
    """MLflow when ``uri`` is set and mlflow is installed, else nothing."""
    if not uri:
        return NoTracking()
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        log.warning("MLFLOW_TRACKING_URI is set, mlflow is not installed: pip install 'p2[mlflow]'")
        return NoTracking()
    client = MlflowClient(tracking_uri=uri)
    return MlflowTracker(client, experiment, job_id, run_id, artifact_location)
