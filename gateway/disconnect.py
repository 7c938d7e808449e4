"""Noticing a client that went away, so its backend request is dropped at once.

Once a request's body is read, the server's ``receive`` only returns again
when the client disconnects (or when the response is complete). One small
task waits on it; on a disconnect it runs the current ``on_gone`` action:
cancel the task waiting on the backend (a non-streamed answer, or a stream's
first response head), or drop the stream's upstream connection. Either
closes the backend connection, so the backend stops generating and its slot
is free.

The task starts only once the request has run for ``WATCH_AFTER`` seconds: most
requests are done by then and pay a timer, not a task (a task per request was
a tenth of the gateway's CPU). A client that leaves sooner is noticed at that
point, so its backend works at most that much longer for nobody.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import Receive, Send

CLIENT_CLOSED = 499  # nginx's status for a request its client gave up on; nobody receives it
WATCH_AFTER = 0.1  # seconds before a request's client is watched


async def client_closed(send: Send) -> None:
    """Answer a departed client: the server drops it, the request counts as 499."""
    await send({"type": "http.response.start", "status": CLIENT_CLOSED, "headers": []})
    await send({"type": "http.response.body", "body": b""})


class ClientWatch:
    """Watches one request's client from after its body was read to the end of its response."""

    __slots__ = ("_receive", "_task", "_timer", "_waiter", "gone", "on_gone", "stopped")

    def __init__(self, receive: Receive, after: float = WATCH_AFTER) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._receive = receive
        self.gone = False
        self.stopped = False
        self.on_gone: Callable[[], object] = self._cancel
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = task.get_loop().call_later(after, self._start)

    def _start(self) -> None:
        self._timer = None
        if not self.stopped:
            self._waiter = asyncio.ensure_future(self._wait(self._receive))

    async def _wait(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if not self.stopped:
            self.gone = True
            self.on_gone()

    def _cancel(self) -> None:
        self._task.cancel()

    def claimed(self) -> bool:
        """After a ``CancelledError``: True if it was this watch's (the client left), and
        the task may carry on to finish up; False if someone else cancelled the task."""
        if not self.gone:
            return False
        self._task.uncancel()
        return True

    def stop(self) -> None:
        """The response is complete (or the watch is no longer needed): do nothing more."""
        self.stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
