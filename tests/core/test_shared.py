"""Small shared pieces: atomic writes, SSE framing, LiteLLM configs, shipped files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gateway.config import parse
from p2.core.files import atomic_write, replacing
from p2.core.litellm_config import config, deployment, write_config
from p2.core.shipped import shipped_file
from p2.core.sse import DONE, sse, sse_error


def test_atomic_write_replaces_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "state.json"
    atomic_write(target, "old")
    atomic_write(target, b"new")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


def test_a_failed_build_leaves_the_old_file_and_no_partial(tmp_path: Path) -> None:
    target = tmp_path / "model.bin"
    target.write_text("good")
    with pytest.raises(RuntimeError), replacing(target) as partial:
        partial.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]


def test_sse_events_are_openai_framed() -> None:
    assert sse({"a": 1}) == b'data: {"a":1}\n\n'
    assert DONE == b"data: [DONE]\n\n"
    event = json.loads(sse_error("broke", code="stream_interrupted")[6:])
    assert event == {
        "error": {
            "message": "broke",
            "type": "server_error",
            "param": None,
            "code": "stream_interrupted",
        }
    }


def test_written_configs_are_read_back_by_the_gateway(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "litellm.yaml",
        config(
            [
                deployment("chat", "http://127.0.0.1:9001/v1", "primary", 1),
                deployment("chat", "http://127.0.0.1:9002/v1", "secondary", 2),
            ]
        ),
        header="generated\nfor a test",
    )
    assert path.read_text().startswith("# generated\n# for a test\n")
    groups = parse(yaml.safe_load(path.read_text())).groups()
    assert [(d.api_base, d.model, d.order) for d in groups["chat"]] == [
        ("http://127.0.0.1:9001/v1", "primary", 1),
        ("http://127.0.0.1:9002/v1", "secondary", 2),
    ]


def test_the_shipped_routing_config_is_found_as_package_data() -> None:
    path = shipped_file("litellm.yaml")
    assert set(parse(yaml.safe_load(path.read_text())).groups()) >= {"chat", "code"}
    with pytest.raises(FileNotFoundError, match=r"no file 'nope\.yaml'"):
        shipped_file("nope.yaml")
