"""The ``p2`` command line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from inference.settings import EngineKind, Role

app = typer.Typer(
    name="p2",
    help="P2: a self-hosted, OpenAI-compatible LLM gateway with failover and RAG.",
    no_args_is_help=True,
    add_completion=False,
)
serve_app = typer.Typer(help="Run one P2 service in the foreground.", no_args_is_help=True)
bench_app = typer.Typer(
    help="Benchmarks: each measures its reference in the same run and prints a ratio.",
    no_args_is_help=True,
)
build_app = typer.Typer(help="Build optional native components.", no_args_is_help=True)
app.add_typer(serve_app, name="serve")
app.add_typer(bench_app, name="bench")
app.add_typer(build_app, name="build")


@serve_app.command("inference")
def serve_inference(
    role: Annotated[
        Role, typer.Option(help="Which server: chat (:8001) or code (:8004).")
    ] = Role.CHAT,
    model: Annotated[
        Path | None, typer.Option(help="GGUF file to serve (env <ROLE>_MODEL_PATH).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (env <ROLE>_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (env <ROLE>_PORT).")] = None,
    engine: Annotated[
        EngineKind | None,
        typer.Option(help="llama-cpp (in-process) or llama-server (native) (env <ROLE>_ENGINE)."),
    ] = None,
) -> None:
    """Serve a GGUF model with llama.cpp behind an OpenAI-compatible API."""
    from inference.app import create_app
    from inference.settings import InferenceSettings
    from p2.core.server import serve
    from p2.core.settings import CoreSettings, given

    overrides = given(model_path=model, host=host, port=port, engine=engine)
    settings = InferenceSettings.for_role(role, **overrides)
    if settings.model_path is not None and not settings.model_path.expanduser().is_file():
        typer.secho(f"error: model file not found: {settings.model_path}", fg="red", err=True)
        raise typer.Exit(2)
    core = CoreSettings()
    what = settings.model_path or "Gemma 3 270M Q4_K_M (default)"
    typer.echo(
        f"P2 inference-{role.value}: serving {what} on http://{settings.host}:{settings.port}/v1 "
        f"(engine {settings.engine.value}; GET /health turns 200 when the model is loaded)"
    )
    serve(
        create_app(settings, core),
        host=settings.host,
        port=settings.port,
        log_level=core.log_level,
        service=f"inference-{role.value}",
    )


@serve_app.command("gateway")
def serve_gateway(
    config: Annotated[
        Path | None, typer.Option(help="LiteLLM-format config (default config/litellm.yaml).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (env GATEWAY_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (env GATEWAY_PORT, default 8000).")] = None,
) -> None:
    """The OpenAI front door: priority routing and failover across the inference servers."""
    from gateway.commands import serve

    serve(config, host, port)


@serve_app.command("embedding")
def serve_embedding(
    host: Annotated[str | None, typer.Option(help="Bind address (env EMBEDDING_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (env EMBEDDING_PORT, 8003).")] = None,
) -> None:
    """OpenAI /v1/embeddings: sentence-transformers, ONNX int8, dynamic micro-batching."""
    from embedding.commands import serve

    serve(host, port)


@serve_app.command("rag")
def serve_rag(
    host: Annotated[str | None, typer.Option(help="Bind address (env RAG_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (env RAG_PORT, 8002).")] = None,
) -> None:
    """Index documents into Qdrant, retrieve, and answer with citations."""
    from rag.commands import serve

    serve(host, port)


@app.command()
def index(
    path: Annotated[Path, typer.Argument(help="A folder (or file) of .txt, .md, .html, .pdf.")],
    collection: Annotated[str, typer.Option(help="Collection to index into.")],
    url: Annotated[str, typer.Option(help="The RAG service.")] = "http://127.0.0.1:8002",
) -> None:
    """Index a folder through the RAG service; an interrupted run resumes where it stopped."""
    from rag.indexer_cli import IndexingFailed
    from rag.indexer_cli import index as run_index

    try:
        report = run_index(path, collection, url, api_key=os.environ.get("P2_API_KEY"))
    except IndexingFailed as exc:
        raise _fail(str(exc)) from exc
    typer.echo(
        f"{collection}: {report.files} files, {report.indexed} indexed ({report.chunks} chunks), "
        f"{report.unchanged} unchanged, {report.skipped} already done by an earlier run"
    )
    if report.unsupported:
        typer.echo(f"skipped unsupported files: {', '.join(report.unsupported)}")
    for document, why in report.failed.items():
        typer.secho(f"failed {document}: {why}", fg="red", err=True)
    if report.failed:
        raise typer.Exit(1)


@bench_app.command("inference")
def bench_inference(
    concurrency: Annotated[int, typer.Option(help="Concurrent streams per engine.")] = 1,
    rounds: Annotated[int, typer.Option(help="Interleaved rounds of each side.")] = 6,
    max_tokens: Annotated[int, typer.Option(help="Tokens generated per request.")] = 128,
    model: Annotated[Path | None, typer.Option(help="GGUF (default: Gemma 3 270M).")] = None,
) -> None:
    """Server vs. llama_cpp.Llama directly: tokens/s and time to first token."""
    from p2.bench.inference import run

    run(concurrency=concurrency, rounds=rounds, max_tokens=max_tokens, model=model)


@bench_app.command("gateway")
def bench_gateway(
    duration: Annotated[float, typer.Option(help="Seconds per measurement.")] = 3.0,
    rounds: Annotated[int, typer.Option(help="Interleaved rounds.")] = 1,
    litellm: Annotated[bool, typer.Option(help="Measure LiteLLM's proxy as the reference.")] = True,
) -> None:
    """Gateway overhead and throughput against a mock backend, direct and via LiteLLM's proxy."""
    from p2.bench.gateway import run

    run(duration=duration, rounds=rounds, litellm=litellm)


@bench_app.command("failover")
def bench_failover(
    phase_seconds: Annotated[float, typer.Option(help="Seconds per outage phase.")] = 4.0,
    concurrency: Annotated[int, typer.Option(help="Concurrent clients.")] = 16,
) -> None:
    """Steady load while the primary is killed, hung and cut mid-stream."""
    from p2.bench.failover import run

    run(phase_seconds=phase_seconds, concurrency=concurrency)


@bench_app.command("embedding")
def bench_embedding(
    passages: Annotated[int, typer.Option(help="Real passages embedded per round.")] = 384,
    concurrency: Annotated[int, typer.Option(help="Concurrent clients.")] = 32,
    rounds: Annotated[int, typer.Option(help="Interleaved rounds.")] = 5,
    backend: Annotated[
        str | None, typer.Option(help="torch, onnx or onnx-int8 (default: EMBEDDING_BACKEND).")
    ] = None,
) -> None:
    """P2's embedding service against plain sentence-transformers, interleaved."""
    from p2.bench.embedding import run

    run(passages=passages, concurrency=concurrency, rounds=rounds, backend=backend)


@bench_app.command("rag")
def bench_rag(
    queries: Annotated[int, typer.Option(help="Queries with relevance judgments.")] = 500,
    scale: Annotated[int, typer.Option(help="Chunks for the latency-at-scale test.")] = 100_000,
) -> None:
    """Retrieval quality (nDCG@10, recall@5), indexing speed and query latency."""
    from p2.bench.rag import run

    run(queries=queries, scale=scale)


@build_app.command("llama-server")
def build_llama_server(
    jobs: Annotated[int, typer.Option(help="Parallel compile jobs.")] = os.cpu_count() or 1,
) -> None:
    """Compile llama.cpp's llama-server from the source llama-cpp-python vendors (offline)."""
    from inference.build import BuildError, build_llama_server

    try:
        path = build_llama_server(jobs=jobs)
    except BuildError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    typer.echo(str(path))


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg="red", err=True)
    return typer.Exit(1)


@app.command()
def up(
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Return once every service is healthy.")
    ] = False,
    only: Annotated[
        str | None,
        typer.Option(help="Comma-separated services to run (their dependencies come along)."),
    ] = None,
) -> None:
    """Start the whole stack, each service once its dependencies are healthy; heal it."""
    from p2.supervisor.commands import UpError
    from p2.supervisor.commands import up as run_up

    wanted = [name.strip() for name in (only or "").split(",") if name.strip()]
    try:
        run_up(detach=detach, only=wanted)
    except UpError as exc:
        raise _fail(str(exc)) from exc


@app.command()
def down() -> None:
    """Stop the stack: SIGTERM, then SIGKILL after a grace period."""
    from p2.supervisor.commands import down as run_down

    typer.echo(run_down())


@app.command()
def status() -> None:
    """Each service's pid, port, health, restarts and uptime (exit 1 unless all healthy)."""
    from p2.supervisor.commands import status as run_status

    table, healthy = run_status()
    typer.echo(table)
    if not healthy:
        raise typer.Exit(1)


@app.command()
def logs(
    service: Annotated[str, typer.Argument(help="gateway, inference-chat, rag, ...")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing.")] = False,
) -> None:
    """Print a service's log."""
    from p2.supervisor.commands import UpError
    from p2.supervisor.commands import logs as run_logs

    try:
        run_logs(service, follow)
    except UpError as exc:
        raise _fail(str(exc)) from exc
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    app()
