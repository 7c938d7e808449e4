"""``p2 bench chaos``: a whole keyed stack under mixed load while each service is killed,
hung and restarted, one fault after another.

The stack is ``p2 up --detach`` (``testkit.stack``) with tight supervisor probes and
inference-code on the ``llama-server`` engine (when its binary is there), so a kill -9 of
that parent shows whether llama-server is orphaned. Load, all through the gateway: chat
(the ``chat`` group has two backends, inference-chat then inference-code) streamed and
not, embeddings, RAG retrieval, ``rag/<collection>`` chat streamed, and an indexer that
keeps adding small unique documents with the admin key.

Faults, per service (inference-chat, inference-code, embedding, rag — the owner of the
embedded Qdrant store — and the gateway): kill -9 of its process, a hang (SIGSTOP until
the supervisor's probes notice and it is replaced) and a restart (SIGTERM). Each fault's
window runs from the fault until the service is healthy again (supervisor state), the
load settled and every request then in flight finished; a request belongs to the window
in which it ended.

Measured: failed requests per fault and load kind (none allowed where a redundant path
exists), streams that started but did not end with one finish and ``[DONE]``, every
acknowledged document present with exactly its chunks (nothing partial, nothing
duplicated), processes of this stack left outside the supervisor's tree after each fault
and after ``p2 down``, and recovery times. Last line:
``chaos: client errors = N (of M), broken streams = S, lost or duplicate chunks = C,
orphans = O, worst recovery = T s``.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import os
import random
import signal
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from benchmarks.stats import rounded
from inference.build import find_llama_server
from testkit.stack import ADMIN_KEY, USER_KEY, Stack, running_stack

SERVICES = ("inference-chat", "inference-code", "embedding", "rag", "gateway")
FAULTS = {"kill": signal.SIGKILL, "hang": signal.SIGSTOP, "restart": signal.SIGTERM}
KINDS = ("chat", "chat_stream", "embeddings", "rag_query", "rag_stream", "index")
STREAMS = frozenset({"chat_stream", "rag_stream"})
# Kinds that have no other path while the service is down (everything else must not fail).
NO_REDUNDANCY: Mapping[str, frozenset[str]] = {
    "inference-chat": frozenset(),
    "inference-code": frozenset(),
    "embedding": frozenset({"embeddings", "rag_query", "rag_stream", "index"}),
    "rag": frozenset({"rag_query", "rag_stream", "index"}),
    "gateway": frozenset(KINDS),
}
# Kinds whose first success after the fault is timed: those that go through the service.
AFFECTED: Mapping[str, frozenset[str]] = {
    "inference-chat": frozenset({"chat", "chat_stream", "rag_stream"}),
    "inference-code": frozenset({"chat", "chat_stream", "rag_stream"}),
    **{name: NO_REDUNDANCY[name] for name in ("embedding", "rag", "gateway")},
}
# Streams a fault breaks by its nature: the one front door, or the one RAG relaying them.
INHERENT_BREAKS: Mapping[str, frozenset[str]] = {
    "gateway": STREAMS,
    "rag": frozenset({"rag_stream"}),
}
PROBES = {
    "P2_HEALTH_INTERVAL": "1",
    "P2_HEALTH_TIMEOUT": "1",
    "P2_HEALTH_RETRIES": "2",
    # The deadline to become healthy, not a wait: the tiny GGUFs load in ~2 s, the
    # embedding model in ~15 s on 2 loaded cores.
    "P2_HEALTH_START_PERIOD": "60",
}
# Seconds between request starts per load client (closed loop when slower).
PACE = {
    "chat": 0.5,
    "chat_stream": 0.25,
    "embeddings": 0.5,
    "rag_query": 0.5,
    "rag_stream": 1.0,
    "index": 0.75,
}
STREAM_CLIENTS = 2  # chat streams in flight at once, so a fault meets one mid-way
COLLECTION = "chaos"
RECOVERY_LIMIT = 180.0
ORPHAN_GRACE = 5.0  # a process still there this long after its owner died is left over
QUIET_LIMIT = 90.0
OK, ERROR, BROKEN = "ok", "error", "broken"
VOCABULARY = (
    "gateway", "routes", "every", "request", "healthy", "backend", "while", "supervisor",
    "restarts", "what", "died", "store", "keeps", "each", "document", "whole",
)  # fmt: skip


# ---------------------------------------------------------------- what the client saw


@dataclass(frozen=True)
class Outcome:
    kind: str
    started: float  # monotonic
    ended: float
    verdict: str  # OK, ERROR (no answer, an error status, a bad body) or BROKEN (a stream)
    detail: str = ""


def stream_problem(raw: bytes) -> str | None:
    """None for a complete stream: well-formed events, one id, one finish, no error event,
    one ``[DONE]`` at the end; else what is wrong with it."""
    events = [e.strip() for e in raw.replace(b"\r\n", b"\n").split(b"\n\n") if e.strip()]
    data = []
    for event in events:
        lines = [line for line in event.split(b"\n") if not line.startswith(b":")]
        if not lines:
            continue  # a comment (keep-alive)
        if not all(line.startswith(b"data:") for line in lines):
            return "malformed event"
        data.append(b"\n".join(line[5:].strip() for line in lines))
    if not data or data[-1] != b"[DONE]":
        return "no [DONE] at the end"
    if b"[DONE]" in data[:-1]:
        return "[DONE] more than once"
    ids: set[str] = set()
    finishes = 0
    for item in data[:-1]:
        try:
            payload = orjson.loads(item)
        except orjson.JSONDecodeError:
            return "malformed event"
        if not isinstance(payload, dict):
            return "malformed event"
        if "error" in payload:
            error = payload["error"] if isinstance(payload["error"], dict) else {}
            return f"error event ({error.get('code') or error.get('type') or 'no code'})"
        if "id" in payload:
            ids.add(str(payload["id"]))
        for choice in payload.get("choices") or []:
            if isinstance(choice, dict) and choice.get("finish_reason"):
                finishes += 1
    if len(ids) > 1:
        return f"{len(ids)} different ids"
    if finishes != 1:
        return f"{finishes} finish reasons"
    return None


# ---------------------------------------------------------------- windows


@dataclass(frozen=True)
class Window:
    """From ``start`` (a fault, or the start of the load) until the next window begins."""

    name: str
    start: float
    service: str | None = None
    fault: str | None = None


def attribute(outcomes: Iterable[Outcome], windows: Sequence[Window]) -> dict[str, list[Outcome]]:
    """Each outcome to the window that had begun last when it ended (the first if none)."""
    starts = [w.start for w in windows]
    result: dict[str, list[Outcome]] = {w.name: [] for w in windows}
    for outcome in outcomes:
        index = max(bisect.bisect_right(starts, outcome.ended) - 1, 0)
        result[windows[index].name].append(outcome)
    return result


def first_ok(outcomes: Iterable[Outcome], kind: str, since: float) -> float | None:
    """Seconds from ``since`` to the end of the first success of ``kind`` started after it."""
    ends = [o.ended for o in outcomes if o.kind == kind and o.verdict == OK and o.started >= since]
    return min(ends) - since if ends else None


def window_report(
    window: Window, mine: Sequence[Outcome], everything: Sequence[Outcome]
) -> dict[str, Any]:
    """Counts per kind, failures where a redundant path exists, streams broken inherently."""
    service = window.service or ""
    exposed = NO_REDUNDANCY.get(service, frozenset())
    inherent = INHERENT_BREAKS.get(service, frozenset())
    kinds: dict[str, dict[str, int]] = {}
    for kind in KINDS:
        of_kind = [o for o in mine if o.kind == kind]
        kinds[kind] = {
            "requests": len(of_kind),
            "errors": sum(1 for o in of_kind if o.verdict == ERROR),
            "broken": sum(1 for o in of_kind if o.verdict == BROKEN),
        }
    failed = [o for o in mine if o.verdict != OK]
    broken = [o for o in failed if o.verdict == BROKEN]
    samples: dict[str, int] = defaultdict(int)
    for o in failed:
        samples[f"{o.kind}: {o.detail}"] += 1
    report: dict[str, Any] = {
        "requests": len(mine),
        "failed": len(failed),
        "failed_where_redundant": sum(1 for o in failed if o.kind not in exposed),
        "failed_without_redundant_path": sum(1 for o in failed if o.kind in exposed),
        "broken_streams": len(broken),
        "broken_streams_inherent": sum(1 for o in broken if o.kind in inherent),
        "by_kind": kinds,
        "failures": dict(sorted(samples.items(), key=lambda item: -item[1])[:12]),
    }
    if window.service is not None:
        report["first_ok_s"] = {
            kind: _round(first_ok(everything, kind, window.start))
            for kind in KINDS
            if kind in AFFECTED[service]
        }
    return report


def _round(value: float | None) -> float | None:
    return None if value is None else rounded(value, 2)


# ---------------------------------------------------------------- chunk accounting


@dataclass(frozen=True)
class SentDoc:
    id: str
    marker: str  # a word only this document holds, in every sentence, so in every chunk
    request: int
    acked_chunks: int | None  # the chunks a 200 answer named; None: no 200 for it


@dataclass
class ChunkAudit:
    acked_documents: int = 0
    acked_chunks: int = 0
    unacked_documents: int = 0
    unacked_present_whole: int = 0
    lost_chunks: int = 0  # acknowledged, not retrievable
    duplicate_chunks: int = 0  # a chunk index twice, or one beyond what was acknowledged
    partial_documents: int = 0  # present with some of their chunks only
    partial_chunks: int = 0  # chunks missing or extra in those
    manifest_mismatches: int = 0  # listed chunk count differs from the acknowledged one
    unknown_documents: int = 0  # listed, never sent
    unknown_chunks: int = 0
    dead_chunk_points: int = 0  # |chunk points stored - chunks the manifests name|
    torn_requests: int = 0  # a failed request with some of its documents stored only
    listed_documents: int = 0
    collection: dict[str, int] = field(default_factory=dict)

    @property
    def bad_chunks(self) -> int:
        return (
            self.lost_chunks
            + self.duplicate_chunks
            + self.partial_chunks
            + self.unknown_chunks
            + self.dead_chunk_points
        )


def audit_chunks(
    sent: Sequence[SentDoc],
    manifests: Mapping[str, int],
    found: Mapping[str, Sequence[int]],
    collection: Mapping[str, int],
) -> ChunkAudit:
    """Compare what the indexer was told with what the store lists and retrieval returns.

    ``manifests``: document id -> chunk count, from RAG's document listing; ``found``:
    document id -> the chunk indexes retrieval returned for its marker; ``collection``:
    RAG's ``documents`` and ``chunks`` counts (points actually stored).
    """
    result = ChunkAudit(listed_documents=len(manifests), collection=dict(collection))
    requests: dict[int, list[bool]] = defaultdict(list)
    for doc in sent:
        indexes = list(found.get(doc.id, ()))
        distinct = set(indexes)
        repeats = len(indexes) - len(distinct)
        if doc.acked_chunks is not None:
            expected = set(range(doc.acked_chunks))
            result.acked_documents += 1
            result.acked_chunks += doc.acked_chunks
            result.lost_chunks += len(expected - distinct)
            result.duplicate_chunks += repeats + len(distinct - expected)
            if manifests.get(doc.id) != doc.acked_chunks:
                result.manifest_mismatches += 1
            continue
        result.unacked_documents += 1
        listed = manifests.get(doc.id)
        present = listed is not None or bool(indexes)
        requests[doc.request].append(present)
        if not present:
            continue
        whole = set(range(listed or 0))
        if listed and distinct == whole and not repeats:
            result.unacked_present_whole += 1
        else:
            result.partial_documents += 1
            result.partial_chunks += len(whole ^ distinct) + repeats
    sent_ids = {doc.id for doc in sent}
    for doc_id, chunks in manifests.items():
        if doc_id not in sent_ids:
            result.unknown_documents += 1
            result.unknown_chunks += chunks
    result.torn_requests = sum(1 for flags in requests.values() if any(flags) and not all(flags))
    stored = collection.get("chunks", 0)
    result.dead_chunk_points = abs(stored - sum(manifests.values()))
    return result


# ---------------------------------------------------------------- processes


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    argv: str


def stack_processes(home: Path) -> dict[int, Proc]:
    """Live processes started for this stack: ``P2_HOME=home`` in their environment
    (services, their children such as llama-server and Celery's, Redis, the supervisor)."""
    needle = f"P2_HOME={home}".encode()
    found: dict[int, Proc] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if stat[0] != "Z":
            found[int(entry.name)] = Proc(int(entry.name), int(stat[1]), argv.strip())
    return found


def outside_tree(procs: Mapping[int, Proc], root: int | None) -> list[Proc]:
    """The processes that do not descend from ``root`` (all of them when it is None)."""
    inside: set[int] = set()
    if root is not None:
        inside.add(root)
        changed = True
        while changed:
            grown = {p.pid for p in procs.values() if p.ppid in inside} | inside
            changed, inside = grown != inside, grown
    return [p for p in procs.values() if p.pid not in inside]


async def leftovers(home: Path, root: int | None, grace: float = ORPHAN_GRACE) -> list[Proc]:
    """Processes of the stack outside the supervisor's tree that stay past ``grace``;
    killed (they are counted once)."""
    deadline = time.monotonic() + grace
    while True:
        left = outside_tree(await asyncio.to_thread(stack_processes, home), root)
        if not left or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)
    for proc in left:
        _kill_hard(proc.pid)
    return left


def _kill_hard(pid: int) -> None:
    for sig in (signal.SIGCONT, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return


def _argv(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return None


def _alive(pid: int, argv: str | None) -> bool:
    """``pid`` still runs ``argv`` (not a recycled pid) and is no zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and _argv(pid) == argv


# ---------------------------------------------------------------- load


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(VOCABULARY) for _ in range(n))


def marker(n: int) -> str:
    """A word no other document holds, of consonants only so BM25's stemmer keeps it."""
    letters = "bcdfghjkmnpqrtvwxz"
    digits = ""
    for _ in range(5):
        n, rest = divmod(n, len(letters))
        digits += letters[rest]
    return "zq" + digits


@dataclass(frozen=True)
class Batch:
    """One indexing request's documents; ``retried``: this is its second try."""

    request: int
    documents: list[dict[str, Any]]
    markers: dict[str, str]
    retried: bool = False


class Load:
    """Closed-loop clients of every kind through the gateway, each outcome recorded."""

    def __init__(self, client: httpx.AsyncClient, gateway: str, seed: int = 7) -> None:
        self.client = client
        self.gateway = gateway
        self.outcomes: list[Outcome] = []
        self.sent: list[SentDoc] = []
        self.in_flight: dict[int, float] = {}
        self.stopping = False
        self._rng = random.Random(seed)
        self._tokens = itertools.count()
        self._docs = itertools.count()
        self._requests = itertools.count()
        self._retry: list[Batch] = []
        self._indexing_works = True
        self._user = {"Authorization": f"Bearer {USER_KEY}"}
        self._admin = {"Authorization": f"Bearer {ADMIN_KEY}"}

    def tasks(self) -> list[asyncio.Task[None]]:
        calls: list[tuple[str, Callable[[], Awaitable[tuple[str, str]]]]] = [
            ("chat", self.chat),
            *[("chat_stream", self.chat_stream)] * STREAM_CLIENTS,
            ("embeddings", self.embeddings),
            ("rag_query", self.rag_query),
            ("rag_stream", self.rag_stream),
            ("index", self.index),
        ]
        return [asyncio.create_task(self._loop(kind, call)) for kind, call in calls]

    async def quiet(self, before: float, limit: float = QUIET_LIMIT) -> None:
        """Wait until every request started before ``before`` has finished."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if all(s >= before for s in self.in_flight.values()):
                return
            await asyncio.sleep(0.1)

    async def _loop(self, kind: str, call: Callable[[], Awaitable[tuple[str, str]]]) -> None:
        while not self.stopping:
            token = next(self._tokens)
            started = self.in_flight[token] = time.monotonic()
            try:
                verdict, detail = await call()
            except httpx.HTTPError as exc:
                verdict, detail = ERROR, type(exc).__name__
            finally:
                del self.in_flight[token]
            self.outcomes.append(Outcome(kind, started, time.monotonic(), verdict, detail))
            await asyncio.sleep(max(0.0, started + PACE[kind] - time.monotonic()))

    async def _post(self, path: str, body: dict[str, Any], admin: bool = False) -> httpx.Response:
        headers = self._admin if admin else self._user
        return await self.client.post(self.gateway + path, json=body, headers=headers)

    async def _stream(self, body: dict[str, Any]) -> tuple[str, str]:
        url = self.gateway + "/v1/chat/completions"
        async with self.client.stream("POST", url, json=body, headers=self._user) as response:
            if response.status_code != 200:
                await response.aread()
                return ERROR, _status(response)
            raw = b""
            try:
                async for piece in response.aiter_bytes():
                    raw += piece
            except httpx.HTTPError as exc:
                return BROKEN, f"cut off ({type(exc).__name__})"
        problem = stream_problem(raw)
        return (BROKEN, problem) if problem else (OK, "")

    async def chat(self) -> tuple[str, str]:
        body = {"model": "chat", "messages": self._question(), "max_tokens": 24}
        response = await self._post("/v1/chat/completions", body)
        if response.status_code != 200:
            return ERROR, _status(response)
        choice = response.json()["choices"][0]
        ok = isinstance(choice["message"]["content"], str) and choice["finish_reason"]
        return (OK, "") if ok else (ERROR, "incomplete answer")

    async def chat_stream(self) -> tuple[str, str]:
        body = {"model": "chat", "messages": self._question(), "max_tokens": 96, "stream": True}
        return await self._stream(body)

    async def rag_stream(self) -> tuple[str, str]:
        body = {"model": f"rag/{COLLECTION}", "messages": self._question(), "max_tokens": 24}
        return await self._stream({**body, "stream": True})

    async def embeddings(self) -> tuple[str, str]:
        body = {"model": "all-MiniLM-L6-v2", "input": [_words(self._rng, 12)]}
        response = await self._post("/v1/embeddings", body)
        if response.status_code != 200:
            return ERROR, _status(response)
        data = response.json()["data"]
        return (OK, "") if len(data) == 1 and data[0]["embedding"] else (ERROR, "no vector")

    async def rag_query(self) -> tuple[str, str]:
        body = {"collection": COLLECTION, "query": _words(self._rng, 6), "top_k": 4}
        response = await self._post("/v1/rag/query", body)
        if response.status_code != 200:
            return ERROR, _status(response)
        results = response.json()["results"]
        return (OK, "") if results else (ERROR, "no results")

    async def index(self) -> tuple[str, str]:
        """Two new documents per request. Every other failed request is sent again once
        indexing works again (a retry over a half-done write); the rest are abandoned,
        and their documents must then be absent or whole."""
        retry = self._retry and self._indexing_works
        batch = self._retry.pop(0) if retry else self._new_batch()
        body = {"documents": batch.documents}
        try:
            response = await self._post(f"/v1/rag/collections/{COLLECTION}/documents", body, True)
        except httpx.HTTPError:
            self._failed(batch)
            raise
        if response.status_code != 200:
            self._failed(batch)
            return ERROR, _status(response)
        self._indexing_works = True
        chunks = {d["id"]: int(d["chunks"]) for d in response.json()["documents"]}
        for doc in batch.documents:
            self.sent.append(
                SentDoc(doc["id"], batch.markers[doc["id"]], batch.request, chunks[doc["id"]])
            )
        return OK, ""

    def record_unacked(self) -> None:
        """Requests still waiting for their retry at the end count as abandoned."""
        for batch in self._retry:
            self._abandon(batch)
        self._retry.clear()

    def _failed(self, batch: Batch) -> None:
        self._indexing_works = False
        if batch.retried or batch.request % 2:
            self._abandon(batch)
        else:
            self._retry.append(Batch(batch.request, batch.documents, batch.markers, retried=True))

    def _abandon(self, batch: Batch) -> None:
        for doc in batch.documents:
            self.sent.append(SentDoc(doc["id"], batch.markers[doc["id"]], batch.request, None))

    def _new_batch(self) -> Batch:
        documents, markers = [], {}
        for _ in range(2):
            n = next(self._docs)
            doc_id, word = f"doc-{n:06d}", marker(n)
            sentences = self._rng.randint(2, 24)  # 1 to 3 chunks of 800 characters
            text = " ".join(f"Note {word}: {_words(self._rng, 9)}." for _ in range(sentences))
            documents.append({"id": doc_id, "text": text, "metadata": {"n": n}})
            markers[doc_id] = word
        return Batch(next(self._requests), documents, markers)

    def _question(self) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"What does {_words(self._rng, 5)} mean?"}]


def _status(response: httpx.Response) -> str:
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    code = error.get("code") if isinstance(error, dict) else None
    return f"HTTP {response.status_code}" + (f" {code}" if code else "")


# ---------------------------------------------------------------- faults


@dataclass
class FaultResult:
    window: Window
    healthy_at: float | None  # wall clock, from the supervisor's state
    fault_at: float  # wall clock
    supervisor_said: str
    lingering: bool  # the stopped process was still there once replaced
    orphans: list[Proc]
    llama_server_left: list[Proc] | None  # only for inference-code on llama-server

    @property
    def recovery_s(self) -> float | None:
        return None if self.healthy_at is None else self.healthy_at - self.fault_at


def _services(stack: Stack) -> dict[str, Any]:
    services: dict[str, Any] = stack.state()["services"]  # type: ignore[assignment]
    return services


async def _replaced(stack: Stack, service: str, old_pid: int) -> tuple[float | None, str]:
    """When the supervisor had a new process of ``service`` healthy, and why it restarted."""
    deadline = time.monotonic() + RECOVERY_LIMIT
    said = ""
    while time.monotonic() < deadline:
        state = _services(stack)[service]
        said = state.get("last_error") or said
        if state["pid"] != old_pid and state["health"] == "healthy":
            return float(state["healthy_at"]), said
        await asyncio.sleep(0.1)
    return None, said


async def inject(stack: Stack, load: Load, service: str, fault: str, settle: float) -> FaultResult:
    """One fault, then wait for the replacement, the load to settle and leftovers to show."""
    old_pid = int(_services(stack)[service]["pid"])
    old_argv = _argv(old_pid)
    children = [
        p
        for p in (await asyncio.to_thread(stack_processes, stack.home)).values()
        if p.ppid == old_pid and "llama-server" in p.argv
    ]
    window = Window(f"{service}/{fault}", time.monotonic(), service, fault)
    fault_at = time.time()
    os.kill(old_pid, FAULTS[fault])
    healthy_at, said = await _replaced(stack, service, old_pid)
    lingering = fault == "hang" and _alive(old_pid, old_argv)
    if lingering:
        _kill_hard(old_pid)
    await asyncio.sleep(settle)
    await load.quiet(before=time.monotonic())
    root = int(stack.state()["supervisor_pid"])  # type: ignore[call-overload]
    orphans = await leftovers(stack.home, root)
    llama_left = [o for o in orphans if o.pid in {c.pid for c in children}] if children else None
    return FaultResult(window, healthy_at, fault_at, said, lingering, orphans, llama_left)


async def warm_up(load: Load, limit: float = 120.0) -> None:
    """Every kind of request answered once (the first indexing creates the collection)."""
    calls = (
        load.index,
        load.chat,
        load.chat_stream,
        load.embeddings,
        load.rag_query,
        load.rag_stream,
    )
    deadline = time.monotonic() + limit
    for call in calls:
        verdict, detail = ERROR, ""
        while verdict != OK:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the stack does not answer {call.__name__}: {detail}")
            try:
                verdict, detail = await call()
            except httpx.HTTPError as exc:
                verdict, detail = ERROR, type(exc).__name__
            if verdict != OK:
                await asyncio.sleep(1)


async def live_audit(load: Load) -> ChunkAudit:
    """RAG's listing (manifest chunk counts), its collection counts (points stored) and a
    sparse query for each document's marker (the chunks a reader gets)."""
    base = f"{load.gateway}/v1/rag/collections/{COLLECTION}"
    headers = {"Authorization": f"Bearer {USER_KEY}"}
    manifests: dict[str, int] = {}
    after: str | None = None
    while True:
        params = {"limit": "100", **({"after": after} if after else {})}
        page = (await load.client.get(f"{base}/documents", params=params, headers=headers)).json()
        manifests.update({d["id"]: int(d["chunks"]) for d in page["data"]})
        after = page["next"]
        if not after:
            break
    counts = (await load.client.get(base, headers=headers)).json()
    found: dict[str, list[int]] = {}
    gate = asyncio.Semaphore(4)

    async def look(doc: SentDoc) -> None:
        body = {"collection": COLLECTION, "query": doc.marker, "mode": "sparse", "top_k": 100}
        async with gate:
            response = await load.client.post(
                f"{load.gateway}/v1/rag/query", json=body, headers=headers
            )
        response.raise_for_status()
        found[doc.id] = [
            int(r["chunk_index"]) for r in response.json()["results"] if r["document_id"] == doc.id
        ]

    await asyncio.gather(*(look(doc) for doc in load.sent))
    collection = {"documents": int(counts["documents"]), "chunks": int(counts["chunks"])}
    return audit_chunks(load.sent, manifests, found, collection)


# ---------------------------------------------------------------- the run


@dataclass
class Chaos:
    outcomes: list[Outcome]
    windows: list[Window]
    faults: list[FaultResult]
    audit: ChunkAudit
    restarts: dict[str, int]


async def chaos(
    stack: Stack, baseline: float, settle: float, services: Sequence[str], faults: Sequence[str]
) -> Chaos:
    timeout = httpx.Timeout(60.0, connect=5.0)
    async with httpx.AsyncClient(
        timeout=timeout, limits=httpx.Limits(max_connections=64)
    ) as client:
        load = Load(client, stack.url("gateway"))
        await warm_up(load)
        windows = [Window("baseline", time.monotonic())]
        tasks = load.tasks()
        await asyncio.sleep(baseline)
        results = []
        for service in services:
            for fault in faults:
                result = await inject(stack, load, service, fault, settle)
                windows.append(result.window)
                results.append(result)
                recovery = result.recovery_s
                print(
                    f"{result.window.name}: healthy again after "
                    f"{'-' if recovery is None else f'{recovery:.1f}'} s",
                    flush=True,
                )
        windows.append(Window("after", time.monotonic()))
        await asyncio.sleep(baseline)
        load.stopping = True
        await asyncio.gather(*tasks)
        load.record_unacked()
        audit = await live_audit(load)
    restarts = {name: int(s["restarts"]) for name, s in _services(stack).items()}
    return Chaos(load.outcomes, windows, results, audit, restarts)


def report(result: Chaos, *, faults: Sequence[str], after_down: list[Proc]) -> dict[str, Any]:
    by_window = attribute(result.outcomes, result.windows)
    windows = {w.name: window_report(w, by_window[w.name], result.outcomes) for w in result.windows}
    fault_reports = []
    for fault in result.faults:
        name = fault.window.name
        fault_reports.append(
            {
                "fault": name,
                "recovery_s": _round(fault.recovery_s),
                "supervisor_said": fault.supervisor_said,
                **windows.pop(name),
                "orphans": [p.argv for p in fault.orphans],
                **({"lingering_stopped_process": fault.lingering} if "hang" in name else {}),
                **(
                    {"llama_server_left": [p.argv for p in fault.llama_server_left]}
                    if fault.llama_server_left is not None
                    else {}
                ),
            }
        )
    faulted = {f.window.service for f in result.faults}
    unplanned = {
        name: count - (len(faults) if name in faulted else 0)
        for name, count in result.restarts.items()
        if count != (len(faults) if name in faulted else 0)
    }
    failed = [o for o in result.outcomes if o.verdict != OK]
    broken = [o for o in failed if o.verdict == BROKEN]
    every = list(windows.values()) + fault_reports
    return {
        "requests": len(result.outcomes),
        "client_errors": len(failed),
        "client_errors_where_redundant": sum(w["failed_where_redundant"] for w in every),
        "client_errors_without_redundant_path": sum(
            w["failed_without_redundant_path"] for w in every
        ),
        "broken_streams": len(broken),
        "broken_streams_inherent": sum(w["broken_streams_inherent"] for w in every),
        "inherent": {
            "gateway": "the one front door: a stream in flight when the gateway dies, hangs "
            "or stops cannot be continued by anyone, and new requests have nowhere to go",
            "rag": "rag/<collection> streams are relayed by the one RAG process, and RAG's "
            "retrieval and indexing have no second server",
            "embedding": "one embedding server: embeddings, and RAG's query and document "
            "embeddings, wait for it (RAG retries with backoff, then answers 503)",
        },
        "lost_or_duplicate_chunks": result.audit.bad_chunks,
        "chunks": {
            **asdict(result.audit),
            "method": "per document: the chunk count of RAG's listing (its manifest) against "
            "the 200 answer, and the chunk indexes a sparse /v1/rag/query for a word only "
            "that document holds (in every sentence) returns; per collection: chunk points "
            "stored (GET collection) against the manifests' sum",
        },
        "orphans_after_faults": sum(len(f.orphans) for f in result.faults),
        "lingering_stopped_processes": sum(1 for f in result.faults if f.lingering),
        "left_after_down": [p.argv for p in after_down],
        "unplanned_restarts": unplanned,
        "faults": fault_reports,
        **windows,
    }


def compact_json(value: Any, depth: int = 0) -> str:
    """JSON with an object or list of plain values on one line: one line per count table."""
    pad = " " * (depth + 1)
    if isinstance(value, dict) and any(isinstance(v, dict | list) and v for v in value.values()):
        items = (f"{pad}{json.dumps(k)}: {compact_json(v, depth + 1)}" for k, v in value.items())
        return "{\n" + ",\n".join(items) + "\n" + pad[:-1] + "}"
    if isinstance(value, list) and any(isinstance(v, dict | list) and v for v in value):
        items = (pad + compact_json(v, depth + 1) for v in value)
        return "[\n" + ",\n".join(items) + "\n" + pad[:-1] + "]"
    return json.dumps(value)


def run(
    *,
    baseline: float = 10.0,
    settle: float = 3.0,
    services: Sequence[str] = SERVICES,
    faults: Sequence[str] = tuple(FAULTS),
) -> dict[str, Any]:
    """Start a stack, run the faults under load, audit, stop; print JSON and the summary."""
    unknown = [s for s in services if s not in SERVICES] + [f for f in faults if f not in FAULTS]
    if unknown:
        raise ValueError(f"unknown service or fault: {', '.join(unknown)}")
    begun = time.monotonic()
    configured = os.environ.get("LLAMA_SERVER_BIN")
    binary = find_llama_server(Path(configured) if configured else None)
    extra = dict(PROBES)
    if binary is not None:
        extra |= {"CODE_ENGINE": "llama-server", "LLAMA_SERVER_BIN": str(binary)}
    with tempfile.TemporaryDirectory(prefix="p2-bench-chaos-") as tmp:
        home = Path(tmp)
        with running_stack(home, **extra) as stack:
            stack_up_s = time.monotonic() - begun
            result = asyncio.run(chaos(stack, baseline, settle, services, faults))
        after_down = asyncio.run(leftovers(home, None, grace=10.0))
    summary = report(result, faults=faults, after_down=after_down)
    summary["setup"] = {
        "probes": PROBES,
        "inference_code_engine": "llama-server" if binary else "llama-cpp",
        "llama_server_orphan_check": str(binary) if binary else "skipped: no llama-server binary",
        "pace_s": PACE,
        "stream_clients": STREAM_CLIENTS,
        "stack_up_s": rounded(stack_up_s, 1),
    }
    summary["duration_s"] = rounded(time.monotonic() - begun, 1)
    recoveries = [f.recovery_s for f in result.faults]
    worst = max((r if r is not None else RECOVERY_LIMIT for r in recoveries), default=0.0)
    orphans = (
        summary["orphans_after_faults"] + summary["lingering_stopped_processes"] + len(after_down)
    )
    print(compact_json(summary))
    print(
        f"chaos: client errors = {summary['client_errors']} (of {summary['requests']}), "
        f"broken streams = {summary['broken_streams']}, "
        f"lost or duplicate chunks = {summary['lost_or_duplicate_chunks']}, "
        f"orphans = {orphans}, worst recovery = {worst:.1f} s"
    )
    return summary
