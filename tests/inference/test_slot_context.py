"""llama-server caps each slot's context at the model's training context: P2 must know."""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.openai_errors import assert_openai_error
from tests.conftest import start_inference, stop
from tests.inference.conftest import require_engine

pytestmark = pytest.mark.llama_server


def test_a_prompt_past_the_real_slot_context_is_400_not_500(tiny_gguf: Path, p2_home: Path) -> None:
    """The tiny model trained on 2048 tokens; CTX_SIZE asks for 4096. A 3000-token prompt
    fits P2's setting but not llama-server's slot: a 400 naming the real limit."""
    require_engine("llama-server")
    server = start_inference(
        p2_home, model=tiny_gguf, engine="llama-server", env={"CHAT_CTX_SIZE": "4096"}
    )
    try:
        with server.client(timeout=30) as client:
            long = client.post("/v1/completions", json={"prompt": "the " * 3000, "max_tokens": 4})
            short = client.post("/v1/completions", json={"prompt": "the " * 100, "max_tokens": 4})
    finally:
        stop(server)
    assert_openai_error(long, 400, code="context_length_exceeded", contains="2048")
    assert short.status_code == 200
