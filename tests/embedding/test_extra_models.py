"""Fine-tuned embedding models published by the job service, served on demand by name
beside the base model, and gone once their folder is deleted."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from embedding.app import create_app
from embedding.model import default_model_dir
from embedding.runtime import Runtime
from embedding.service import EmbeddingService
from embedding.settings import Backend, EmbeddingSettings
from p2.core.settings import CoreSettings
from testkit.openai_errors import assert_openai_error

NAME = "ft:embedding:pkgs:job-1"


def _publish(cache: Path, name: str) -> Path:
    """What a fine-tuning job leaves: the model's folder and the marker naming it."""
    folder = cache / "ft" / name.rsplit(":", 1)[-1]
    shutil.copytree(default_model_dir(), folder)
    (folder / "p2-model.json").write_text(json.dumps({"id": name}))
    return folder


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "embedding"


@pytest.fixture
def client(cache: Path, torch_runtime: Runtime, tmp_path: Path) -> Iterator[TestClient]:
    settings = EmbeddingSettings(backend=Backend.TORCH, cache_dir=cache, max_extra_models=1)
    app = create_app(settings, CoreSettings(home=tmp_path), runtime=torch_runtime)
    with TestClient(app) as test_client:
        yield test_client


def _embed(client: TestClient, model: str, text: str = "a fast json parser") -> np.ndarray:
    response = client.post("/v1/embeddings", json={"model": model, "input": text})
    assert response.status_code == 200, response.text
    assert response.json()["model"] == model
    return np.array(response.json()["data"][0]["embedding"])


def test_a_published_model_is_served_by_its_name_and_listed(
    client: TestClient, cache: Path
) -> None:
    before = client.post("/v1/embeddings", json={"model": NAME, "input": "x"})
    assert_openai_error(before, 404, code="model_not_found")
    _publish(cache, NAME)
    listed = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert NAME in listed and "all-MiniLM-L6-v2" in listed
    tuned = _embed(client, NAME)
    base = _embed(client, "all-MiniLM-L6-v2")
    assert np.dot(tuned, base) > 0.999  # the same weights here: the same vectors
    service: EmbeddingService = client.app.state.service  # type: ignore[attr-defined]
    assert service.extra is not None
    assert [s.runtime.model.id for s in service.extra.served] == [NAME]
    other = NAME.replace("pkgs", "other")  # the right folder under another name
    assert_openai_error(client.post("/v1/embeddings", json={"model": other, "input": "x"}), 404)


def test_only_the_newest_models_stay_loaded_and_deleted_ones_are_gone(
    client: TestClient, cache: Path
) -> None:
    first = _publish(cache, NAME)
    second = NAME.replace("job-1", "job-2")
    _publish(cache, second)
    _embed(client, NAME)
    _embed(client, second)
    service: EmbeddingService = client.app.state.service  # type: ignore[attr-defined]
    assert service.extra is not None
    assert [s.runtime.model.id for s in service.extra.served] == [second]  # at most 1
    shutil.rmtree(first)
    response = client.post("/v1/embeddings", json={"model": NAME, "input": "x"})
    assert_openai_error(response, 404, code="model_not_found")
    assert NAME not in [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert client.get(f"/v1/models/{second}").json()["id"] == second
