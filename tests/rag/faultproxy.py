"""A real TCP proxy that injects network faults: refuse, reset or stall connections.

Modes apply to new connections; switching mode also cuts the connections in
flight, like a network failure would. ``plan`` queues one fault per new
connection before falling back to ``mode``.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections import Counter

from p2.core.process import free_port

MODES = ("pass", "refuse", "reset", "stall")


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.mode = "pass"
        self.plan: list[str] = []
        self.seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._closed = False
        self._listen()

    # -- control ----------------------------------------------------------

    def set_mode(self, mode: str) -> None:
        assert mode in MODES
        with self._lock:
            self.mode = mode
            live, self._live = self._live, set()
        for sock in live:
            _reset(sock)
        if mode == "refuse":
            self._unlisten()
        elif self._listener is None:
            self._listen()

    def close(self) -> None:
        self._closed = True
        self.set_mode("refuse")

    # -- plumbing ---------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _unlisten(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()

    def _next_mode(self) -> str:
        with self._lock:
            mode = self.plan.pop(0) if self.plan else self.mode
            self.seen[mode] += 1
            return mode

    def _accept(self, listener: socket.socket) -> None:
        while not self._closed:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            mode = self._next_mode()
            if mode in ("reset", "refuse"):
                _reset(client)
            elif mode == "stall":
                with self._lock:
                    self._live.add(client)  # held open, never answered
            else:
                threading.Thread(target=self._pipe_pair, args=(client,), daemon=True).start()

    def _pipe_pair(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            _reset(client)
            return
        upstream.settimeout(None)
        with self._lock:
            self._live.update((client, upstream))
        threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
        _pipe(client, upstream)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a crashed peer or a firewall would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()
