"""Text extraction off the event loop: PDF and HTML in worker processes that can be killed.

A hostile PDF can make a parser loop or allocate for as long as it likes; a
thread cannot be stopped, a process can. ``RAG_WORKERS`` processes (started on
first use, from a forkserver, so they inherit none of the service's threads)
each parse one file at a time; one that has not answered within
``RAG_EXTRACT_TIMEOUT`` is killed and replaced, and the file is refused. Plain
text is only decoded, in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from anyio import CapacityLimiter, to_thread

from p2.core.process import die_with_parent
from rag.errors import ExtractionError, ExtractionTimeout, TooManyPages
from rag.extract import extract, needs_worker

Reply = tuple[str, str, str]  # (outcome, text or message, detail)
STARTUP_TIMEOUT = 60.0  # seconds a new worker may take to import its parsers
# What a parser's bug on a strange file raises; anything else ends the worker, which the
# service notices (the pipe closes) and replaces.
_PARSER_BUGS = (
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    AssertionError,
    ArithmeticError,
    RuntimeError,
)


def serve(conn: Connection) -> None:
    """A worker's loop: (file name, bytes, page limit) in, (outcome, text, detail) out."""
    # the kernel kills this worker when its parent (the forkserver, which exits with the
    # service) dies, even in the middle of a file: no parser outlives RAG
    die_with_parent(signal.SIGKILL)
    conn.send(("ready", "", ""))  # imports done: a file's time limit starts after this
    while True:
        try:
            filename, data, max_pages = conn.recv()
        except EOFError:
            return
        reply: Reply
        try:
            reply = ("ok", extract(filename, data, max_pages), "")
        except TooManyPages as exc:
            reply = ("too_many_pages", str(exc), "")
        except ExtractionError as exc:
            reply = ("error", str(exc), exc.detail)
        except _PARSER_BUGS as exc:  # this file's problem, not the worker's
            reply = ("error", "its text could not be extracted", repr(exc))
        conn.send(reply)


class _Worker:
    """One worker process and the pipe to it."""

    def __init__(self, context: multiprocessing.context.ForkServerContext) -> None:
        self.conn, child = context.Pipe()
        self.process: BaseProcess = context.Process(
            target=serve, args=(child,), name="rag-extract", daemon=True
        )
        self.process.start()
        child.close()
        # Starting (imports) is not a file's work: wait for it apart from RAG_EXTRACT_TIMEOUT.
        try:
            ready = self.conn.poll(STARTUP_TIMEOUT) and self.conn.recv()[0] == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.kill()
            raise ExtractionError("the text extraction worker did not start")

    def run(self, filename: str, data: bytes, max_pages: int, timeout: float) -> Reply:
        """Blocking: one file through the worker; the worker is killed if it overruns."""
        try:
            self.conn.send((filename, data, max_pages))
            if not self.conn.poll(timeout):
                self.kill()
                raise ExtractionTimeout(
                    f"extracting its text took longer than {timeout:g} s (RAG_EXTRACT_TIMEOUT)"
                )
            reply: Reply = self.conn.recv()
        except (EOFError, OSError) as exc:  # killed from outside, out of memory, crashed
            self.kill()
            raise ExtractionError(
                "the text extraction worker stopped while reading it", detail=repr(exc)
            ) from exc
        return reply

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def kill(self) -> None:
        self.process.kill()
        self.process.join(5)
        self.conn.close()


class Extractor:
    """Bounded, killable text extraction shared by every upload of the service."""

    def __init__(self, *, workers: int, timeout: float, max_pages: int) -> None:
        self.timeout = timeout
        self.max_pages = max_pages
        self._context = multiprocessing.get_context("forkserver")
        self._idle: list[_Worker] = []
        self._slots = asyncio.Semaphore(workers)
        self._threads = CapacityLimiter(workers)

    async def text(self, filename: str, data: bytes) -> str:
        """The text of one file; :class:`ExtractionError` (or a subclass) if it has none."""
        if not needs_worker(filename):
            return await to_thread.run_sync(extract, filename, data, limiter=self._threads)
        async with self._slots:
            worker = await self._take()
            # Raises with the worker dead (killed on a timeout): the next call starts another.
            outcome, text, detail = await to_thread.run_sync(
                worker.run, filename, data, self.max_pages, self.timeout, limiter=self._threads
            )
            self._idle.append(worker)
        if outcome == "too_many_pages":
            raise TooManyPages(text)
        if outcome != "ok":
            raise ExtractionError(text, detail=detail)
        return text

    async def _take(self) -> _Worker:
        while self._idle:
            worker = self._idle.pop()
            if worker.alive:
                return worker
            worker.kill()
        return await to_thread.run_sync(_Worker, self._context, limiter=self._threads)

    def close(self) -> None:
        for worker in self._idle:
            with contextlib.suppress(OSError):
                worker.kill()
        self._idle.clear()
