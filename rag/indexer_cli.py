"""``p2 index PATH --collection NAME``: index a folder through the RAG API, resumably.

Files go up as multipart batches (the relative path is the document id). The
server skips unchanged documents without embedding or writing; on top of that
a small state file under ``$P2_HOME/index-state`` remembers which files (by
size and mtime) the server already holds, so a re-run after an interruption
does not even re-upload them. The server's document list is checked first, so
a deleted collection is indexed again in full.

``--reindex`` rebuilds the collection: it is deleted, then indexed again in
full, with ``--embedding-model`` if given (a new collection records the model
it is built with, and queries use that one; ``rag.collection_model``). The
collection is incomplete while that runs; an interrupted rebuild resumes with a
plain re-run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from p2.core.files import atomic_write
from p2.core.settings import CoreSettings
from rag.extract import is_supported
from rag.protocol import Outcome

_BATCH_BYTES = 4 * 1024 * 1024


class IndexingFailed(RuntimeError):
    """The run stopped early; re-running the same command resumes it."""


class _Retryable(Exception):
    """The RAG service was unreachable or answered 5xx/429."""


@dataclass
class IndexReport:
    files: int = 0
    indexed: int = 0
    unchanged: int = 0
    skipped: int = 0  # known from the state file, not uploaded
    chunks: int = 0
    unsupported: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # refused by the server, with why


def discover(path: Path) -> tuple[list[tuple[str, Path]], list[str]]:
    """(document id, file) for every supported file under ``path``, and the unsupported ones."""
    if path.is_file():
        pairs = [(path.name, path)]
    else:
        pairs = [
            (p.relative_to(path).as_posix(), p)
            for p in sorted(path.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        ]
    good = [(i, p) for i, p in pairs if is_supported(i)]
    bad = [i for i, _ in pairs if not is_supported(i)]
    return good, bad


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


class _State:
    """Files the server is known to hold, by size and mtime; one JSON file per target."""

    def __init__(self, directory: Path, url: str, collection: str, root: Path) -> None:
        key = hashlib.sha256(f"{url}\x00{collection}\x00{root.resolve()}".encode()).hexdigest()
        self.path = directory / f"{collection}-{key[:16]}.json"
        try:
            self.done: dict[str, str] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.done = {}

    def save(self) -> None:
        # No fsync: a state file lost to a crash only costs re-uploads the server skips.
        atomic_write(self.path, json.dumps(self.done), fsync=False)


def _batches(files: list[tuple[str, Path]], size: int) -> Iterator[list[tuple[str, Path]]]:
    batch: list[tuple[str, Path]] = []
    weight = 0
    for item in files:
        bytes_ = item[1].stat().st_size
        if batch and (len(batch) >= size or weight + bytes_ > _BATCH_BYTES):
            yield batch
            batch, weight = [], 0
        batch.append(item)
        weight += bytes_
    if batch:
        yield batch


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:300]


class _Client:
    def __init__(self, url: str, api_key: str | None, timeout: float, retries: int) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)
        self.retrying = Retrying(
            retry=retry_if_exception_type(_Retryable),
            stop=stop_after_attempt(retries + 1),
            wait=wait_exponential_jitter(multiplier=1.0, max=15.0),
            reraise=True,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in self.retrying:
            with attempt:
                try:
                    response = self.http.request(method, path, **kwargs)
                except httpx.TransportError as exc:
                    raise _Retryable(f"RAG service unreachable: {exc!r}") from exc
                if response.status_code == 429 or response.status_code >= 500:
                    raise _Retryable(f"HTTP {response.status_code}: {_error_text(response)}")
                return response
        raise AssertionError("unreachable")

    def model_of(self, collection: str) -> str | None:
        """The embedding model the collection records; None when there is no collection."""
        response = self.call("GET", f"/v1/rag/collections/{collection}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise IndexingFailed(f"cannot read {collection}: {_error_text(response)}")
        return str(response.json().get("embedding_model") or "") or None

    def drop(self, collection: str) -> None:
        response = self.call("DELETE", f"/v1/rag/collections/{collection}")
        if response.status_code not in (200, 404):
            raise IndexingFailed(f"cannot delete {collection}: {_error_text(response)}")

    def server_ids(self, collection: str) -> set[str]:
        ids: set[str] = set()
        after: str | None = None
        while True:
            params = {"limit": 10_000, **({"after": after} if after else {})}
            response = self.call(
                "GET", f"/v1/rag/collections/{collection}/documents", params=params
            )
            if response.status_code == 404:
                return ids
            if response.status_code != 200:
                raise IndexingFailed(f"cannot list documents: {_error_text(response)}")
            body = response.json()
            ids.update(str(d["id"]) for d in body["data"])
            after = body.get("next")
            if not after:
                return ids


def index(
    path: Path,
    collection: str,
    url: str = "http://127.0.0.1:8002",
    *,
    api_key: str | None = None,
    batch_files: int = 16,
    state_dir: Path | None = None,
    progress: bool = True,
    timeout: float = 600.0,
    retries: int = 4,
    reindex: bool = False,
    embedding_model: str | None = None,
) -> IndexReport:
    """Index every .txt/.md/.html/.pdf under ``path`` into ``collection`` at ``url``;
    ``reindex`` rebuilds it (with ``embedding_model``, when given).

    ``state_dir`` defaults to ``index-state`` under ``P2_HOME``.
    """
    if not path.exists():
        raise IndexingFailed(f"{path} does not exist")
    files, unsupported = discover(path)
    report = IndexReport(files=len(files), unsupported=unsupported)
    root = path if path.is_dir() else path.parent
    if state_dir is None:
        state_dir = CoreSettings().home.expanduser() / "index-state"
    state = _State(state_dir, url, collection, root)
    client = _Client(url, api_key, timeout, retries)
    params = {"embedding_model": embedding_model} if embedding_model else {}
    try:
        if reindex:
            client.drop(collection)
            state.done = {}
            state.save()
        elif embedding_model and client.model_of(collection) not in (None, embedding_model):
            raise IndexingFailed(
                f"{collection} is built with the embedding model {client.model_of(collection)}; "
                f"add --reindex to rebuild it with {embedding_model}"
            )
        on_server = client.server_ids(collection)
        todo = []
        for doc_id, file in files:
            if doc_id in on_server and state.done.get(doc_id) == _stamp(file):
                report.skipped += 1
            else:
                todo.append((doc_id, file))
        with Progress(
            TextColumn("[bold]indexing[/bold] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            disable=not progress,
        ) as bar:
            task = bar.add_task(collection, total=len(files), completed=report.skipped)
            for batch in _batches(todo, batch_files):
                _send(client, collection, batch, report, state, params)
                bar.advance(task, len(batch))
    except _Retryable as exc:
        raise IndexingFailed(
            f"stopped after {report.indexed + report.unchanged + report.skipped} of "
            f"{len(files)} files: {exc}; re-run the same command to resume"
        ) from exc
    finally:
        client.http.close()
    return report


def _send(
    client: _Client,
    collection: str,
    batch: list[tuple[str, Path]],
    report: IndexReport,
    state: _State,
    params: dict[str, str],
) -> None:
    parts = [("files", (doc_id, file.read_bytes())) for doc_id, file in batch]
    path = f"/v1/rag/collections/{collection}/documents"
    response = client.call("POST", path, files=parts, params=params)
    if response.status_code == 409:  # the collection's model is not the one asked for
        raise IndexingFailed(_error_text(response))
    if response.status_code != 200:
        if len(batch) > 1:  # find the file the server refuses; send the others
            for item in batch:
                _send(client, collection, [item], report, state, params)
            return
        report.failed[batch[0][0]] = _error_text(response)
        return
    stamps = {doc_id: _stamp(file) for doc_id, file in batch}
    for outcome in response.json()["documents"]:
        if outcome["status"] == Outcome.INDEXED:
            report.indexed += 1
            report.chunks += int(outcome["chunks"])
        else:
            report.unchanged += 1
        state.done[outcome["id"]] = stamps[outcome["id"]]
    state.save()
