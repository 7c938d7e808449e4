"""``GATEWAY_WORKERS=2``: two processes on one port, metrics that add up, a dead worker
replaced, counters that never go backwards."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path

import httpx

from p2.core.litellm_config import config, deployment, write_config
from p2.core.process import free_port, spawn, terminate, wait_healthy
from testkit.mock_openai import ThreadedMock

KEY = "sk-workers"
CHAT = 'p2_gateway_requests_total{route="/v1/chat/completions",status="200"}'


def workers_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children]


def chat_count(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    match = re.search(re.escape(CHAT) + r" (\S+)", text)
    return float(match.group(1)) if match else 0.0


def test_two_workers_share_the_port_and_add_up_their_metrics(
    mocks: tuple[ThreadedMock, ThreadedMock], tmp_path: Path
) -> None:
    primary, _ = mocks
    path = write_config(tmp_path / "c.yaml", config([deployment("chat", primary.url, "chat")]))
    port = free_port()
    proc = spawn(
        [sys.executable, "-m", "gateway", "--config", str(path), "--port", str(port)],
        env={"P2_API_KEYS": KEY, "GATEWAY_WORKERS": "2"},
        log_path=tmp_path / "gateway.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(f"{url}/health/ready", timeout=60, proc=proc)
        deadline = time.monotonic() + 30
        while len(workers_of(proc.pid)) < 2 or not all(
            httpx.get(f"{url}/health/ready").status_code == 200 for _ in range(6)
        ):
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.1)
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        headers = {"Authorization": f"Bearer {KEY}"}
        for _ in range(40):  # a new connection each: the kernel spreads them over both
            with httpx.Client() as client:
                response = client.post(f"{url}/v1/chat/completions", json=body, headers=headers)
                assert response.status_code == 200
        assert chat_count(url) == 40
        victim = workers_of(proc.pid)[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while victim in workers_of(proc.pid) or len(workers_of(proc.pid)) < 2:
            assert time.monotonic() < deadline, "the dead worker was not replaced"
            time.sleep(0.1)
        wait_healthy(f"{url}/health/ready", timeout=30)
        assert all(chat_count(url) == 40 for _ in range(6))  # a dead worker's count stays
    finally:
        terminate(proc, grace=10)
    assert proc.returncode is not None
    assert primary.config.counts["/v1/chat/completions"] == 40
