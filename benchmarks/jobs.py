"""``p2 bench jobs``: what the job platform costs, how it scales, and what a kill loses.

Everything runs for real on this machine: a private ``redis-server`` (as ``p2 up``
runs it), the job API (``python -m jobs``) on SQLite, and workers
(``python -m jobs.worker``) with the test models (``JOBS_TEST_MODELS=1``).

1. Overhead at idle: a tiny ``echo`` job, submitted and waited for one at a time
   (``POST /v1/jobs``, ``GET /v1/jobs/{id}?wait=``, ``GET .../result``), against
   calling the same model in this process; overhead = job p50 - direct p50.
2. Scale-out: the same batch of CPU-bound ``spin`` jobs (each about
   ``--job-seconds`` of pure Python) through 1 worker, then through 2.
3. A worker killed mid-run: 2 workers share a batch; one whole worker (its
   process group: main process and pool child) is SIGKILLed while it runs a job.
   Its jobs must come back (the API's sweeper re-queues a job whose heartbeat
   stops, and re-sends one a dead worker had reserved) and succeed exactly once.

Last line: ``jobs: overhead p50 = X ms, 2 workers / 1 = Y.YY, killed-worker jobs lost = Z``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from benchmarks.stats import percentile
from jobs.redis_server import redis_argv
from jobs.registry import discover
from jobs.settings import RedisSettings
from p2.core.process import free_port, spawn, terminate, wait_healthy

FINAL = ("succeeded", "failed", "cancelled")


@dataclass
class Bench:
    """A private Redis, a job API and workers under one temporary P2_HOME."""

    home: Path
    env: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    api_url: str = ""

    def start_redis(self) -> None:
        port = free_port()
        argv = redis_argv(RedisSettings.build(port=port), self.home / "redis")
        self.procs.append(spawn(argv, log_path=self.home / "logs" / "redis.log"))
        self.env["REDIS_URL"] = url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError), redis.Redis.from_url(url) as client:
                if client.ping():
                    return
            time.sleep(0.05)
        raise RuntimeError("redis did not start")

    def _start(self, argv: list[str], port: int, name: str) -> subprocess.Popen[bytes]:
        proc = spawn(argv, env=self.env, log_path=self.home / "logs" / f"{name}.log")
        self.procs.append(proc)
        wait_healthy(f"http://127.0.0.1:{port}/health", timeout=120, proc=proc)
        return proc

    def start_api(self) -> None:
        port = free_port()
        self._start([sys.executable, "-m", "jobs", "--port", str(port)], port, "api")
        self.api_url = f"http://127.0.0.1:{port}"

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        port = free_port()
        argv = [sys.executable, "-m", "jobs.worker", "--port", str(port), "--name", name]
        return self._start(argv, port, f"worker-{name}")

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        terminate(proc, grace=15)
        self.procs.remove(proc)

    def close(self) -> None:
        for proc in reversed(self.procs):
            terminate(proc, grace=15)


@contextlib.contextmanager
def bench_stack() -> Iterator[Bench]:
    with tempfile.TemporaryDirectory(prefix="p2-bench-jobs-") as folder:
        home = Path(folder)
        bench = Bench(
            home,
            {
                "P2_HOME": str(home),
                "JOBS_TEST_MODELS": "1",
                "JOBS_SWEEP_INTERVAL": "0.5",
                "JOBS_LOST_AFTER": "3",
                "JOBS_REDISPATCH_AFTER": "3",
                "WORKER_HEARTBEAT_INTERVAL": "0.5",
                "P2_LOG_LEVEL": "warning",
            },
        )
        try:
            bench.start_redis()
            bench.start_api()
            yield bench
        finally:
            bench.close()


def direct_ms(repeat: int) -> list[float]:
    """The ``echo`` model called in this process, as a job runs it."""
    model = discover(test_models=True).find("test", "echo")()
    model.load("cpu")
    times = []
    for i in range(repeat):
        started = time.perf_counter()
        prepared = model.preprocess({"i": i}, {}, {})
        model.postprocess(model.predict(prepared, lambda _: None))
        times.append((time.perf_counter() - started) * 1000)
    return times


def job_ms(client: httpx.Client, repeat: int) -> list[float]:
    times = []
    for i in range(repeat + 5):
        started = time.perf_counter()
        job = client.post("/v1/jobs", json={"task": "test", "model": "echo", "input": {"i": i}})
        job_id = job.json()["id"]
        done = client.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
        assert done["status"] == "succeeded", done
        client.get(f"/v1/jobs/{job_id}/result").raise_for_status()
        if i >= 5:  # the first jobs load the model and warm the connections
            times.append((time.perf_counter() - started) * 1000)
    return times


def spin_iterations(seconds: float) -> int:
    """Iterations of the ``spin`` model that take about ``seconds`` here."""
    model = discover(test_models=True).find("test", "spin")()
    model.load("cpu")
    probe = 200_000
    started = time.perf_counter()
    model.predict(probe, lambda _: None)
    return max(1, int(probe * seconds / (time.perf_counter() - started)))


def submit(client: httpx.Client, count: int, iterations: int) -> list[str]:
    body = {"task": "test", "model": "spin", "input": {"iterations": iterations}}
    return [client.post("/v1/jobs", json=body).json()["id"] for _ in range(count)]


def wait_all(client: httpx.Client, ids: list[str], limit: float = 600) -> list[dict[str, Any]]:
    deadline = time.monotonic() + limit
    done = []
    for job_id in ids:
        left = max(0.1, deadline - time.monotonic())
        while True:
            job = client.get(f"/v1/jobs/{job_id}", params={"wait": min(30.0, left)}).json()
            if job["status"] in FINAL or time.monotonic() > deadline:
                break
        done.append(job)
    return done


def batch_seconds(client: httpx.Client, count: int, iterations: int) -> float:
    started = time.perf_counter()
    jobs = wait_all(client, submit(client, count, iterations))
    elapsed = time.perf_counter() - started
    failed = [j["id"] for j in jobs if j["status"] != "succeeded"]
    if failed:
        raise RuntimeError(f"jobs did not succeed: {failed}")
    return elapsed


def children(pid: int) -> set[int]:
    try:
        return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except OSError:
        return set()


def runner_pid(client: httpx.Client, job_id: str) -> int:
    """The pid of the process running the job (from its last "started by host:pid:..")."""
    events = client.get(f"/v1/jobs/{job_id}/events").json()["data"]
    return int(str(events[-1]["message"]).split(":")[1])


def run(*, repeat: int = 60, jobs: int = 12, job_seconds: float = 0.4) -> None:
    print(f"p2 bench jobs: {os.cpu_count()} CPUs, {jobs} spin jobs of ~{job_seconds:.2f} s")
    with bench_stack() as bench:
        client = httpx.Client(base_url=bench.api_url, timeout=60)
        first = bench.start_worker("w1@bench")

        direct = direct_ms(repeat)
        via_jobs = job_ms(client, repeat)
        overhead = statistics.median(via_jobs) - statistics.median(direct)
        print(
            f"tiny job, submit -> result: p50 {statistics.median(via_jobs):.1f} ms, "
            f"p95 {percentile(via_jobs, 95):.1f} ms; the model in-process: "
            f"p50 {statistics.median(direct) * 1000:.1f} us"
        )

        iterations = spin_iterations(job_seconds)
        batch_seconds(client, 2, iterations)  # warm: both models loaded in the child
        one = batch_seconds(client, jobs, iterations)
        bench.start_worker("w2@bench")
        batch_seconds(client, 2, iterations)
        two = batch_seconds(client, jobs, iterations)
        ratio = one / two
        print(
            f"throughput: 1 worker {jobs / one:.2f} jobs/s, 2 workers {jobs / two:.2f} jobs/s "
            f"(x{ratio:.2f})"
        )

        ids = submit(client, jobs, iterations)
        victim = None
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline:
            for job_id in ids:
                job = client.get(f"/v1/jobs/{job_id}").json()
                if job["status"] == "running" and runner_pid(client, job_id) in children(first.pid):
                    victim = job_id  # running in the first worker's pool child
                    break
            time.sleep(0.05)
        killed_at = time.perf_counter()
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        bench.procs.remove(first)
        final = wait_all(client, ids)
        recovered = time.perf_counter() - killed_at
        lost = sum(1 for j in final if j["status"] != "succeeded")
        reruns = sum(j["attempts"] - 1 for j in final)
        print(
            f"worker killed mid-job ({victim}): {len(final) - lost}/{len(final)} succeeded, "
            f"{reruns} re-run, batch done {recovered:.1f} s after the kill"
        )
        client.close()
    print(
        f"jobs: overhead p50 = {overhead:.0f} ms, 2 workers / 1 = {ratio:.2f}, "
        f"killed-worker jobs lost = {lost}"
    )
