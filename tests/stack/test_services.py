"""The stack ``p2 up`` runs: its wiring follows the environment it is given."""

from __future__ import annotations

from pathlib import Path

import yaml

from p2.core.settings import CoreSettings
from p2.stack.services import default_stack
from p2.stack.settings import StackSettings
from p2.supervisor.spec import ServiceSpec


def _stack(core: CoreSettings, env: dict[str, str]) -> list[ServiceSpec]:
    return default_stack(core, StackSettings.from_environ(env))


def test_gateway_config_follows_the_inference_ports(tmp_path: Path) -> None:
    core = CoreSettings(home=tmp_path)
    env = {"CHAT_PORT": "18001", "CODE_PORT": "18004"}
    specs = {s.name: s for s in _stack(core, env)}
    config = yaml.safe_load(Path(specs["gateway"].env["GATEWAY_CONFIG"]).read_text())
    bases = {
        (e["model_name"], e["litellm_params"]["order"]): e["litellm_params"]["api_base"]
        for e in config["model_list"]
    }
    assert bases[("chat", 1)] == "http://127.0.0.1:18001/v1"
    assert bases[("chat", 2)] == "http://127.0.0.1:18004/v1"
    assert bases[("code", 1)] == "http://127.0.0.1:18004/v1"
    custom = {**env, "GATEWAY_CONFIG": "/etc/p2/mine.yaml"}
    assert "GATEWAY_CONFIG" not in {s.name: s for s in _stack(core, custom)}["gateway"].env


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
        return {s.name: s for s in _stack(core, env)}["rag"].env["RAG_PROMPT_STYLE"]

    assert style({}) == "chat"  # the default SmolLM2-135M-Instruct has a chat template
    base = _gguf_metadata(tmp_path / "base.gguf", template=None)
    instruct = _gguf_metadata(tmp_path / "it.gguf", template="{{ messages }}")
    assert style({"CHAT_MODEL_PATH": str(base)}) == "completion"
    assert style({"CHAT_MODEL_PATH": str(instruct)}) == "chat"
    assert style({"CHAT_MODEL_PATH": str(base), "CHAT_CHAT_FORMAT": "chatml"}) == "chat"
    chosen = {s.name: s for s in _stack(core, {"RAG_PROMPT_STYLE": "chat"})}["rag"]
    assert "RAG_PROMPT_STYLE" not in chosen.env  # the operator's own choice is inherited


def test_with_keys_every_service_gets_a_private_service_key(tmp_path: Path) -> None:
    core = CoreSettings(home=tmp_path)
    specs = {s.name: s for s in _stack(core, {"P2_API_KEYS": "sk-user"})}
    keys = {s.env["P2_SERVICE_KEY"] for s in specs.values()}
    assert len(keys) == 1 and "sk-user" not in keys
    key_file = tmp_path / "run" / "service.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert specs["rag"].env["RAG_GATEWAY_API_KEY"] == key_file.read_text()
    config = yaml.safe_load(Path(specs["gateway"].env["GATEWAY_CONFIG"]).read_text())
    assert {e["litellm_params"]["api_key"] for e in config["model_list"]} == {
        "os.environ/P2_SERVICE_KEY"
    }
    again = {s.name: s for s in _stack(core, {"P2_ADMIN_KEYS": "sk-admin"})}
    assert again["gateway"].env["P2_SERVICE_KEY"] in keys  # stable across restarts


def test_without_keys_nothing_is_keyed(tmp_path: Path) -> None:
    specs = _stack(CoreSettings(home=tmp_path), {})
    assert all("P2_SERVICE_KEY" not in s.env for s in specs)
    assert not (tmp_path / "run" / "service.key").exists()


def test_the_master_key_of_an_operators_config_is_an_admin_key_everywhere(
    tmp_path: Path,
) -> None:
    config = tmp_path / "litellm.yaml"
    config.write_text(
        "model_list: []\ngeneral_settings:\n  master_key: os.environ/LITELLM_MASTER_KEY\n"
    )
    env = {"GATEWAY_CONFIG": str(config), "LITELLM_MASTER_KEY": "sk-master"}
    specs = _stack(CoreSettings(home=tmp_path), env)
    assert {s.env["P2_ADMIN_KEYS"] for s in specs} == {"sk-master"}
    assert all("P2_SERVICE_KEY" in s.env for s in specs)  # a master key alone locks the ports
