"""``p2 bench inference``: P2's inference server against llama.cpp driven directly.

Two references, measured in the same run:

* one stream: P2's server (default engine, over HTTP, streaming) against
  ``llama_cpp.Llama`` called in this process, same model, prompt, greedy decoding
  and token budget, requests alternating so machine noise hits both;
* ``--concurrency C`` streams at once: each P2 engine (``llama-cpp``, the default,
  and ``llama-server`` behind P2's front) against ``llama-server`` itself, started
  here and driven directly on its native ``/completion``. Every target gets C slots,
  C clients send distinct prompts (a few hundred tokens of real text) and exactly
  ``max_tokens`` tokens are generated (sampled, fixed seeds), rounds interleave the
  targets. Aggregate tokens/s counts generated tokens over wall time (prefill
  included); TTFT p95 is over every request.

JSON goes to stdout; the last line is the summary:
``inference: server/direct tokens/s = X, c8 aggregate p2/llama-server = Y``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from benchmarks.stats import percentile, rounded
from p2.core.process import free_port, running
from p2.core.settings import CoreSettings


@dataclass
class Sample:
    ttft: float
    total: float
    tokens: int

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.total if self.total > 0 else 0.0


def real_prompts(count: int, words: int = 220) -> list[str]:
    """Passages of the standard library's own documentation (real English text)."""
    import argparse
    import asyncio as aio
    import collections
    import email
    import json as js
    import logging
    import pathlib
    import subprocess
    import threading
    import unittest

    texts = []
    for module in (
        argparse,
        logging,
        subprocess,
        threading,
        unittest,
        collections,
        pathlib,
        email,
        js,
        aio,
    ):
        doc = inspect.getdoc(module) or ""
        for obj in vars(module).values():
            if inspect.isclass(obj) or inspect.isfunction(obj):
                doc += "\n" + (inspect.getdoc(obj) or "")
        words_of = doc.split()
        for start in range(0, len(words_of) - words, words):
            texts.append(" ".join(words_of[start : start + words]))
    prompts = [f"{text}\n\nSummarise the text above in detail:\n" for text in texts]
    return (prompts * (count // len(prompts) + 1))[:count]


def summarise(samples: list[Sample]) -> dict[str, float]:
    tokens = sum(s.tokens for s in samples)
    total = sum(s.total for s in samples)
    ttfts = [s.ttft for s in samples]
    return {
        "requests": len(samples),
        "tokens_per_second": rounded(tokens / total if total else 0.0, 2),
        "ttft_p50_ms": rounded(percentile(ttfts, 50) * 1000, 1),
        "ttft_p95_ms": rounded(percentile(ttfts, 95) * 1000, 1),
        "mean_tokens": rounded(statistics.mean(s.tokens for s in samples), 1),
    }


class Direct:
    """The single-stream reference: the same GGUF through ``llama_cpp.Llama`` in-process."""

    def __init__(self, model: Path, ctx: int, threads: int, batch: int) -> None:
        os.environ.setdefault("OMP_WAIT_POLICY", "passive")
        import llama_cpp

        self.llm = llama_cpp.Llama(
            model_path=str(model),
            n_ctx=ctx,
            n_threads=threads,
            n_threads_batch=threads,
            n_batch=batch,
            logits_all=False,
            verbose=False,
        )

    def run(self, prompt: str, max_tokens: int) -> Sample:
        start = time.perf_counter()
        first = 0.0
        tokens = 0
        chunks: Any = self.llm.create_completion(
            prompt, max_tokens=max_tokens, temperature=0.0, stream=True, seed=1
        )
        for chunk in chunks:
            if chunk["choices"][0]["finish_reason"] is not None:
                continue  # the closing chunk carries no token
            if tokens == 0:
                first = time.perf_counter() - start
            tokens += 1
        return Sample(first, time.perf_counter() - start, tokens)


@dataclass
class Target:
    """A server to load: P2 (``/v1/completions``) or llama-server (``/completion``)."""

    name: str
    url: str
    native: bool = False
    samples: list[Sample] = field(default_factory=list)
    wall: float = 0.0

    def body(self, prompt: str, max_tokens: int, seed: int, greedy: bool) -> dict[str, Any]:
        sampling: dict[str, Any] = {"temperature": 0.0} if greedy else {"seed": seed}
        if self.native:
            return {
                "prompt": prompt,
                "n_predict": max_tokens,
                "stream": True,
                "ignore_eos": not greedy,
                "cache_prompt": False,
                **sampling,
            }
        return {
            "prompt": prompt,
            "max_tokens": max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
            "ignore_eos": not greedy,
            **sampling,
        }

    async def request(
        self,
        client: httpx.AsyncClient,
        prompt: str,
        max_tokens: int,
        seed: int = 1,
        greedy: bool = False,
    ) -> Sample:
        path = "/completion" if self.native else "/v1/completions"
        headers = {"Connection": "close"} if self.native else {}
        start = time.perf_counter()
        first = 0.0
        tokens = 0
        body = self.body(prompt, max_tokens, seed, greedy)
        async with client.stream("POST", path, json=body, headers=headers) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.startswith("data: {"):
                    continue
                chunk = orjson.loads(line[6:])
                if self.native:
                    if chunk.get("stop"):
                        tokens = int(chunk.get("tokens_predicted", 0))
                    elif not first and chunk.get("content"):
                        first = time.perf_counter() - start
                elif chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
                elif not first and chunk["choices"] and chunk["choices"][0].get("text"):
                    first = time.perf_counter() - start
        return Sample(first, time.perf_counter() - start, tokens)

    def report(self) -> dict[str, Any]:
        tokens = sum(s.tokens for s in self.samples)
        return {
            "requests": len(self.samples),
            "generated_tokens": tokens,
            "aggregate_tokens_per_second": rounded(tokens / self.wall if self.wall else 0.0, 2),
            "ttft_p50_ms": rounded(percentile([s.ttft for s in self.samples], 50) * 1000, 1),
            "ttft_p95_ms": rounded(percentile([s.ttft for s in self.samples], 95) * 1000, 1),
        }


@contextmanager
def p2_server(engine: str, model: Path, env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "inference", "--role", "chat", "--port", str(port)]
    argv += ["--engine", engine, "--model", str(model)]
    log = CoreSettings().logs_dir / f"bench-inference-{engine}.log"
    url = f"http://127.0.0.1:{port}"
    with running(argv, health_url=f"{url}/health", timeout=600, env=env, log_path=log):
        yield url


@contextmanager
def native_server(binary: Path, model: Path, slots: int, ctx: int, threads: int) -> Iterator[str]:
    """llama-server as P2's llama-server engine starts it, without P2 in front."""
    port = free_port()
    argv = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["-c", str(ctx * slots), "-np", str(slots), "-t", str(threads), "-tb", str(threads)]
    argv += ["-b", "512", "-ub", "512", "--no-webui"]
    log = CoreSettings().logs_dir / "bench-inference-llama-server-direct.log"
    url = f"http://127.0.0.1:{port}"
    env = {"OMP_WAIT_POLICY": "passive"}
    with running(argv, health_url=f"{url}/health", timeout=600, env=env, log_path=log):
        yield url


async def load_round(
    target: Target, prompts: list[str], concurrency: int, per_client: int, max_tokens: int
) -> None:
    """``concurrency`` clients, ``per_client`` distinct prompts each, closed loop."""
    async with httpx.AsyncClient(base_url=target.url, timeout=900) as client:
        await target.request(client, "Hello.", 4)  # warm-up

        async def client_loop(c: int) -> list[Sample]:
            out = []
            for r in range(per_client):
                i = c * per_client + r
                out.append(await target.request(client, prompts[i], max_tokens, seed=i + 1))
            return out

        started = time.perf_counter()
        results = await asyncio.gather(*(client_loop(c) for c in range(concurrency)))
        target.wall += time.perf_counter() - started
    target.samples += [s for batch in results for s in batch]


def single_stream(
    url: str, direct: Direct, prompts: list[str], max_tokens: int
) -> dict[str, dict[str, float]]:
    """P2's server and ``llama_cpp.Llama`` one request at a time, alternating."""
    target = Target("p2", url)
    server: list[Sample] = []
    local: list[Sample] = []

    async def interleaved() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=900) as client:
            await target.request(client, prompts[0], 8, greedy=True)  # warm-up, both sides
            direct.run(prompts[0], 8)
            for prompt in prompts:
                server.append(await target.request(client, prompt, max_tokens, greedy=True))
                local.append(direct.run(prompt, max_tokens))

    asyncio.run(interleaved())
    return {"server": summarise(server), "direct": summarise(local)}


def run(
    *,
    concurrency: int,
    rounds: int,
    max_tokens: int,
    model: Path | None,
    per_client: int = 2,
) -> dict[str, Any]:
    from inference.build import find_llama_server
    from inference.model import resolve_model
    from inference.settings import InferenceSettings, Role

    settings = InferenceSettings.for_role(Role.CHAT)
    path = resolve_model(model, CoreSettings().models_dir, role=Role.CHAT)
    threads, ctx = settings.n_threads, 1024
    slots = max(1, concurrency)
    env = {
        "CHAT_CTX_SIZE": str(ctx),
        "CHAT_N_THREADS": str(threads),
        "CHAT_PARALLEL": str(slots),
        "P2_LOG_LEVEL": "warning",
    }
    report: dict[str, Any] = {
        "model": path.name,
        "max_tokens": max_tokens,
        "threads": threads,
        "slots": slots,
        "concurrency": concurrency,
    }
    binary = find_llama_server(settings.llama_server_bin)
    with ExitStack() as stack:
        p2_url = stack.enter_context(p2_server("llama-cpp", path, env))
        direct = Direct(path, ctx, threads, 512)
        report.update(single_stream(p2_url, direct, real_prompts(rounds), max_tokens))
        direct.llm.close()
        targets = [Target("p2 llama-cpp (default)", p2_url)]
        if binary is None:
            report["llama-server"] = "not built: run `make llama-server`"
        elif concurrency > 1:
            targets.append(
                Target("p2 llama-server", stack.enter_context(p2_server("llama-server", path, env)))
            )
            native = stack.enter_context(native_server(binary, path, slots, ctx, threads))
            targets.append(Target("llama-server direct", native, native=True))
        if concurrency > 1:
            per_round = concurrency * per_client
            prompts = real_prompts(rounds + per_round * 2)[rounds:]  # unseen by any server
            for r in range(2):  # rounds interleave the targets; no prompt is sent twice
                batch = prompts[r * per_round : (r + 1) * per_round]
                for target in targets:
                    print(f"[bench] {target.name}: c{concurrency}", file=sys.stderr, flush=True)
                    asyncio.run(load_round(target, batch, concurrency, per_client, max_tokens))
            report["concurrent"] = {t.name: t.report() for t in targets}
    ratio = report["server"]["tokens_per_second"] / report["direct"]["tokens_per_second"]
    report["ratio_server_over_direct"] = rounded(ratio, 3)
    print(json.dumps(report, indent=2))
    line = f"inference: server/direct tokens/s = {ratio:.2f}"
    if "concurrent" in report:
        for name, result in report["concurrent"].items():
            print(
                f"{name}: c{concurrency} aggregate {result['aggregate_tokens_per_second']:.2f} "
                f"tokens/s, TTFT p95 {result['ttft_p95_ms']:.0f} ms"
            )
        concurrent = report["concurrent"]
        if "llama-server direct" in concurrent:
            p2 = concurrent["p2 llama-cpp (default)"]["aggregate_tokens_per_second"]
            reference = concurrent["llama-server direct"]["aggregate_tokens_per_second"]
            share = p2 / reference if reference else 0.0
            report["ratio_c_aggregate_p2_over_llama_server"] = rounded(share, 3)
            line += f", c{concurrency} aggregate p2/llama-server = {share:.2f}"
    print(line)
    return report
