"""``p2 bench NAME``: registered with the command line through the ``p2.commands`` entry point.

Each benchmark is imported only when it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Benchmarks: each measures its reference in the same run and prints a ratio.",
    no_args_is_help=True,
)


@app.command("inference")
def bench_inference(
    concurrency: Annotated[int, typer.Option(help="Concurrent streams per engine.")] = 1,
    rounds: Annotated[int, typer.Option(help="Interleaved rounds of each side.")] = 6,
    max_tokens: Annotated[int, typer.Option(help="Tokens generated per request.")] = 128,
    model: Annotated[Path | None, typer.Option(help="GGUF (default: Gemma 3 270M).")] = None,
) -> None:
    """Server vs. llama_cpp.Llama directly: tokens/s and time to first token."""
    from benchmarks.inference import run

    run(concurrency=concurrency, rounds=rounds, max_tokens=max_tokens, model=model)


@app.command("gateway")
def bench_gateway(
    duration: Annotated[float, typer.Option(help="Seconds per measurement.")] = 3.0,
    rounds: Annotated[int, typer.Option(help="Interleaved rounds.")] = 1,
    litellm: Annotated[bool, typer.Option(help="Measure LiteLLM's proxy as the reference.")] = True,
) -> None:
    """Gateway overhead and throughput against a mock backend, direct and via LiteLLM's proxy."""
    from benchmarks.gateway import run

    run(duration=duration, rounds=rounds, litellm=litellm)


@app.command("failover")
def bench_failover(
    phase_seconds: Annotated[float, typer.Option(help="Seconds per outage phase.")] = 4.0,
    concurrency: Annotated[int, typer.Option(help="Concurrent clients.")] = 16,
) -> None:
    """Steady load while the primary is killed, hung and cut mid-stream."""
    from benchmarks.failover import run

    run(phase_seconds=phase_seconds, concurrency=concurrency)


@app.command("embedding")
def bench_embedding(
    passages: Annotated[int, typer.Option(help="Real passages embedded per round.")] = 384,
    concurrency: Annotated[int, typer.Option(help="Concurrent clients.")] = 32,
    rounds: Annotated[int, typer.Option(help="Interleaved rounds.")] = 5,
    backend: Annotated[
        str | None, typer.Option(help="torch, onnx or onnx-int8 (default: EMBEDDING_BACKEND).")
    ] = None,
) -> None:
    """P2's embedding service against plain sentence-transformers, interleaved."""
    from benchmarks.embedding import run

    run(passages=passages, concurrency=concurrency, rounds=rounds, backend=backend)


@app.command("rag")
def bench_rag(
    queries: Annotated[int, typer.Option(help="Queries with relevance judgments.")] = 500,
    scale: Annotated[int, typer.Option(help="Chunks for the latency-at-scale test.")] = 100_000,
) -> None:
    """Retrieval quality (nDCG@10, recall@5), indexing speed and query latency."""
    from benchmarks.rag import run

    run(queries=queries, scale=scale)


@app.command("segmentation")
def bench_segmentation(
    rounds: Annotated[int, typer.Option(help="Timed jobs per model (124 boxes each).")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the 0-5 px box margins.")] = 0,
) -> None:
    """Box-prompted segmentation through the job API: Dice on 124 nuclei, masks/s."""
    from benchmarks.segmentation import run

    run(rounds=rounds, seed=seed)


@app.command("jobs")
def bench_jobs(
    repeat: Annotated[int, typer.Option(help="Tiny jobs timed one at a time.")] = 60,
    jobs: Annotated[int, typer.Option(help="CPU-bound jobs per throughput batch.")] = 12,
    job_seconds: Annotated[float, typer.Option(help="CPU seconds of one batch job.")] = 0.4,
) -> None:
    """Job-system overhead against the model in-process, 1 vs 2 workers, a worker killed."""
    from benchmarks.jobs import run

    run(repeat=repeat, jobs=jobs, job_seconds=job_seconds)


@app.command("fuzz")
def bench_fuzz(
    max_examples: Annotated[int, typer.Option(help="Generated cases per API operation.")] = 200,
    seed: Annotated[int, typer.Option(help="Schemathesis seed (a run is reproducible).")] = 1,
) -> None:
    """Schemathesis against every service's OpenAPI on a real stack: 5xx and schema breaks."""
    from benchmarks.fuzz import run

    run(max_examples=max_examples, seed=seed)
