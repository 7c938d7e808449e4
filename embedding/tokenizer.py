"""Tokenization with the model's own fast tokenizer, truncation reported per input."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from tokenizers import Tokenizer

Features = dict[str, NDArray[np.int64]]


@dataclass(frozen=True)
class Tokenized:
    """One input as token ids (special tokens included), and whether it was cut."""

    ids: tuple[int, ...]
    type_ids: tuple[int, ...]
    truncated: bool

    def __len__(self) -> int:
        return len(self.ids)


class TextTokenizer:
    """Encodes like sentence-transformers: stripped text, truncated to ``max_tokens``."""

    def __init__(self, model_dir: Path, max_tokens: int) -> None:
        self.max_tokens = max_tokens
        self._tokenizer = _load(model_dir)
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_tokens)
        self.pad_id = _pad_id(model_dir, self._tokenizer)

    def encode(self, texts: Sequence[str]) -> list[Tokenized]:
        encodings = self._tokenizer.encode_batch([text.strip() for text in texts])
        return [Tokenized(tuple(e.ids), tuple(e.type_ids), bool(e.overflowing)) for e in encodings]

    def pad(self, items: Sequence[Tokenized]) -> Features:
        """Right-pad a batch to its longest input, with the attention mask."""
        width = max(len(item) for item in items)
        ids = np.full((len(items), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(items), width), dtype=np.int64)
        types = np.zeros((len(items), width), dtype=np.int64)
        for row, item in enumerate(items):
            ids[row, : len(item)] = item.ids
            mask[row, : len(item)] = 1
            types[row, : len(item)] = item.type_ids
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _load(model_dir: Path) -> Tokenizer:
    path = model_dir / "tokenizer.json"
    if path.is_file():
        return Tokenizer.from_file(str(path))
    from transformers import AutoTokenizer

    fast = AutoTokenizer.from_pretrained(str(model_dir), use_fast=True)
    backend = getattr(fast, "backend_tokenizer", None)
    if not isinstance(backend, Tokenizer):
        raise ValueError(f"no fast tokenizer for {model_dir}: tokenizer.json is needed")
    return backend


def _pad_id(model_dir: Path, tokenizer: Tokenizer) -> int:
    config = model_dir / "config.json"
    if config.is_file():
        value = json.loads(config.read_text(encoding="utf-8")).get("pad_token_id")
        if isinstance(value, int):
            return value
    for token in ("[PAD]", "<pad>"):
        found = tokenizer.token_to_id(token)
        if found is not None:
            return int(found)
    return 0
