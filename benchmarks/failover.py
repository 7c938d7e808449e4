"""``p2 bench failover``: what clients see while the primary backend dies, hangs and flaps.

Two mock backends (50 ms to first token, 8 tokens 10 ms apart, so streams are
in flight when things break) behind P2's gateway; steady load at concurrency
16, half the clients streaming. Phases:

1. steady load (the reference p99);
2. SIGKILL the primary, restart it later: how long until requests are served
   by the primary again after it is up (T);
3. a hung primary (SIGSTOP, later SIGCONT);
4. a primary that dies mid-stream (every stream it serves breaks off).

The scenario runs once per *variant* (``VARIANTS``), one after the other, each
with its own two mocks and its own gateway process:

* ``http``: plain HTTP, both backends health-probed with the default probe
  settings (the run of earlier releases);
* ``https``: both mocks over TLS with a throwaway CA the deployments verify
  against (``ssl_verify: <ca.pem>``);
* ``passive``: the primary is a cloud-like mock (a key, no ``/health``) with
  ``p2_probe: passive``, a 1 s deployment ``timeout``/``stream_timeout`` (the
  only way to tell that a passive backend hangs) and ``cooldown_time: 2`` (when
  a failed passive backend is tried again).

Every answer is checked: a non-streamed reply must be the full text, a stream
must carry the full text under one id, exactly one finish and one
``[DONE]``, and no error event. One line per variant, then the issue's
summary line: client errors and broken streams summed over all variants; p99,
steady p99 and back-on-primary of the first variant run (``http`` by default),
so the line stays comparable with earlier runs. The JSON report keeps the
first variant's keys at the top and has every variant under ``variants``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from benchmarks.stats import percentile, rounded
from gateway.upstream import Pool, UpstreamError
from p2.core.litellm_config import DEFAULT_ROUTER, config, deployment, write_config
from p2.core.process import free_port, spawn, terminate, wait_healthy
from testkit.mock_openai import mock_command
from testkit.mock_providers import TlsFiles, tls_files

KEY = "sk-bench-failover"
CLOUD_KEY = "sk-bench-cloud"  # the passive primary's own API key, like a cloud provider's
EXPECTED = "".join(f"tok{i} " for i in range(8))
MOCK_OPTIONS = ("--latency", "0.05", "--chunks", "8", "--chunk-delay", "0.01")


@dataclass(frozen=True)
class MockSpec:
    """One backend of a variant: how its mock runs and what its config entry adds."""

    flavour: str = "openai"  # testkit.mock_providers.FLAVOURS; "cloud" has no /health
    key: str | None = None  # the mock refuses requests without it; the deployment sends it
    ready: str = "/health"  # polled until it answers 200 (start and restart)
    params: Mapping[str, Any] = field(default_factory=dict)  # extra litellm_params
    info: Mapping[str, Any] = field(default_factory=dict)  # model_info


@dataclass(frozen=True)
class Variant:
    """One way of serving the same two backends: everything that differs between runs."""

    name: str
    tls: bool = False  # both mocks over HTTPS, verified against a throwaway CA
    primary: MockSpec = field(default_factory=MockSpec)
    secondary: MockSpec = field(default_factory=MockSpec)
    router: Mapping[str, Any] = field(default_factory=dict)  # over DEFAULT_ROUTER

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


VARIANTS = {
    v.name: v
    for v in (
        Variant("http"),
        Variant("https", tls=True),
        Variant(
            "passive",
            primary=MockSpec(
                flavour="cloud",
                key=CLOUD_KEY,
                ready="/_mock/stats",
                params={"timeout": 1, "stream_timeout": 1},
                info={"p2_probe": "passive"},
            ),
            router={"cooldown_time": 2},
        ),
    )
}


def parse_variants(text: str) -> tuple[str, ...]:
    """``"http,passive"`` -> the variants to run, in that order; unknown names raise."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in VARIANTS]
    known = ", ".join(VARIANTS)
    if unknown:
        raise ValueError(f"unknown variants {', '.join(unknown)}; choose from {known}")
    if not names:
        raise ValueError(f"no variant given; choose from {known}")
    return names


def variant_config(
    variant: Variant, ports: tuple[int, int], ca: Path | None = None
) -> dict[str, Any]:
    """The gateway config of ``variant``: group ``chat``, primary at order 1 on ``ports[0]``,
    secondary at order 2 on ``ports[1]``; ``ca`` is the CA bundle of a TLS variant."""
    entries = []
    for order, (name, spec, port) in enumerate(
        (("primary", variant.primary, ports[0]), ("secondary", variant.secondary, ports[1])),
        start=1,
    ):
        base = f"{variant.scheme}://127.0.0.1:{port}/v1"
        entry = deployment("chat", base, name, order, api_key=spec.key or "none")
        entry["litellm_params"].update(spec.params)
        if variant.tls:
            if ca is None:
                raise ValueError(f"variant {variant.name} needs a CA bundle")
            entry["litellm_params"]["ssl_verify"] = str(ca)
        if spec.info:
            entry["model_info"] = dict(spec.info)
        entries.append(entry)
    return config(entries, {**DEFAULT_ROUTER, **variant.router})


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


class Mock:
    """One mock backend of a running variant: its process, its address, its control API."""

    def __init__(self, model: str, spec: MockSpec, tls: TlsFiles | None, work: Path) -> None:
        self.model = model
        self.spec = spec
        self.tls = tls
        self.work = work
        self.port = free_port()
        self.root = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        # httpx checks the mock's certificate against the variant's CA, like the gateway
        self.verify: ssl.SSLContext | bool = tls.client_context() if tls else True
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> subprocess.Popen[bytes]:
        options = [*MOCK_OPTIONS, "--model", self.model, "--flavour", self.spec.flavour]
        if self.spec.key:
            options += ["--key", self.spec.key]
        if self.tls:
            options += ["--tls-cert", str(self.tls.cert), "--tls-key", str(self.tls.key)]
        self.proc = spawn(
            mock_command(self.port, *options), log_path=self.work / f"mock-{self.model}.log"
        )
        wait_healthy(self.root + self.spec.ready, timeout=30, proc=self.proc, verify=self.verify)
        return self.proc

    def send(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, grace=5)

    async def first_served(self, since: float, limit: float) -> float:
        """Seconds from ``since`` until the (restarted) mock served a completion."""
        async with httpx.AsyncClient(verify=self.verify) as client:
            while time.monotonic() - since < limit:
                counts = (await client.get(self.root + "/_mock/stats")).json()
                if counts.get("/v1/chat/completions"):
                    return time.monotonic() - since
                await asyncio.sleep(0.02)
        return float("nan")

    async def set_mode(self, **values: Any) -> None:
        async with httpx.AsyncClient(verify=self.verify) as client:
            response = await client.post(self.root + "/_mock/config", json=values)
            response.raise_for_status()


def _window(records: list[Record], start: float, end: float) -> list[Record]:
    """Requests in flight at some point of [start, end): started before it ended, done after."""
    return [r for r in records if r.started < end and r.started + r.latency >= start]


def summary_line(label: str, report: Mapping[str, Any]) -> str:
    return (
        f"{label}: client errors = {report['client_errors']}, "
        f"broken streams = {report['broken_streams']}, "
        f"p99 during outage = {report['outage_p99_ms']:.0f} ms "
        f"(steady {report['steady_p99_ms']:.0f} ms), "
        f"back on primary {report['back_on_primary_s']:.2f} s after recovery"
    )


def combine(reports: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The whole report: the first variant's keys (what earlier runs had), the error totals
    over all variants, and every variant under ``variants``."""
    first = next(iter(reports.values()))
    return {
        **first,
        "total_client_errors": sum(r["client_errors"] for r in reports.values()),
        "total_broken_streams": sum(r["broken_streams"] for r in reports.values()),
        "variants": dict(reports),
    }


def last_line(report: Mapping[str, Any]) -> str:
    """The issue's summary line: error totals over all variants, the first variant's times."""
    totals = {
        "client_errors": report["total_client_errors"],
        "broken_streams": report["total_broken_streams"],
    }
    return summary_line("failover", {**report, **totals})


def run(
    *,
    phase_seconds: float = 4.0,
    concurrency: int = 16,
    probe_interval: float | None = None,
    variants: tuple[str, ...] = tuple(VARIANTS),
) -> dict[str, Any]:
    """Run the four phases for each variant; print JSON, a line per variant, then the
    summary line; returns the report."""
    reports: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="p2-bench-failover-") as tmp:
        for name in variants:
            work = Path(tmp) / name
            work.mkdir()
            reports[name] = _run_variant(
                VARIANTS[name], work, phase_seconds, concurrency, probe_interval
            )
    report = combine(reports)
    print(json.dumps(report, indent=1))
    for name, result in reports.items():
        print(summary_line(f"failover [{name}]", result))
    print(last_line(report))
    return report


def _run_variant(
    variant: Variant,
    work: Path,
    phase_seconds: float,
    concurrency: int,
    probe_interval: float | None,
) -> dict[str, Any]:
    import uvloop

    tls = tls_files(work / "tls") if variant.tls else None
    primary = Mock("primary", variant.primary, tls, work)
    secondary = Mock("secondary", variant.secondary, tls, work)
    config_path = work / "failover.yaml"
    ca = tls.ca if tls else None
    write_config(config_path, variant_config(variant, (primary.port, secondary.port), ca))
    env = {"P2_API_KEYS": KEY, "P2_LOG_LEVEL": "warning"}
    if probe_interval is not None:
        env["GATEWAY_PROBE_INTERVAL"] = str(probe_interval)
    gw_port = free_port()
    gateway: subprocess.Popen[bytes] | None = None
    try:
        primary.start()
        secondary.start()
        gateway = spawn(
            [sys.executable, "-m", "gateway", "--config", str(config_path), "--port", str(gw_port)],
            env=env,
            log_path=work / "gateway.log",
        )
        wait_healthy(f"http://127.0.0.1:{gw_port}/health/ready", timeout=60, proc=gateway)
        report = uvloop.run(_phases(gw_port, primary, phase_seconds, concurrency))
        interval = probe_interval or float(os.environ.get("GATEWAY_PROBE_INTERVAL", "0.5"))
        report["probe_interval_s"] = interval
        report["scheme"] = variant.scheme
        report["primary_probe"] = variant.primary.info.get("p2_probe", "health")
        report["p2_gateway_failovers_total"] = [
            line
            for line in httpx.get(f"http://127.0.0.1:{gw_port}/metrics").text.splitlines()
            if line.startswith("p2_gateway_failovers_total")
        ]
        report["gateway_log_tail"] = (work / "gateway.log").read_text()[-1500:]
    finally:
        for mock in (primary, secondary):
            mock.stop()
        if gateway is not None:
            terminate(gateway, grace=5)
    return report


async def _phases(gw_port: int, primary: Mock, phase: float, concurrency: int) -> dict[str, Any]:
    pool = Pool(f"http://127.0.0.1:{gw_port}/v1", max_idle=concurrency * 2)
    load = Load()
    tasks = [asyncio.create_task(_client(pool, i % 2 == 1, load)) for i in range(concurrency)]
    marks: dict[str, float] = {}
    await asyncio.sleep(phase)  # steady
    marks["kill"] = time.monotonic()
    primary.send(signal.SIGKILL)
    await asyncio.sleep(phase)
    await asyncio.to_thread(primary.start)
    marks["recovered"] = time.monotonic()
    back_after = await primary.first_served(marks["recovered"], phase)
    await asyncio.sleep(max(0.0, phase - (time.monotonic() - marks["recovered"])))
    marks["hang"] = time.monotonic()
    primary.send(signal.SIGSTOP)
    await asyncio.sleep(phase)
    primary.send(signal.SIGCONT)
    marks["unhang"] = time.monotonic()
    await asyncio.sleep(phase)
    marks["flap"] = time.monotonic()
    await primary.set_mode(mode="die_midstream", die_after=3)
    await asyncio.sleep(phase)
    await primary.set_mode(mode="ok")
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
