"""Models for tests and benchmarks only, registered when ``JOBS_TEST_MODELS=1``.

``echo`` returns its input (optionally after sleeping, failing, writing an
artifact, padding its result past the inline limit, or going silent to play a
wedged worker); ``spin`` burns CPU for a number of iterations, the unit of the
throughput benchmark.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from jobs.registry import Artifact, InvalidInput, JobModel, ModelError, Progress, Result, register

TASK = "test"
STEP = 0.05


@register("echo")
class Echo(JobModel):
    task = TASK

    @classmethod
    def validate(cls, input: Mapping[str, Any], config: Mapping[str, Any]) -> None:
        sleep = config.get("sleep", 0)
        if not isinstance(sleep, int | float) or sleep < 0:
            raise InvalidInput(
                "config.sleep must be a number of seconds >= 0", param="config.sleep"
            )

    def load(self, device: str) -> None:
        self.device = device

    def preprocess(
        self, input: Mapping[str, Any], files: Mapping[str, Path], config: Mapping[str, Any]
    ) -> dict[str, Any]:
        if config.get("reject"):
            raise InvalidInput(str(config["reject"]), param="input")
        digests = {
            fid: hashlib.sha256(path.read_bytes()).hexdigest() for fid, path in files.items()
        }
        return {"input": dict(input), "files": digests, "config": dict(config)}

    def predict(self, prepared: dict[str, Any], progress: Progress) -> dict[str, Any]:
        config = prepared["config"]
        total = float(config.get("sleep", 0))
        pause = STEP if not config.get("silent") else total
        started = time.monotonic()
        while (done := time.monotonic() - started) < total:
            progress(min(1.0, done / total))
            time.sleep(min(pause, total - done))
        if config.get("fail"):
            raise ModelError(str(config["fail"]), code="echo_failed")
        return prepared

    def postprocess(self, output: dict[str, Any]) -> Result:
        config = output["config"]
        data = {
            "echo": output["input"],
            "files": output["files"],
            "device": self.device,
            "pid": os.getpid(),
        }
        if config.get("pad"):
            data["pad"] = "x" * int(config["pad"])
        artifacts: tuple[Artifact, ...] = ()
        if config.get("artifact"):
            artifacts = (Artifact("echo.json", orjson.dumps(output["input"]), "application/json"),)
        return Result(data, artifacts)


@register("spin")
class Spin(JobModel):
    task = TASK

    @classmethod
    def validate(cls, input: Mapping[str, Any], config: Mapping[str, Any]) -> None:
        iterations = input.get("iterations", 0)
        if not isinstance(iterations, int) or not 0 <= iterations <= 10**9:
            raise InvalidInput("input.iterations must be an integer", param="input.iterations")

    def load(self, device: str) -> None:
        self.device = device

    def preprocess(
        self, input: Mapping[str, Any], files: Mapping[str, Path], config: Mapping[str, Any]
    ) -> int:
        return int(input.get("iterations", 0))

    def predict(self, prepared: int, progress: Progress) -> int:
        value, chunk = 0, 100_000
        for start in range(0, prepared, chunk):
            for i in range(start, min(prepared, start + chunk)):
                value = (value + i * i) % 1_000_003
            progress(min(prepared, start + chunk) / prepared)
        return value

    def postprocess(self, output: int) -> Result:
        return Result({"value": output, "pid": os.getpid()})
