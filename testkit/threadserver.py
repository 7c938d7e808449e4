"""An ASGI app served by uvicorn on a real loopback port, from a background thread."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from p2.core.process import free_port


class ThreadServer:
    """Serve ``app`` on 127.0.0.1 (real TCP) in a daemon thread; ``start`` waits until it is up."""

    def __init__(self, app: Any, port: int | None = None, **options: Any) -> None:
        self.app: Any = app
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings: dict[str, Any] = {"log_level": "warning", "lifespan": "on", **options}
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, **settings)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, timeout: float = 60.0) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    def __enter__(self) -> ThreadServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
