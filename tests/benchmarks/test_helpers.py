"""The benchmarks' own judgement: what counts as a broken stream, how ratios are summed up."""

from __future__ import annotations

import orjson

from benchmarks.failover import EXPECTED, check_stream
from benchmarks.gateway import summarize


def sse(*payloads: dict[str, object]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(p) + b"\n\n" for p in payloads)


def chunk(content: str | None, finish: str | None = None, ident: str = "x") -> dict[str, object]:
    delta = {"content": content} if content is not None else {}
    return {"id": ident, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_check_stream_accepts_only_complete_well_formed_streams() -> None:
    good = sse(chunk(EXPECTED), chunk(None, "stop")) + b"data: [DONE]\n\n"
    assert check_stream(good)
    assert not check_stream(sse(chunk(EXPECTED), chunk(None, "stop")))  # no [DONE]
    assert not check_stream(sse(chunk("tok0 "), chunk(None, "stop")) + b"data: [DONE]\n\n")
    mixed = sse(chunk("tok0 "), chunk(EXPECTED[5:], ident="y"), chunk(None, "stop"))
    assert not check_stream(mixed + b"data: [DONE]\n\n")
    error = sse(chunk("tok0 "), {"error": {"message": "boom"}}) + b"data: [DONE]\n\n"
    assert not check_stream(error)


def test_summarize_takes_ratios_from_saturated_runs_and_overheads_from_paced_runs() -> None:
    def result(rps: float, p50: float, cpu: float, ttft: float | None = None) -> dict[str, object]:
        return {"rps": rps, "p50_ms": p50, "cpu_ms_per_req": cpu, "ttft_p50_ms": ttft}

    scenarios = [
        {
            "latency_ms": 0,
            "stream": False,
            "concurrency": 32,
            "results": {
                "direct": result(1000, 1.0, 0.01),
                "p2": result(500, 20.0, 0.2),  # saturated: queueing, not overhead
                "litellm-proxy": result(10, 100.0, 10.0),
            },
            "paced": {"rate": 250, "direct": result(250, 1.0, 0.01), "p2": result(250, 1.5, 0.2)},
        },
        {
            "latency_ms": 50,
            "stream": True,
            "concurrency": 32,
            "results": {
                "direct": result(600, 51.0, 0.01, 50.5),
                "p2": result(590, 52.0, 0.4, 51.5),
                "litellm-proxy": result(59, 300.0, 20.0, 200.0),
            },
            "paced": {
                "rate": 295,
                "direct": result(295, 51.0, 0.01, 50.5),
                "p2": result(295, 51.5, 0.4, 51.25),
            },
        },
    ]
    summary = summarize(scenarios)
    assert summary["throughput_ratio"] == 22.36  # geometric mean of 50x and 10x
    assert summary["p2_overhead_p50_ms"] == 0.5  # median of the paced overheads 0.5 and 0.5
    assert summary["p2_cpu_ms_per_req"] == 0.3
    assert summary["stream_ttft_overhead_p50_ms_max"] == 0.75
    assert summary["overheads_by_scenario"]["0ms-json-c32"]["saturated_p50_overhead_ms"] == 19.0
