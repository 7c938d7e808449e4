"""``p2 up``, ``p2 down``, ``p2 status`` and ``p2 logs``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import start_http_server

from p2.core.process import port_in_use, spawn
from p2.core.settings import CoreSettings
from p2.stack.services import default_stack
from p2.stack.settings import StackSettings
from p2.supervisor.lock import StackLock
from p2.supervisor.spec import ServiceSpec, StackError, with_dependencies
from p2.supervisor.state import Health, Phase, StackState, read_state
from p2.supervisor.supervisor import Supervisor

DETACH_TIMEOUT = 900.0
GIVE_UP_AFTER = 3  # failed starts of one service before --detach reports it


class UpError(RuntimeError):
    """``p2 up`` cannot start the stack; the message says why and what to do."""


def _say(line: str) -> None:
    print(line, flush=True)


def _is_service(pid: int) -> bool:
    """Whether ``pid`` still runs a P2 service (not a recycled pid of something else)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    ours = b"serve" in argv or any(a in (b"jobs", b"jobs.worker") for a in argv)
    ours = ours or (bool(argv) and argv[0].endswith(b"redis-server"))
    return ours and stat.split(") ", 1)[-1][:1] != "Z"


def clean_leftovers(home: Path, grace: float = 10.0) -> list[str]:
    """Stop the services a supervisor that died left running; their names.

    Services die with their supervisor (a parent-death signal), but one that
    ignores SIGTERM, or runs where that signal is not available, would keep its
    port and its model memory, and the next ``p2 up`` could not start.
    """
    state = read_state(home)
    if state is None or StackLock(home).held_elsewhere():
        return []
    left = [s for s in state.services.values() if s.pid and _is_service(s.pid)]
    for service in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(service.pid or 0, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_is_service(s.pid or 0) for s in left):
        time.sleep(0.1)
    for service in left:
        if _is_service(service.pid or 0):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(service.pid or 0, signal.SIGKILL)
    return [s.name for s in left]


def check_can_start(specs: Sequence[ServiceSpec], lock: StackLock, home: Path) -> None:
    if lock.held_elsewhere():
        state = read_state(home)
        pid = state.supervisor_pid if state else "?"
        raise UpError(
            f"P2 is already running (supervisor pid {pid}): "
            "`p2 status` shows it, `p2 down` stops it."
        )
    cleaned = clean_leftovers(home)
    if cleaned:
        _say(f"stopped {', '.join(cleaned)}, left running by a supervisor that died")
    taken = [s for s in specs if port_in_use(s.host, s.port)]
    if taken:
        names = ", ".join(f"port {s.port} ({s.name})" for s in taken)
        raise UpError(
            f"{names} already in use by another program: free it or set the "
            "service's *_PORT variable (docs/configuration.md)."
        )


def endpoint_hint(specs: Sequence[ServiceSpec]) -> str:
    names = {s.name: s for s in specs}
    front = names.get("gateway") or names.get("inference-chat")
    if front is None:  # e.g. --only jobs: no chat endpoint to show
        return "P2 is up: " + ", ".join(f"{s.name} on :{s.port}" for s in specs)
    base = f"http://127.0.0.1:{front.port}/v1"
    keyed = "gateway" in names and StackSettings.from_environ().keyed
    auth = ' -H "Authorization: Bearer $P2_API_KEY"' if keyed else ""
    return (
        f"P2 is up: OpenAI endpoint {base}\n"
        f"  curl -s {base}/chat/completions -H 'content-type: application/json'{auth} \\\n"
        '    -d \'{"model": "chat", "messages": [{"role": "user", '
        '"content": "Hello!"}]}\''
    )


async def _run_foreground(specs: Sequence[ServiceSpec], home: Path) -> None:
    supervisor = Supervisor(specs, home, say=_say)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    metrics_port = StackSettings.from_environ().supervisor_metrics_port
    if metrics_port:
        try:
            start_http_server(metrics_port, addr="127.0.0.1", registry=supervisor.registry)
        except OSError as exc:
            _say(f"! supervisor metrics not served on :{metrics_port}: {exc}")
    started = time.monotonic()
    await supervisor.start()
    healthy = asyncio.ensure_future(supervisor.wait_healthy())
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({healthy, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if healthy.done():
        _say(f"all {len(specs)} services healthy in {time.monotonic() - started:.1f}s")
        _say(endpoint_hint(specs))
        _say("Ctrl-C stops everything.")
    await stopped
    healthy.cancel()
    _say("stopping P2 ...")
    await supervisor.stop()
    _say("P2 stopped.")


def up(*, detach: bool, only: Sequence[str] = ()) -> None:
    core = CoreSettings()
    try:
        specs = default_stack(core)
        if only:
            specs = with_dependencies(specs, only)
    except StackError as exc:
        raise UpError(str(exc)) from exc
    lock = StackLock(core.home)
    check_can_start(specs, lock, core.home)
    if detach:
        _detach(specs, core.home, only)
        return
    if not lock.acquire():
        raise UpError("P2 is already running: `p2 status` shows it.")
    try:
        asyncio.run(_run_foreground(specs, core.home))
    finally:
        lock.release()


def _detach(specs: Sequence[ServiceSpec], home: Path, only: Sequence[str]) -> None:
    log = home / "logs" / "supervisor.log"
    argv = [sys.executable, "-m", "p2", "up", *(["--only", ",".join(only)] if only else [])]
    proc = spawn(argv, log_path=log, die_with_parent=False)  # it outlives `p2 up -d`
    announced: set[str] = set()
    deadline = time.monotonic() + DETACH_TIMEOUT
    started = time.monotonic()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise UpError(f"the supervisor exited with code {proc.returncode}:\n{tail}")
        state = read_state(home)
        if state is not None and state.supervisor_pid == proc.pid:
            for name, service in state.services.items():
                if service.health is Health.HEALTHY and name not in announced:
                    announced.add(name)
                    _say(f"✔ {name} healthy on :{service.port}")
            failing = [
                s
                for s in state.services.values()
                if s.restarts >= GIVE_UP_AFTER and s.health is not Health.HEALTHY
            ]
            if failing:
                names = "; ".join(f"{s.name}: {s.last_error}" for s in failing)
                raise UpError(
                    f"{names}. The supervisor keeps retrying in the background; see "
                    f"`p2 logs {failing[0].name}`, or `p2 down` to stop everything."
                )
            if state.phase is Phase.UP:
                _say(
                    f"all {len(specs)} services healthy in {time.monotonic() - started:.1f}s "
                    f"(supervisor pid {proc.pid}; `p2 down` stops it)"
                )
                _say(endpoint_hint(specs))
                return
        time.sleep(0.25)
    raise UpError(f"P2 did not become healthy in {DETACH_TIMEOUT:.0f}s; see `p2 status`, {log}")


def down(grace: float = 30.0) -> str:
    home = CoreSettings().home
    lock = StackLock(home)
    state = read_state(home)
    if not lock.held_elsewhere() or state is None:
        cleaned = clean_leftovers(home)
        if cleaned:
            return f"P2's supervisor had died; stopped what it left running: {', '.join(cleaned)}."
        return "P2 is not running."
    with contextlib.suppress(ProcessLookupError):
        os.kill(state.supervisor_pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and lock.held_elsewhere():
        time.sleep(0.2)
    if lock.held_elsewhere():  # the supervisor is stuck: take everything down hard
        _kill_all(state)
        return "P2 did not stop in time: killed the supervisor and every service."
    return "P2 stopped."


def _kill_all(state: StackState) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(state.supervisor_pid, signal.SIGKILL)
    for service in state.services.values():
        if service.pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(service.pid, signal.SIGKILL)


def _uptime(since: float | None) -> str:
    if since is None:
        return "-"
    seconds = int(time.time() - since)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def status() -> tuple[str, bool]:
    """The table, and whether every service is healthy."""
    home = CoreSettings().home
    state = read_state(home)
    if state is None or not StackLock(home).held_elsewhere():
        return "P2 is not running.", False
    rows = [("SERVICE", "PID", "PORT", "HEALTH", "RESTARTS", "UPTIME")]
    for service in state.services.values():
        rows.append(
            (
                service.name,
                str(service.pid or "-"),
                str(service.port),
                service.health,
                str(service.restarts),
                _uptime(service.started_at),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.append(f"supervisor pid {state.supervisor_pid}, phase {state.phase}")
    ok = all(s.health is Health.HEALTHY for s in state.services.values())
    return "\n".join(lines), ok


def logs(service: str, follow: bool) -> None:
    home = CoreSettings().home
    path = home / "logs" / f"{service}.log"
    if not path.exists():
        known = sorted(p.stem for p in (home / "logs").glob("*.log"))
        raise UpError(f"no log for {service!r}; known: {', '.join(known) or 'none yet'}")
    with path.open("r", errors="replace") as handle:
        sys.stdout.write(handle.read())
        sys.stdout.flush()
        while follow:
            line = handle.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                time.sleep(0.2)
