"""The ``p2`` command line: the top layer, wiring the services and the stack.

Services are imported only inside the command that needs them, so ``p2 down``
or ``p2 status`` load none of them. Other packages add command groups through
the ``p2.commands`` entry point (``p2 bench`` comes from ``benchmarks``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="p2",
    help="P2: a self-hosted, OpenAI-compatible LLM gateway with failover and RAG.",
    no_args_is_help=True,
    add_completion=False,
)
serve_app = typer.Typer(help="Run one P2 service in the foreground.", no_args_is_help=True)
build_app = typer.Typer(help="Build optional native components.", no_args_is_help=True)
app.add_typer(serve_app, name="serve")
app.add_typer(build_app, name="build")


def _add_plugins() -> None:
    """Command groups other installed packages register under ``p2.commands``."""
    for entry in entry_points(group="p2.commands"):
        app.add_typer(entry.load(), name=entry.name)


# ``p2 serve X ARGS`` hands ARGS to the service's own command line (``python -m X``), so
# each service declares its options once; ``p2 serve X --help`` prints them.
_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


@serve_app.command("inference", context_settings=_PASS_THROUGH, add_help_option=False)
def serve_inference(ctx: typer.Context) -> None:
    """Serve a GGUF model with llama.cpp: chat (:8001) or code (:8004)."""
    from inference.commands import main

    main(ctx.args)


@serve_app.command("gateway", context_settings=_PASS_THROUGH, add_help_option=False)
def serve_gateway(ctx: typer.Context) -> None:
    """The OpenAI front door (:8000): priority routing and failover."""
    from gateway.commands import main

    main(ctx.args)


@serve_app.command("embedding", context_settings=_PASS_THROUGH, add_help_option=False)
def serve_embedding(ctx: typer.Context) -> None:
    """OpenAI /v1/embeddings (:8003) on ONNX int8 with micro-batching."""
    from embedding.commands import main

    main(ctx.args)


@serve_app.command("rag", context_settings=_PASS_THROUGH, add_help_option=False)
def serve_rag(ctx: typer.Context) -> None:
    """Index documents into Qdrant, retrieve, and answer with citations (:8002)."""
    from rag.commands import main

    main(ctx.args)


@app.command()
def index(
    path: Annotated[Path, typer.Argument(help="A folder (or file) of .txt, .md, .html, .pdf.")],
    collection: Annotated[str, typer.Option(help="Collection to index into.")],
    url: Annotated[str, typer.Option(help="The RAG service.")] = "http://127.0.0.1:8002",
    reindex: Annotated[
        bool, typer.Option(help="Rebuild the collection: delete it, then index PATH in full.")
    ] = False,
    embedding_model: Annotated[
        str | None,
        typer.Option(
            help="Embedding model of a new or rebuilt collection (e.g. a fine-tuned "
            "ft:embedding:...); default RAG_EMBEDDING_MODEL."
        ),
    ] = None,
) -> None:
    """Index a folder through the RAG service; an interrupted run resumes where it stopped."""
    from p2.core.settings import CoreSettings
    from rag.indexer_cli import IndexingFailed
    from rag.indexer_cli import index as run_index

    try:
        report = run_index(
            path,
            collection,
            url,
            api_key=CoreSettings().api_key,
            reindex=reindex,
            embedding_model=embedding_model,
        )
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
    from p2.stack.commands import UpError
    from p2.stack.commands import up as run_up

    wanted = [name.strip() for name in (only or "").split(",") if name.strip()]
    try:
        run_up(detach=detach, only=wanted)
    except UpError as exc:
        raise _fail(str(exc)) from exc


@app.command()
def down() -> None:
    """Stop the stack: SIGTERM, then SIGKILL after a grace period."""
    from p2.stack.commands import down as run_down

    typer.echo(run_down())


@app.command()
def status() -> None:
    """Each service's pid, port, health, restarts and uptime (exit 1 unless all healthy)."""
    from p2.stack.commands import status as run_status

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
    from p2.stack.commands import UpError
    from p2.stack.commands import logs as run_logs

    try:
        run_logs(service, follow)
    except UpError as exc:
        raise _fail(str(exc)) from exc
    except KeyboardInterrupt:
        pass


jobs_app = typer.Typer(
    help="Jobs on the job API (:8005): list, show, cancel.", no_args_is_help=True
)
app.add_typer(jobs_app, name="jobs")


@app.command("check-config")
def check_config(
    path: Annotated[Path, typer.Argument(help="A LiteLLM-format config file.")],
) -> None:
    """What the gateway will do with a LiteLLM config, group by group (exit 1: refused keys)."""
    from gateway.commands import check_config as check

    raise typer.Exit(check(path))


_JOBS_URL = "http://127.0.0.1:8005"
JobsUrl = Annotated[str, typer.Option("--url", envvar="JOBS_URL", help="The job API.")]
WaitFlag = Annotated[bool, typer.Option("--wait", help="Follow the job with a progress bar.")]


def _jobs_run(url: str, call: Callable[[Any], Any]) -> Any:
    """``call`` with a client of the job API (the key from ``P2_API_KEY``); errors exit 1."""
    from jobs.client import JobsClient, JobsClientError
    from p2.core.settings import CoreSettings

    try:
        with JobsClient(url, api_key=CoreSettings().api_key) as client:
            return call(client)
    except JobsClientError as exc:
        raise _fail(str(exc)) from exc


def _follow(client: Any, job: dict[str, Any]) -> dict[str, Any]:
    """A progress bar until the job is final; the final job."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn())
    with Progress(*columns, TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task(f"{job['id']} {job['status']}", total=1.0)

        def seen(now: dict[str, Any]) -> None:
            queued = now["status"] == "queued" and now.get("queue_position") is not None
            where = f" (#{now['queue_position'] + 1} in the queue)" if queued else ""
            bar.update(
                task, completed=now["progress"], description=f"{now['id']} {now['status']}{where}"
            )

        final: dict[str, Any] = client.follow(job["id"], seen)
        return final


@jobs_app.command("list")
def jobs_list(
    status: Annotated[str | None, typer.Option(help="queued, running, succeeded, ...")] = None,
    task: Annotated[str | None, typer.Option(help="Only jobs of this task.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 20,
    url: JobsUrl = _JOBS_URL,
) -> None:
    """Your jobs (all jobs with an admin key), newest first."""
    found = _jobs_run(url, lambda c: c.jobs(status=status, task=task, limit=limit))
    rows = [("ID", "STATUS", "PROGRESS", "TASK", "MODEL", "CREATED")]
    for job in found:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job["created_at"]))
        progress = f"{job['progress'] * 100:.0f}%"
        rows.append((job["id"], job["status"], progress, job["task"], job["model"], created))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@jobs_app.command("show")
def jobs_show(
    job_id: Annotated[str, typer.Argument(help="job-...")],
    wait: WaitFlag = False,
    url: JobsUrl = _JOBS_URL,
) -> None:
    """One job as JSON; --wait follows it with a progress bar (exit 1 unless it succeeds)."""
    job = _jobs_run(url, lambda c: _follow(c, c.get(job_id)) if wait else c.get(job_id))
    typer.echo(json.dumps(job, indent=2))
    if wait and job["status"] != "succeeded":
        raise typer.Exit(1)


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: Annotated[str, typer.Argument(help="job-...")], url: JobsUrl = _JOBS_URL
) -> None:
    """Cancel a queued or running job (a running job's worker child is killed)."""
    typer.echo(json.dumps(_jobs_run(url, lambda c: c.cancel(job_id)), indent=2))


_add_plugins()

if __name__ == "__main__":
    app()
