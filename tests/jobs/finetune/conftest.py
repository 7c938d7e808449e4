"""Fixtures of the fine-tuning tests: the tiny random GGUF as the chat base, and the
llama.cpp converter fetched once into P2's cache (as a worker fetches it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs.finetune.convert import converter_tree
from testkit.tiny_gguf import write_tiny_gguf
from tests.jobs.helpers import JobStack


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("tiny") / "tiny.gguf")


@pytest.fixture(scope="session")
def converter() -> Path:
    return converter_tree(None, lambda: None)


@pytest.fixture
def ft_stack(stack: JobStack, tiny_gguf: Path, converter: Path) -> Iterator[JobStack]:
    """The job platform's processes with the tiny GGUF as the chat and code base."""
    stack.env.update(
        {
            "CHAT_MODEL_PATH": str(tiny_gguf),
            "CODE_MODEL_PATH": str(tiny_gguf),
            "FINETUNE_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
        }
    )
    yield stack
