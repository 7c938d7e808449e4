"""Start-up: the model loads in the background, and Hugging Face stays offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from fastapi.testclient import TestClient

from embedding.app import create_app
from embedding.settings import EmbeddingSettings
from p2.core.settings import HF_OFFLINE
from testkit.openai_errors import assert_openai_error


def test_requests_wait_with_503_until_the_model_is_loaded() -> None:
    app = create_app(EmbeddingSettings(model="/nonexistent/model"))
    with TestClient(app) as client:
        for _ in range(600):  # the loader thread fails fast on a missing directory
            health = client.get("/health")
            if health.json().get("error", {}).get("code") == "failed":
                break
        assert_openai_error(health, 503, code="failed", contains="/nonexistent/model")
        response = client.post("/v1/embeddings", json={"input": "x"})
        assert_openai_error(response, 503, code="model_loading")


SCRIPT = """
import json, os, sys
from pathlib import Path
from embedding.app import create_app
from embedding.runtime import load_runtime
from embedding.settings import EmbeddingSettings
names = json.loads(sys.argv[1])
imported = {n: os.environ.get(n) for n in names}
create_app(EmbeddingSettings())
created = {n: os.environ.get(n) for n in names}
try:
    load_runtime(EmbeddingSettings(model=Path("/nonexistent/model")), Path("/nonexistent"))
except FileNotFoundError:
    pass
print(json.dumps([imported, created, {n: os.environ.get(n) for n in names}]))
"""


def test_loading_the_model_keeps_hugging_face_offline_and_importing_changes_nothing() -> None:
    env = {k: v for k, v in os.environ.items() if k not in HF_OFFLINE}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(list(HF_OFFLINE))],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    imported, created, loading = json.loads(out.splitlines()[-1])
    unset = dict.fromkeys(HF_OFFLINE)
    assert imported == unset and created == unset
    assert loading == HF_OFFLINE
