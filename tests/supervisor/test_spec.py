from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from p2.core.settings import CoreSettings
from p2.supervisor.spec import Probe, ServiceSpec, StackError, start_order, with_dependencies
from p2.supervisor.stack import default_stack


def _spec(name: str, *deps: str) -> ServiceSpec:
    return ServiceSpec(name, ("true",), 1, depends_on=deps)


def test_dependencies_start_first() -> None:
    specs = [
        _spec("rag", "gateway"),
        _spec("gateway", "chat", "code"),
        _spec("chat"),
        _spec("code"),
    ]
    order = [s.name for s in start_order(specs)]
    assert order.index("gateway") > order.index("chat")
    assert order.index("gateway") > order.index("code")
    assert order[-1] == "rag"


def test_circular_and_unknown_dependencies_are_refused() -> None:
    with pytest.raises(StackError, match="circular"):
        start_order([_spec("a", "b"), _spec("b", "a")])
    with pytest.raises(StackError, match="unknown service nope"):
        start_order([_spec("a", "nope")])


def test_only_brings_its_dependencies_along() -> None:
    specs = [_spec("rag", "gateway"), _spec("gateway", "chat"), _spec("chat"), _spec("code")]
    assert [s.name for s in with_dependencies(specs, ["gateway"])] == ["chat", "gateway"]
    with pytest.raises(StackError, match="unknown service typo"):
        with_dependencies(specs, ["typo"])


def test_probe_defaults_and_per_service_override() -> None:
    assert Probe() == Probe(interval=60, timeout=30, start_period=60, retries=3)
    env = {"P2_HEALTH_INTERVAL": "5", "P2_INFERENCE_CHAT_HEALTH_INTERVAL": "2"}
    assert Probe.from_env("inference-chat", env).interval == 2
    assert Probe.from_env("gateway", env).interval == 5
    assert Probe.from_env("gateway", env).retries == 3


def test_gateway_config_follows_the_inference_ports(tmp_path: Path) -> None:
    core = CoreSettings(home=tmp_path)
    env = {"CHAT_PORT": "18001", "CODE_PORT": "18004"}
    specs = {s.name: s for s in default_stack(core, env)}
    config = yaml.safe_load(Path(specs["gateway"].env["GATEWAY_CONFIG"]).read_text())
    bases = {
        (e["model_name"], e["litellm_params"]["order"]): e["litellm_params"]["api_base"]
        for e in config["model_list"]
    }
    assert bases[("chat", 1)] == "http://127.0.0.1:18001/v1"
    assert bases[("chat", 2)] == "http://127.0.0.1:18004/v1"
    assert bases[("code", 1)] == "http://127.0.0.1:18004/v1"
    custom = {**env, "GATEWAY_CONFIG": "/etc/p2/mine.yaml"}
    assert "GATEWAY_CONFIG" not in {s.name: s for s in default_stack(core, custom)}["gateway"].env


def _gguf_metadata(path: Path, *, template: str | None) -> Path:
    """A GGUF with metadata only: enough to be asked for a chat template."""
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "gemma3")
    if template is not None:
        writer.add_chat_template(template)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_rag_prompts_a_base_model_with_a_completion_prompt(tmp_path: Path) -> None:
    core = CoreSettings(home=tmp_path)

    def style(env: dict[str, str]) -> str:
        return {s.name: s for s in default_stack(core, env)}["rag"].env["RAG_PROMPT_STYLE"]

    assert style({}) == "completion"  # the default Gemma 3 270M is a base model
    base = _gguf_metadata(tmp_path / "base.gguf", template=None)
    instruct = _gguf_metadata(tmp_path / "it.gguf", template="{{ messages }}")
    assert style({"CHAT_MODEL_PATH": str(base)}) == "completion"
    assert style({"CHAT_MODEL_PATH": str(instruct)}) == "chat"
    assert style({"CHAT_MODEL_PATH": str(base), "CHAT_CHAT_FORMAT": "chatml"}) == "chat"
    chosen = {s.name: s for s in default_stack(core, {"RAG_PROMPT_STYLE": "chat"})}["rag"]
    assert "RAG_PROMPT_STYLE" not in chosen.env  # the operator's own choice is inherited
