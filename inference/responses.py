"""HTTP response helpers for generation: streams that always clean up, and disconnects.

A generation holds a model slot until its generator is closed; these make sure
it is closed whether the client reads to the end, hangs up, or never reads.
(SSE framing itself is ``p2.core.sse``; stop strings are ``stop_scanner``.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable
from typing import Any, TypeVar

import anyio
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

T = TypeVar("T")


class ClosingStreamingResponse(StreamingResponse):
    """A stream whose generator is always closed, even if the client never read it.

    Closing runs the generator's ``finally``, which frees the model slot.
    """

    def __init__(self, body: AsyncGenerator[bytes, None], **kwargs: Any) -> None:
        super().__init__(body, media_type="text/event-stream", **kwargs)
        self._generator = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._generator.aclose()


class ClientGone(Exception):
    """The client disconnected before the answer was ready."""


async def until_disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, cancel it and raise ``ClientGone``."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(until_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
            raise ClientGone
    return task.result()
