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
    rounds: Annotated[int, typer.Option(help="Interleaved single-stream rounds.")] = 6,
    max_tokens: Annotated[int, typer.Option(help="Tokens generated per request.")] = 128,
    model: Annotated[
        Path | None, typer.Option(help="GGUF (default: the chat default, SmolLM2-135M).")
    ] = None,
) -> None:
    """P2's engines vs. llama.cpp driven directly: tokens/s and time to first token."""
    from benchmarks.inference import run

    run(concurrency=concurrency, rounds=rounds, max_tokens=max_tokens, model=model)


@app.command("structured")
def bench_structured(
    prompts: Annotated[int, typer.Option(help="JSON-schema prompts per model.")] = 24,
    tool_prompts: Annotated[int, typer.Option(help="Tool-call prompts per model.")] = 24,
    models: Annotated[str, typer.Option(help="Comma-separated roles to measure.")] = "chat,code",
) -> None:
    """Structured output and tool calls through the gateway on the default models."""
    from benchmarks.structured import run

    roles = tuple(role.strip() for role in models.split(",") if role.strip())
    run(prompts=prompts, tool_prompts=tool_prompts, roles=roles)


@app.command("gateway")
def bench_gateway(
    duration: Annotated[float, typer.Option(help="Seconds per measurement.")] = 3.0,
    rounds: Annotated[int, typer.Option(help="Interleaved rounds.")] = 1,
    litellm: Annotated[bool, typer.Option(help="Measure LiteLLM's proxy as the reference.")] = True,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="GATEWAY_WORKERS of the gateway under test; above 1, one worker is measured "
            "too, as the ceiling's reference.",
        ),
    ] = 1,
) -> None:
    """Gateway overhead and throughput against a mock backend, direct and via LiteLLM's proxy."""
    from benchmarks.gateway import run

    run(duration=duration, rounds=rounds, litellm=litellm, workers=workers)


@app.command("failover")
def bench_failover(
    phase_seconds: Annotated[float, typer.Option(help="Seconds per outage phase.")] = 4.0,
    concurrency: Annotated[int, typer.Option(help="Concurrent clients.")] = 16,
    variants: Annotated[
        str, typer.Option(help="Backends to run it with, in this order: http, https, passive.")
    ] = "http,https,passive",
) -> None:
    """Steady load while the primary is killed, hung and cut mid-stream (per variant)."""
    from benchmarks.failover import parse_variants, run

    try:
        chosen = parse_variants(variants)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--variants") from None
    run(phase_seconds=phase_seconds, concurrency=concurrency, variants=chosen)


@app.command("routing")
def bench_routing(
    requests: Annotated[int, typer.Option(help="Requests for the weighted share.")] = 2000,
    latency_requests: Annotated[int, typer.Option(help="Requests per strategy for p99.")] = 1500,
    fallbacks: Annotated[int, typer.Option(help="Context-window fallback requests.")] = 40,
) -> None:
    """Weighted shuffle share, least-busy vs shuffle p99, and a context-window fallback."""
    from benchmarks.routing import run

    run(requests=requests, latency_requests=latency_requests, fallbacks=fallbacks)


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


@app.command("chaos")
def bench_chaos(
    baseline: Annotated[
        float, typer.Option(help="Seconds of load before the first fault and after the last.")
    ] = 10.0,
    settle: Annotated[
        float, typer.Option(help="Seconds of load after a service is back, before the next.")
    ] = 3.0,
    services: Annotated[
        str, typer.Option(help="Services to fault, comma-separated, in this order.")
    ] = "inference-chat,inference-code,embedding,rag,gateway",
    faults: Annotated[str, typer.Option(help="Faults per service, in this order.")] = (
        "kill,hang,restart"
    ),
) -> None:
    """A keyed stack under mixed load while each service is killed, hung and restarted."""
    from benchmarks.chaos import run

    run(
        baseline=baseline,
        settle=settle,
        services=[s.strip() for s in services.split(",") if s.strip()],
        faults=[f.strip() for f in faults.split(",") if f.strip()],
    )


@app.command("finetune")
def bench_finetune(
    chat_train: Annotated[int, typer.Option(help="Classify examples to train on.")] = 320,
    chat_heldout: Annotated[int, typer.Option(help="Held-out examples (validation).")] = 80,
    chat_epochs: Annotated[int, typer.Option(help="Epochs of the chat (LoRA) job.")] = 2,
    pair_epochs: Annotated[int, typer.Option(help="Epochs of the embedding job.")] = 2,
    direct_steps: Annotated[int, typer.Option(help="Bare-loop steps (the reference).")] = 12,
    serve: Annotated[bool, typer.Option(help="Serve the result through the gateway.")] = True,
) -> None:
    """Fine-tuning on this machine's Debian package data: held-out gains, cost, serving."""
    from benchmarks.finetune import run

    run(
        chat_train=chat_train,
        chat_heldout=chat_heldout,
        chat_epochs=chat_epochs,
        pair_epochs=pair_epochs,
        direct_steps_count=direct_steps,
        serve=serve,
    )
