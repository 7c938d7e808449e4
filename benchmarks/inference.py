"""``p2 bench inference``: P2's inference server against ``llama_cpp.Llama`` called directly.

Same model, prompts (a few hundred tokens of real text), greedy decoding and
token budget on both sides, so both generate the very same tokens. Server and
direct requests alternate so machine noise hits both. The server is measured
end to end over HTTP, streaming.
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
from contextlib import contextmanager
from dataclasses import dataclass
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
        if len(words_of) >= words:
            texts.append(" ".join(words_of[:words]))
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
    """The reference: the same GGUF through ``llama_cpp.Llama`` in this process."""

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


async def server_request(client: httpx.AsyncClient, prompt: str, max_tokens: int) -> Sample:
    body = {
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "seed": 1,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first = 0.0
    tokens = 0
    async with client.stream("POST", "/v1/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = orjson.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            elif not first and chunk["choices"] and chunk["choices"][0].get("text"):
                first = time.perf_counter() - start
    return Sample(first, time.perf_counter() - start, tokens)


@contextmanager
def running_server(engine: str, model: Path | None, env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "inference",
        "--role",
        "chat",
        "--port",
        str(port),
        "--engine",
        engine,
    ]
    if model is not None:
        argv += ["--model", str(model)]
    log = CoreSettings().logs_dir / f"bench-inference-{engine}.log"
    url = f"http://127.0.0.1:{port}"
    with running(argv, health_url=f"{url}/health", timeout=600, env=env, log_path=log):
        yield url


async def concurrent_run(
    url: str, prompts: list[str], max_tokens: int, concurrency: int
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        start = time.perf_counter()
        samples = await asyncio.gather(
            *(server_request(client, p, max_tokens) for p in prompts[:concurrency])
        )
        wall = time.perf_counter() - start
    return {
        "concurrency": concurrency,
        "aggregate_tokens_per_second": rounded(sum(s.tokens for s in samples) / wall, 2),
        "ttft_p95_ms": rounded(percentile([s.ttft for s in samples], 95) * 1000, 1),
    }


def run(*, concurrency: int, rounds: int, max_tokens: int, model: Path | None) -> None:
    from inference.build import find_llama_server
    from inference.model import resolve_model
    from inference.settings import InferenceSettings, Role

    settings = InferenceSettings.for_role(Role.CHAT)
    path = resolve_model(model, CoreSettings().models_dir)
    prompts = real_prompts(rounds)
    env = {"CHAT_CTX_SIZE": str(settings.ctx_size), "CHAT_N_THREADS": str(settings.n_threads)}
    direct = Direct(path, settings.ctx_size, settings.n_threads, settings.n_batch)
    server_samples: list[Sample] = []
    direct_samples: list[Sample] = []
    report: dict[str, Any] = {
        "model": path.name,
        "max_tokens": max_tokens,
        "threads": settings.n_threads,
    }
    with running_server("llama-cpp", path, env) as url:

        async def interleaved() -> None:
            async with httpx.AsyncClient(base_url=url, timeout=600) as client:
                await server_request(client, prompts[0], 8)  # warm-up, both sides
                direct.run(prompts[0], 8)
                for prompt in prompts:
                    server_samples.append(await server_request(client, prompt, max_tokens))
                    direct_samples.append(direct.run(prompt, max_tokens))

        asyncio.run(interleaved())
        report["server"] = summarise(server_samples)
        report["direct"] = summarise(direct_samples)
        if concurrency > 1:
            report["concurrent"] = {
                "llama-cpp": asyncio.run(concurrent_run(url, prompts * 4, max_tokens, concurrency))
            }
    direct.llm.close()
    if concurrency > 1:
        if find_llama_server(InferenceSettings().llama_server_bin) is None:
            report["concurrent"]["llama-server"] = "not built: run `p2 build llama-server`"
        else:
            ls_env = {**env, "CHAT_PARALLEL": str(concurrency)}
            with running_server("llama-server", path, ls_env) as url:
                asyncio.run(concurrent_run(url, prompts, 8, 1))  # warm-up
                report["concurrent"]["llama-server"] = asyncio.run(
                    concurrent_run(url, prompts * 4, max_tokens, concurrency)
                )
    ratio = report["server"]["tokens_per_second"] / report["direct"]["tokens_per_second"]
    report["ratio_server_over_direct"] = rounded(ratio, 3)
    print(json.dumps(report, indent=2))
    print(f"inference: server/direct tokens/s = {ratio:.2f}")
