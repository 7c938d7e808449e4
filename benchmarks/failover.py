"""``p2 bench failover``: what clients see while the primary backend dies, hangs and flaps.

Two mock backends (50 ms to first token, 8 tokens 10 ms apart, so streams are
in flight when things break) behind P2's gateway with its default probe
settings; steady load at concurrency 16, half the clients streaming. Phases:

1. steady load (the reference p99);
2. SIGKILL the primary, restart it later: how long until requests are served
   by the primary again after it is healthy (T);
3. a hung primary (SIGSTOP, later SIGCONT);
4. a primary that dies mid-stream (every stream it serves breaks off).

Every answer is checked: a non-streamed reply must be the full text, a stream
must carry the full text under one id, exactly one finish and one
``[DONE]``, and no error event. The last line is the issue's summary line.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from benchmarks.stats import percentile, rounded
from gateway.upstream import Pool, UpstreamError
from p2.core.litellm_config import config, deployment, write_config
from p2.core.process import free_port, spawn, terminate, wait_healthy
from testkit.mock_openai import mock_command

KEY = "sk-bench-failover"
EXPECTED = "".join(f"tok{i} " for i in range(8))


@dataclass
class Record:
    started: float
    latency: float
    stream: bool
    ok: bool
    broken: bool


@dataclass
class Load:
    records: list[Record] = field(default_factory=list)
    stop: bool = False


def check_stream(raw: bytes) -> bool:
    """Well formed and complete: one id, the full text, one finish, one [DONE], no error."""
    events = [e for e in raw.split(b"\n\n") if e.strip()]
    if not events or events[-1] != b"data: [DONE]" or events.count(b"data: [DONE]") != 1:
        return False
    chunks = []
    for event in events[:-1]:
        if not event.startswith(b"data: "):
            return False
        payload = orjson.loads(event[6:])
        if "error" in payload:
            return False
        chunks.append(payload)
    ids = {c.get("id") for c in chunks}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    finishes = [c["choices"][0].get("finish_reason") for c in chunks if c["choices"]]
    return len(ids) == 1 and text == EXPECTED and sum(1 for f in finishes if f) == 1


async def _client(pool: Pool, stream: bool, load: Load) -> None:
    body = orjson.dumps(
        {"model": "chat", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    )
    auth = f"Authorization: Bearer {KEY}\r\n".encode()
    path = pool.prefix + "/chat/completions"
    while not load.stop:
        started = time.monotonic()
        error = broken = False
        try:
            response = await pool.request(
                b"POST", path, body, first_byte_timeout=60, extra_headers=auth
            )
            raw = await response.read(60)
            if response.status != 200:
                error = True
            elif stream:
                broken = not check_stream(raw)
            else:
                reply = orjson.loads(raw)
                error = reply["choices"][0]["message"]["content"] != EXPECTED
        except (UpstreamError, orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            error = True
        load.records.append(Record(started, time.monotonic() - started, stream, not error, broken))
        if error:
            await asyncio.sleep(0.01)


def _mock(port: int, model: str, work: Path) -> subprocess.Popen[bytes]:
    options = ("--latency", "0.05", "--chunks", "8", "--chunk-delay", "0.01", "--model", model)
    proc = spawn(mock_command(port, *options), log_path=work / f"mock-{model}.log")
    wait_healthy(f"http://127.0.0.1:{port}/health", timeout=30, proc=proc)
    return proc


def _config(path: Path, primary: int, secondary: int) -> None:
    write_config(
        path,
        config(
            [
                deployment("chat", f"http://127.0.0.1:{primary}/v1", "primary", 1),
                deployment("chat", f"http://127.0.0.1:{secondary}/v1", "secondary", 2),
            ]
        ),
    )


def _window(records: list[Record], start: float, end: float) -> list[Record]:
    """Requests in flight at some point of [start, end): started before it ended, done after."""
    return [r for r in records if r.started < end and r.started + r.latency >= start]


def run(
    *, phase_seconds: float = 4.0, concurrency: int = 16, probe_interval: float | None = None
) -> dict[str, Any]:
    """Run the four phases and print JSON then the summary line; returns the report."""
    import uvloop

    with tempfile.TemporaryDirectory(prefix="p2-bench-failover-") as tmp:
        work = Path(tmp)
        ports = free_port(), free_port()
        primary = _mock(ports[0], "primary", work)
        secondary = _mock(ports[1], "secondary", work)
        config = work / "failover.yaml"
        _config(config, *ports)
        env = {"P2_API_KEYS": KEY, "P2_LOG_LEVEL": "warning"}
        if probe_interval is not None:
            env["GATEWAY_PROBE_INTERVAL"] = str(probe_interval)
        gw_port = free_port()
        gateway = spawn(
            [sys.executable, "-m", "gateway", "--config", str(config), "--port", str(gw_port)],
            env=env,
            log_path=work / "gateway.log",
        )
        procs = [primary, secondary, gateway]
        try:
            wait_healthy(f"http://127.0.0.1:{gw_port}/health/ready", timeout=60, proc=gateway)
            interval = probe_interval or float(os.environ.get("GATEWAY_PROBE_INTERVAL", "0.5"))
            report = uvloop.run(
                _phases(gw_port, ports[0], primary, work, procs, phase_seconds, concurrency)
            )
            report["probe_interval_s"] = interval
            failovers = [
                line
                for line in httpx.get(f"http://127.0.0.1:{gw_port}/metrics").text.splitlines()
                if line.startswith("p2_gateway_failovers_total")
            ]
            report["p2_gateway_failovers_total"] = failovers
            report["gateway_log_tail"] = (work / "gateway.log").read_text()[-1500:]
        finally:
            for proc in procs:
                terminate(proc, grace=5)
    print(json.dumps(report, indent=1))
    print(
        f"failover: client errors = {report['client_errors']}, "
        f"broken streams = {report['broken_streams']}, "
        f"p99 during outage = {report['outage_p99_ms']:.0f} ms "
        f"(steady {report['steady_p99_ms']:.0f} ms), "
        f"back on primary {report['back_on_primary_s']:.2f} s after recovery"
    )
    return report


async def _first_served(port: int, since: float, limit: float) -> float:
    """Seconds from ``since`` until the (restarted) primary served a completion."""
    url = f"http://127.0.0.1:{port}/_mock/stats"
    async with httpx.AsyncClient() as client:
        while time.monotonic() - since < limit:
            counts = (await client.get(url)).json()
            if counts.get("/v1/chat/completions"):
                return time.monotonic() - since
            await asyncio.sleep(0.02)
    return float("nan")


async def _phases(
    gw_port: int,
    primary_port: int,
    primary: subprocess.Popen[bytes],
    work: Path,
    procs: list[subprocess.Popen[bytes]],
    phase: float,
    concurrency: int,
) -> dict[str, Any]:
    pool = Pool(f"http://127.0.0.1:{gw_port}/v1", max_idle=concurrency * 2)
    load = Load()
    tasks = [asyncio.create_task(_client(pool, i % 2 == 1, load)) for i in range(concurrency)]
    marks: dict[str, float] = {}
    await asyncio.sleep(phase)  # steady
    marks["kill"] = time.monotonic()
    os.killpg(primary.pid, signal.SIGKILL)
    await asyncio.sleep(phase)
    restarted = await asyncio.to_thread(_mock, primary_port, "primary", work)
    procs[0] = restarted
    marks["recovered"] = time.monotonic()
    back_after = await _first_served(primary_port, marks["recovered"], phase)
    await asyncio.sleep(max(0.0, phase - (time.monotonic() - marks["recovered"])))
    marks["hang"] = time.monotonic()
    os.killpg(restarted.pid, signal.SIGSTOP)
    await asyncio.sleep(phase)
    os.killpg(restarted.pid, signal.SIGCONT)
    marks["unhang"] = time.monotonic()
    await asyncio.sleep(phase)
    async with httpx.AsyncClient() as control:
        url = f"http://127.0.0.1:{primary_port}/_mock/config"
        marks["flap"] = time.monotonic()
        await control.post(url, json={"mode": "die_midstream", "die_after": 3})
        await asyncio.sleep(phase)
        await control.post(url, json={"mode": "ok"})
        marks["unflap"] = time.monotonic()
    await asyncio.sleep(phase / 2)
    load.stop = True
    await asyncio.gather(*tasks)
    pool.close()

    records = load.records
    steady = [r for r in records if r.started + r.latency < marks["kill"]]
    outage = list(
        {
            id(r): r
            for r in (
                _window(records, marks["kill"], marks["recovered"])
                + _window(records, marks["hang"], marks["unhang"])
                + _window(records, marks["flap"], marks["unflap"])
            )
        }.values()
    )
    phases = {
        name: _summary(_window(records, marks[a], marks[b]))
        for name, a, b in (
            ("kill", "kill", "recovered"),
            ("hang", "hang", "unhang"),
            ("midstream", "flap", "unflap"),
        )
    }
    return {
        "requests": len(records),
        "client_errors": sum(1 for r in records if not r.ok),
        "broken_streams": sum(1 for r in records if r.broken),
        "steady_p99_ms": rounded(percentile([r.latency for r in steady], 99) * 1000, 1),
        "outage_p99_ms": rounded(percentile([r.latency for r in outage], 99) * 1000, 1),
        "back_on_primary_s": rounded(back_after, 3),
        "phases": {"steady": _summary(steady), **phases},
    }


def _summary(records: list[Record]) -> dict[str, Any]:
    latencies = [r.latency for r in records]
    return {
        "requests": len(records),
        "errors": sum(1 for r in records if not r.ok),
        "broken_streams": sum(1 for r in records if r.broken),
        "p50_ms": rounded(percentile(latencies, 50) * 1000, 1),
        "p99_ms": rounded(percentile(latencies, 99) * 1000, 1),
        "max_ms": rounded(max(latencies, default=float("nan")) * 1000, 1),
    }


if __name__ == "__main__":
    run(phase_seconds=float(os.environ.get("BENCH_PHASE_SECONDS", "4")))
