"""``p2 bench gateway``: P2's gateway against the mock directly and LiteLLM's own proxy.

A fast mock OpenAI backend (``testkit.mock_openai``) runs at 0 ms and 50 ms
latency. For each scenario (latency, stream or not, concurrency 32 and
128) the load generator drives, interleaved: the mock directly, P2's gateway,
and ``litellm --config`` on the same LiteLLM-format config, closed-loop at
saturation (throughput, CPU); then the mock and P2 again, paced at one shared
arrival rate (latency and TTFT overhead). Each run reports req/s, p50/p99
latency, time to first token (streams) and the target's CPU ms per request
(from /proc, the target's whole process group). JSON goes to stdout; the last
line is the issue's summary line.

The load generator is this process (uvloop + the gateway's own pooled HTTP
client, a few tens of µs per request), so it competes for the same 2 cores:
throughput numbers are for the whole machine, CPU/request is the target's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchmarks.stats import percentile, rounded
from gateway.upstream import Pool, UpstreamError
from p2.core.litellm_config import config, deployment, write_config
from p2.core.process import free_port, running
from testkit.mock_openai import mock_command

KEY = "sk-bench-p2"
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class RunResult:
    target: str
    requests: int = 0
    errors: int = 0
    elapsed: float = 0.0
    cpu_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ok = max(self.requests, 1)
        return {
            "target": self.target,
            "requests": self.requests,
            "errors": self.errors,
            "rps": rounded(self.requests / self.elapsed, 1) if self.elapsed else 0.0,
            "p50_ms": rounded(percentile(self.latencies, 50) * 1000, 2),
            "p99_ms": rounded(percentile(self.latencies, 99) * 1000, 2),
            "ttft_p50_ms": rounded(percentile(self.ttfts, 50) * 1000, 2) if self.ttfts else None,
            "cpu_ms_per_req": rounded(self.cpu_s * 1000 / ok, 3),
        }


def _group_stats(pgid: int) -> Iterator[tuple[int, list[str]]]:
    """``(pid, stat fields after the command name)`` of every live process in group ``pgid``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:  # fields[0] is state; [2] is pgrp
            yield int(entry), fields


def group_cpu_seconds(pgid: int) -> float:
    """User+system CPU of every live process in process group ``pgid``."""
    return sum(int(f[11]) + int(f[12]) for _, f in _group_stats(pgid)) / TICKS


def pin_group(pgid: int, cpus: set[int]) -> None:
    """Run every thread of every process in group ``pgid`` on ``cpus`` only."""
    for pid, _ in _group_stats(pgid):
        try:
            threads = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in threads:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, cpus)


async def _one(
    pool: Pool,
    path: str,
    body: bytes,
    auth: bytes,
    stream: bool,
    result: RunResult,
    started: float | None = None,
) -> None:
    """One request; latency and TTFT count from ``started`` (its scheduled time if paced)."""
    if started is None:
        started = time.perf_counter()
    try:
        response = await pool.request(
            b"POST", path, body, first_byte_timeout=60, extra_headers=auth
        )
        if stream:
            first = True
            tail = b""
            async for chunk in response.iter_chunks(60):
                if first:
                    result.ttfts.append(time.perf_counter() - started)
                    first = False
                tail = (tail + chunk)[-64:]
            ok = response.status == 200 and b"[DONE]" in tail
        else:
            await response.read(60)
            ok = response.status == 200
    except UpstreamError:
        ok = False
    if ok:
        result.requests += 1
        result.latencies.append(time.perf_counter() - started)
    else:
        result.errors += 1


async def drive(
    base: str,
    path: str,
    body: dict[str, Any],
    *,
    stream: bool,
    concurrency: int,
    duration: float,
    target: str,
    key: str | None = KEY,
) -> RunResult:
    """``concurrency`` closed-loop clients for ``duration`` seconds against ``base``."""
    pool = Pool(base, max_idle=concurrency * 2)
    payload = orjson.dumps({**body, "stream": stream})
    auth = f"Authorization: Bearer {key}\r\n".encode() if key else b""
    full_path = pool.prefix + path
    result = RunResult(target)
    stop_at = time.perf_counter() + duration

    async def client() -> None:
        while time.perf_counter() < stop_at:
            await _one(pool, full_path, payload, auth, stream, result)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - started
    pool.close()
    return result


async def drive_paced(
    base: str,
    path: str,
    body: dict[str, Any],
    *,
    stream: bool,
    rate: float,
    concurrency: int,
    duration: float,
    target: str,
    key: str | None = KEY,
) -> RunResult:
    """Open loop: ``rate`` arrivals per second, at most ``concurrency`` in flight.

    Latency counts from each request's scheduled arrival, so time spent waiting
    for a free slot is charged to the target (no coordinated omission).
    """
    pool = Pool(base, max_idle=concurrency * 2)
    payload = orjson.dumps({**body, "stream": stream})
    auth = f"Authorization: Bearer {key}\r\n".encode() if key else b""
    full_path = pool.prefix + path
    result = RunResult(target)
    slots = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()

    async def one(scheduled: float) -> None:
        async with slots:
            await _one(pool, full_path, payload, auth, stream, result, started=scheduled)

    start = time.perf_counter()
    total = int(rate * duration)
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    result.elapsed = time.perf_counter() - start
    pool.close()
    return result


@dataclass
class Target:
    name: str
    base: str
    pgid: int
    model_for: dict[float, str]


def _write_config(path: Path, mock_ports: dict[float, int]) -> None:
    deployments = []
    for lat in mock_ports:
        others = [o for o in mock_ports if o != lat]
        for order, backend in enumerate([lat, *others], start=1):
            base = f"http://127.0.0.1:{mock_ports[backend]}/v1"
            deployments.append(deployment(f"m{int(lat * 1000)}", base, "mock", order))
    write_config(
        path,
        config(
            deployments,
            litellm_settings={"drop_params": True},
            general_settings={"master_key": KEY},
        ),
    )


def litellm_executable() -> str:
    """``P2_LITELLM_BIN``, else the repository's ``.venv-litellm``, else ``litellm`` on PATH
    or next to this Python.

    LiteLLM 1.106.2 pins ``openai<3``, so its proxy lives in a venv of its own (what
    ``make bench-deps`` installs); the ``litellm`` in P2's dev venv is the adapters' extra,
    without the proxy's dependencies, so it comes last.
    """
    exe = os.environ.get("P2_LITELLM_BIN")
    repo_venv = Path(__file__).resolve().parents[1] / ".venv-litellm" / "bin" / "litellm"
    if exe is None and repo_venv.exists():
        exe = str(repo_venv)
    exe = exe or shutil.which("litellm")
    if exe is None:
        exe = str(Path(sys.executable).with_name("litellm"))
    if not Path(exe).exists():
        raise FileNotFoundError(
            "litellm not found: run `make bench-deps` (LiteLLM 1.106.2 in .venv-litellm), "
            "or set P2_LITELLM_BIN, or run with --no-litellm"
        )
    return exe


def _gateway(
    stack: ExitStack, work: Path, config: Path, workers: int, names: dict[float, str], label: str
) -> Target:
    """P2's gateway on ``config`` with ``GATEWAY_WORKERS=workers``, healthy, as a target."""
    port = free_port()
    proc = stack.enter_context(
        running(
            [sys.executable, "-m", "gateway", "--config", str(config), "--port", str(port)],
            health_url=f"http://127.0.0.1:{port}/health/ready",
            timeout=60,
            env={
                "P2_API_KEYS": KEY,
                "P2_LOG_LEVEL": "warning",
                "GATEWAY_WORKERS": str(workers),
            },
            log_path=work / f"{label}.log",
        )
    )
    return Target(label, f"http://127.0.0.1:{port}/v1", proc.pid, names)


@contextmanager
def _processes(work: Path, with_litellm: bool, workers: int = 1) -> Iterator[dict[str, Target]]:
    """The mocks, P2 with ``workers`` workers as ``p2`` (and with one as ``p2-1w`` when
    ``workers`` > 1, the ceiling's reference) and LiteLLM's proxy, all healthy."""
    with ExitStack() as stack:
        mock_ports: dict[float, int] = {}
        targets: dict[str, Target] = {}
        for latency in (0.0, 0.05):
            port = free_port()
            mock = stack.enter_context(
                running(
                    mock_command(port, "--latency", str(latency)),
                    health_url=f"http://127.0.0.1:{port}/health",
                    timeout=30,
                    log_path=work / f"mock{port}.log",
                )
            )
            mock_ports[latency] = port
            targets[f"direct-m{int(latency * 1000)}"] = Target(
                "direct", f"http://127.0.0.1:{port}/v1", mock.pid, {latency: "mock"}
            )
        config = work / "bench.yaml"
        _write_config(config, mock_ports)
        names = {lat: f"m{int(lat * 1000)}" for lat in mock_ports}
        targets["p2"] = _gateway(stack, work, config, workers, names, "p2")
        if workers > 1:
            targets["p2-1w"] = _gateway(stack, work, config, 1, names, "p2-1w")
        if with_litellm:
            lp = free_port()
            proxy = stack.enter_context(
                running(
                    [
                        litellm_executable(),
                        "--config",
                        str(config),
                        "--port",
                        str(lp),
                        "--num_workers",
                        "1",
                    ],
                    health_url=f"http://127.0.0.1:{lp}/health/liveliness",
                    timeout=180,
                    env={
                        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                        "LITELLM_LOG": "ERROR",
                        "DISABLE_ADMIN_UI": "True",
                    },
                    log_path=work / "litellm.log",
                )
            )
            targets["litellm-proxy"] = Target(
                "litellm-proxy", f"http://127.0.0.1:{lp}/v1", proxy.pid, names
            )
        yield targets


CHAT_BODY: dict[str, Any] = {
    "messages": [{"role": "user", "content": "Say hello."}],
    "max_tokens": 8,
}


PACED_LOAD = 0.5  # paced phase: this share of the slower target's saturated throughput


async def _measure(
    targets: dict[str, Target],
    key: str,
    latency: float,
    stream: bool,
    concurrency: int,
    duration: float,
    rate: float | None = None,
) -> RunResult:
    """Warm ``key`` up, then one closed-loop run (or a paced run at ``rate``) with its CPU."""
    target = targets[key]
    model = target.model_for.get(latency, f"m{int(latency * 1000)}")
    body = {**CHAT_BODY, "model": model}
    common: dict[str, Any] = {"stream": stream, "concurrency": concurrency, "target": key}
    await drive(target.base, "/chat/completions", body, duration=0.3, **common)  # warm-up
    cpu0 = group_cpu_seconds(target.pgid)
    if rate is None:
        run = await drive(target.base, "/chat/completions", body, duration=duration, **common)
    else:
        run = await drive_paced(
            target.base, "/chat/completions", body, rate=rate, duration=duration, **common
        )
    run.cpu_s = group_cpu_seconds(target.pgid) - cpu0
    return run


def _merge(into: dict[str, RunResult], label: str, run: RunResult) -> None:
    acc = into.setdefault(label, RunResult(label))
    acc.requests += run.requests
    acc.errors += run.errors
    acc.elapsed += run.elapsed
    acc.cpu_s += run.cpu_s
    acc.latencies += run.latencies
    acc.ttfts += run.ttfts


async def _scenario(
    targets: dict[str, Target],
    latency: float,
    stream: bool,
    concurrency: int,
    duration: float,
    rounds: int,
) -> dict[str, Any]:
    """Saturated closed-loop runs of every target, then direct and P2 paced at one rate.

    Closed-loop latency at saturation is concurrency / throughput, so there it
    measures throughput again (and, on 2 shared cores, the load generator's and
    the mock's CPU too). P2's latency overhead is therefore taken from the
    paced phase: the same arrival rate for direct and P2, at ``PACED_LOAD`` of
    the slower one's saturated throughput.
    """
    name = f"m{int(latency * 1000)}"
    direct = f"direct-{name}"
    order = [direct, "p2", *(["litellm-proxy"] if "litellm-proxy" in targets else [])]
    saturated: dict[str, RunResult] = {}
    for _ in range(rounds):
        for key in order:
            run = await _measure(targets, key, latency, stream, concurrency, duration)
            _merge(saturated, "direct" if key == direct else key, run)
    summaries = {k: r.summary() for k, r in saturated.items()}
    rate = PACED_LOAD * min(summaries["direct"]["rps"], summaries["p2"]["rps"])
    paced: dict[str, RunResult] = {}
    for _ in range(rounds):
        for key in (direct, "p2"):
            run = await _measure(targets, key, latency, stream, concurrency, duration, rate)
            _merge(paced, "direct" if key == direct else key, run)
    return {
        "results": summaries,
        "paced": {"rate": rounded(rate, 1), **{k: r.summary() for k, r in paced.items()}},
    }


CEILING_CONCURRENCY = 128


async def _ceiling(
    targets: dict[str, Target], workers: int, duration: float, rounds: int
) -> dict[str, Any]:
    """Saturated req/s at 0 ms, non-streamed, with the load generator alone on one CPU.

    The mock and the gateways run on the other CPUs, so the load generator's own
    work does not lower the gateway's ceiling; with ``workers`` > 1 the one-worker
    gateway is measured in the same run, interleaved, as the reference.
    """
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2:
        return {"skipped": "the ceiling needs 2 CPUs: one for the load generator"}
    load_cpu = min(cpus)
    rest = cpus - {load_cpu}
    keys = ["direct-m0", *(["p2-1w"] if "p2-1w" in targets else []), "p2"]
    for key in keys:
        pin_group(targets[key].pgid, rest)
    os.sched_setaffinity(0, {load_cpu})  # this thread runs the event loop: the load generator
    runs: dict[str, RunResult] = {}
    try:
        for _ in range(rounds):
            for key in keys:
                run = await _measure(targets, key, 0.0, False, CEILING_CONCURRENCY, duration)
                _merge(runs, key, run)
    finally:
        os.sched_setaffinity(0, cpus)
        for key in keys:
            pin_group(targets[key].pgid, cpus)
    results = {key: run.summary() for key, run in runs.items()}
    one = results.get("p2-1w", results["p2"])
    return {
        "workers": workers,
        "concurrency": CEILING_CONCURRENCY,
        "load_generator_cpu": load_cpu,
        "target_cpus": sorted(rest),
        "results": results,
        "workers_over_one": rounded(results["p2"]["rps"] / one["rps"], 2) if one["rps"] else None,
    }


def ceiling_line(ceiling: dict[str, Any]) -> str:
    """The ceiling's line: N workers against one, and what the mock alone allows."""
    if "skipped" in ceiling:
        return f"gateway: ceiling not measured ({ceiling['skipped']})"
    res, workers = ceiling["results"], ceiling["workers"]
    one = res.get("p2-1w", res["p2"])["rps"]
    where = (
        f"load generator alone on cpu {ceiling['load_generator_cpu']}, gateway and mock on "
        f"cpus {','.join(str(c) for c in ceiling['target_cpus'])}"
    )
    direct = f"direct mock {res['direct-m0']['rps']:,.0f} req/s"
    if workers == 1:
        return f"gateway: ceiling 1 worker = {one:,.0f} req/s ({direct}; {where})"
    return (
        f"gateway: ceiling {workers} workers / 1 = {ceiling['workers_over_one']:.2f} "
        f"({workers} workers {res['p2']['rps']:,.0f} req/s, 1 worker {one:,.0f} req/s, "
        f"{direct}; {where})"
    )


def _geomean(values: Sequence[float]) -> float:
    values = [v for v in values if v > 0]
    return math.exp(statistics.fmean(math.log(v) for v in values)) if values else math.nan


def run(
    *,
    duration: float = 3.0,
    rounds: int = 1,
    concurrency: Sequence[int] = (32, 128),
    litellm: bool = True,
    workers: int = 1,
) -> dict[str, Any]:
    """Run every scenario and the ceiling; print JSON, then the summary lines; returns the
    report. ``workers`` is the ``GATEWAY_WORKERS`` of the gateway under test."""
    import uvloop

    if litellm:
        litellm_executable()  # fail before starting anything when LiteLLM is missing
    report: dict[str, Any] = {"scenarios": []}
    with (
        tempfile.TemporaryDirectory(prefix="p2-bench-gw-") as tmp,
        _processes(Path(tmp), litellm, workers) as targets,
    ):

        async def all_scenarios() -> None:
            for latency in (0.0, 0.05):
                for stream in (False, True):
                    for conc in concurrency:
                        measured = await _scenario(targets, latency, stream, conc, duration, rounds)
                        report["scenarios"].append(
                            {
                                "latency_ms": int(latency * 1000),
                                "stream": stream,
                                "concurrency": conc,
                                **measured,
                            }
                        )
                        print(json.dumps(report["scenarios"][-1]), file=sys.stderr, flush=True)
            report["ceiling"] = await _ceiling(targets, workers, duration, rounds)

        uvloop.run(all_scenarios())
    report["summary"] = summarize(report["scenarios"])
    print(json.dumps(report, indent=1))
    s = report["summary"]
    ttft = s["stream_ttft_overhead_p50_ms_max"]
    if ttft is not None:
        print(f"gateway: streaming ttft overhead p50 (paced, worst scenario) = {ttft:.1f} ms")
    print(ceiling_line(report["ceiling"]))
    print(
        f"gateway: throughput p2/litellm-proxy = {s['throughput_ratio']:.1f}, "
        f"p2 overhead p50 = {s['p2_overhead_p50_ms']:.1f} ms, "
        f"cpu/req = {s['p2_cpu_ms_per_req']:.2f} ms"
    )
    return report


def summarize(scenarios: list[dict[str, Any]]) -> dict[str, Any]:
    """Throughput ratios from the saturated runs, latency overheads from the paced runs."""
    ratios, overheads, ttft_overheads, cpu = [], [], [], []
    by_scenario: dict[str, dict[str, float | None]] = {}
    for scenario in scenarios:
        res, paced = scenario["results"], scenario["paced"]
        p2, direct = res["p2"], res["direct"]
        if "litellm-proxy" in res and res["litellm-proxy"]["rps"]:
            ratios.append(p2["rps"] / res["litellm-proxy"]["rps"])
        overhead = rounded(paced["p2"]["p50_ms"] - paced["direct"]["p50_ms"], 2)
        overheads.append(overhead)
        cpu.append(p2["cpu_ms_per_req"])
        ttft = None
        if scenario["stream"] and paced["p2"]["ttft_p50_ms"] is not None:
            ttft = rounded(paced["p2"]["ttft_p50_ms"] - paced["direct"]["ttft_p50_ms"], 2)
            ttft_overheads.append(ttft)
        name = (
            f"{scenario['latency_ms']}ms-{'stream' if scenario['stream'] else 'json'}"
            f"-c{scenario['concurrency']}"
        )
        by_scenario[name] = {
            "paced_rps": paced["rate"],
            "p50_overhead_ms": overhead,
            "ttft_overhead_ms": ttft,
            "saturated_p50_overhead_ms": rounded(p2["p50_ms"] - direct["p50_ms"], 2),
        }
    return {
        "throughput_ratio": rounded(_geomean(ratios), 2) if ratios else math.nan,
        "throughput_ratios": [rounded(r, 2) for r in ratios],
        "p2_overhead_p50_ms": rounded(statistics.median(overheads), 2),
        "p2_cpu_ms_per_req": rounded(statistics.fmean(cpu), 3),
        "p2_cpu_ms_per_req_max": rounded(max(cpu), 3),
        "stream_ttft_overhead_p50_ms_max": rounded(max(ttft_overheads), 2)
        if ttft_overheads
        else None,
        "overheads_by_scenario": by_scenario,
    }


if __name__ == "__main__":
    run(
        litellm="--no-litellm" not in sys.argv,
        duration=float(os.environ.get("BENCH_DURATION", "3")),
        workers=int(os.environ.get("GATEWAY_WORKERS", "1")),
    )
