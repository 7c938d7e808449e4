"""``p2 bench segmentation``: mask quality and speed of the segmentation models, through the
job API.

Data and protocol: ``benchmarks.nuclei`` (124 real nuclei with ground-truth
masks; box = ground-truth box + 0-5 px). The reference, measured in the same
run, is the box itself as the mask (box-only Dice). Each available model runs:
``boxseg`` always, ``sam`` / ``sam2`` when ``SEGMENTATION_SAM_CHECKPOINT`` /
``SEGMENTATION_SAM2_CHECKPOINT`` names a checkpoint. The path is the
product's: a real Redis, the job API (``python -m jobs``) and one worker
(``python -m jobs.worker``) as child processes; the image is uploaded once
through ``/v1/files``; each round is one job with all 124 boxes, timed from
submit to its result read back, and Dice is computed from the RLE masks of
that result. ``masks/s`` is boxes over that time after a warm-up job (which
loads the model); the same model called in this process is measured too, so
the job system's share is visible. Where the job platform cannot run (no
``redis-server``), it falls back to in-process calls and says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis

from benchmarks import nuclei
from benchmarks.stats import rounded
from jobs.redis_server import redis_argv
from jobs.registry import discover
from jobs.segmentation import rle
from jobs.segmentation.models import BoxPromptModel
from jobs.segmentation.settings import SegmentationSettings
from jobs.settings import RedisSettings, WorkerSettings
from jobs.worker.runner import device_for
from p2.core.process import ProcessError, free_port, running, started
from p2.core.settings import CoreSettings

DEFAULT = "boxseg"
POLL = 60.0  # long-poll seconds per GET /v1/jobs/{id}?wait=


@dataclass
class Measured:
    dice: list[float]
    seconds: list[float]  # per round, all boxes


def available_models() -> list[str]:
    """``boxseg``, and each SAM-family model whose checkpoint is configured."""
    settings = SegmentationSettings()
    configured = {"sam": settings.sam_checkpoint, "sam2": settings.sam2_checkpoint}
    return [DEFAULT, *(name for name, path in configured.items() if path is not None)]


def platform_missing() -> str | None:
    """Why the job platform cannot run here, or None when it can."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    return None


class JobClient:
    """The job API as a client sees it: upload, submit, wait, read the result."""

    def __init__(self, url: str, key: str) -> None:
        self.http = httpx.Client(
            base_url=url, timeout=POLL + 30, headers={"Authorization": f"Bearer {key}"}
        )

    def upload(self, data: bytes, filename: str) -> str:
        response = self.http.post(
            "/v1/files",
            files={"file": (filename, data, "image/tiff")},
            data={"purpose": "user_data"},
        )
        response.raise_for_status()
        return str(response.json()["id"])

    def run(self, model: str, input: dict[str, Any]) -> dict[str, Any]:
        body = {"task": "segmentation", "model": model, "input": input}
        response = self.http.post("/v1/jobs", json=body)
        response.raise_for_status()
        job = response.json()
        while job["status"] in ("queued", "running"):
            job = self.http.get(f"/v1/jobs/{job['id']}", params={"wait": POLL}).json()
        if job["status"] != "succeeded":
            raise RuntimeError(f"job {job['id']} {job['status']}: {job.get('error')}")
        result = self.http.get(f"/v1/jobs/{job['id']}/result")
        result.raise_for_status()
        data: dict[str, Any] = result.json()["data"]
        return data


@contextlib.contextmanager
def job_platform(home: Path) -> Iterator[JobClient]:
    """Redis, the job API and one worker as child processes, with a fresh user key; their
    logs go to ``$P2_HOME/logs/bench-segmentation-*.log`` (``home`` is a scratch P2 home)."""
    logs = CoreSettings().logs_dir
    redis_port, api_port, worker_port = free_port(), free_port(), free_port()
    key = f"sk-bench-{secrets.token_hex(8)}"
    env = {
        "P2_HOME": str(home),
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "JOBS_QUEUE": f"p2-bench-segmentation-{secrets.token_hex(4)}",
        "P2_API_KEYS": key,
    }
    argv = redis_argv(RedisSettings.build(port=redis_port), home / "redis")
    with started(argv, log_path=logs / "bench-segmentation-redis.log"):
        _wait_for_redis(redis.Redis(port=redis_port))
        api = [sys.executable, "-m", "jobs", "--port", str(api_port)]
        worker = [sys.executable, "-m", "jobs.worker", "--port", str(worker_port)]
        url = f"http://127.0.0.1:{api_port}"
        with (
            running(
                api,
                health_url=f"{url}/health",
                timeout=60,
                env=env,
                log_path=logs / "bench-segmentation-jobs.log",
            ),
            running(
                worker,
                health_url=f"http://127.0.0.1:{worker_port}/health",
                timeout=120,
                env=env,
                log_path=logs / "bench-segmentation-worker.log",
            ),
        ):
            client = JobClient(url, key)
            try:
                yield client
            finally:
                client.http.close()


def _wait_for_redis(client: redis.Redis, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise ProcessError("redis-server did not answer PING") from None
            time.sleep(0.05)


def through_api(client: JobClient, model: str, data: nuclei.NucleiSet, rounds: int) -> Measured:
    file_id = client.upload(nuclei.IMAGE.read_bytes(), nuclei.IMAGE.name)
    boxes = [list(box) for box in data.boxes]
    client.run(model, {"image_file_id": file_id, "boxes": boxes[:1]})  # loads the model
    seconds: list[float] = []
    result: dict[str, Any] = {}
    for _ in range(rounds):
        started_at = time.perf_counter()
        result = client.run(model, {"image_file_id": file_id, "boxes": boxes})
        seconds.append(time.perf_counter() - started_at)
    masks = [rle.decode(entry["rle"]) for entry in result["masks"]]
    return Measured(_dice(masks, data), seconds)


def in_process(model: str, data: nuclei.NucleiSet, rounds: int) -> Measured:
    """The model's own ``segment`` on the decoded image: no job system around it."""
    cls = discover().find("segmentation", model)
    assert issubclass(cls, BoxPromptModel)
    instance = cls()
    instance.load(device_for(WorkerSettings().device, os.environ))
    instance.segment(data.image, data.boxes[:1], _ignore)
    seconds: list[float] = []
    masks: list[rle.Mask] = []
    for _ in range(rounds):
        started_at = time.perf_counter()
        cropped, _ = instance.segment(data.image, data.boxes, _ignore)
        seconds.append(time.perf_counter() - started_at)
        masks = [c.full() for c in cropped]
    return Measured(_dice(masks, data), seconds)


def _ignore(fraction: float) -> None:
    return None


def _dice(masks: Sequence[rle.Mask], data: nuclei.NucleiSet) -> list[float]:
    return [nuclei.dice(mask, data.truth(i)) for i, mask in enumerate(masks)]


def _summary(measured: Measured, boxes: int) -> dict[str, Any]:
    return {
        "dice_mean": rounded(float(np.mean(measured.dice))),
        "dice_median": rounded(float(np.median(measured.dice))),
        "masks_per_second": rounded(boxes * len(measured.seconds) / sum(measured.seconds), 1),
        "seconds_per_round": [rounded(s, 3) for s in measured.seconds],
    }


def run(*, rounds: int = 5, seed: int = 0) -> dict[str, Any]:
    """Measure, print a JSON report and the summary line; return the report."""
    data = nuclei.load(seed)
    count = len(data.boxes)
    box_only = [
        nuclei.dice(nuclei.box_mask(data.image.shape, box), data.truth(i))
        for i, box in enumerate(data.boxes)
    ]
    models = available_models()
    missing = platform_missing()
    report: dict[str, Any] = {
        "nuclei": count,
        "seed": seed,
        "rounds": rounds,
        "cpu_count": os.cpu_count(),
        "via": "job API (redis, python -m jobs, one python -m jobs.worker)"
        if missing is None
        else f"in-process ({missing})",
        "box_only": {
            "dice_mean": rounded(float(np.mean(box_only))),
            "dice_median": rounded(float(np.median(box_only))),
        },
        "models": {},
    }
    measured: dict[str, Measured] = {}
    if missing is None:
        with (
            tempfile.TemporaryDirectory(prefix="p2-bench-seg-") as home,
            job_platform(Path(home)) as client,
        ):
            for model in models:
                measured[model] = through_api(client, model, data, rounds)
    for model in models:
        direct = in_process(model, data, rounds)
        main = measured.setdefault(model, direct)
        entry = _summary(main, count)
        entry["in_process_masks_per_second"] = _summary(direct, count)["masks_per_second"]
        entry["dice_differs_from_in_process"] = not np.allclose(main.dice, direct.dice)
        report["models"][model] = entry
    print(json.dumps(report, indent=2))
    reference = report["box_only"]["dice_mean"]
    for model in sorted(report["models"], key=lambda m: m == DEFAULT):
        entry = report["models"][model]
        name = "segmentation" if model == DEFAULT else f"segmentation[{model}]"
        print(
            f"{name}: dice = {entry['dice_mean']:.3f} (box-only {reference:.3f}), "
            f"masks/s = {entry['masks_per_second']:.1f}"
        )
    return report


if __name__ == "__main__":
    run()
