"""Which model is served, and under which names."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from embedding.model import default_model_dir, resolve_model
from embedding.runtime import Runtime, load_runtime
from embedding.settings import Backend, EmbeddingSettings
from p2.core.openai import ModelNotFound
from testkit.openai_errors import assert_openai_error
from tests.embedding.conftest import ClientFactory


def test_any_local_model_directory_is_served_under_its_name(
    client_for: ClientFactory, torch_runtime: Runtime, tmp_path: Path
) -> None:
    local = shutil.copytree(default_model_dir(), tmp_path / "my-minilm")
    runtime = load_runtime(
        EmbeddingSettings(model=local, backend=Backend.TORCH, model_alias="mini"), tmp_path
    )
    assert runtime.model.names == ("my-minilm", "mini")
    with client_for(runtime) as client:
        ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
        body = client.post("/v1/embeddings", json={"model": "mini", "input": "hello"}).json()
        default_name = client.post(
            "/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": "x"}
        )
    assert ids == ["my-minilm", "mini"]
    expected = torch_runtime.embed_texts(["hello"])[0]
    np.testing.assert_allclose(body["data"][0]["embedding"], expected, atol=1e-5)
    assert_openai_error(default_name, 404, code="model_not_found", contains="my-minilm")


def test_a_directory_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="not a sentence-transformers model"):
        resolve_model(tmp_path)


def test_reported_name_can_be_set() -> None:
    info = resolve_model(None, name="minilm")
    assert info.names[0] == "minilm" and "all-MiniLM-L6-v2" in info.names
    assert info.max_seq_length == 256
