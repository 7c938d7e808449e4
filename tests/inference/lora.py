"""A tiny random LoRA adapter GGUF for the tiny test model, written with gguf-py.

The same layout ``convert_lora_to_gguf.py`` writes (``general.type = adapter``,
``adapter.type = lora``, ``<tensor>.lora_a`` of shape (rank, in) and ``.lora_b``
of (out, rank)), with weights large enough to change what the model says.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def write_tiny_adapter(
    path: Path, *, n_layers: int = 2, dim: int = 64, rank: int = 4, seed: int = 1
) -> Path:
    import gguf

    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(rank))
    for i in range(n_layers):
        for name in ("attn_q", "attn_v", "attn_output"):
            a = (rng.standard_normal((rank, dim)) * 0.8).astype(np.float32)
            b = (rng.standard_normal((dim, rank)) * 0.8).astype(np.float32)
            writer.add_tensor(f"blk.{i}.{name}.weight.lora_a", a)
            writer.add_tensor(f"blk.{i}.{name}.weight.lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def install_adapter(
    adapter_dir: Path, adapter_id: str, base: str, suffix: str, **kwargs: int
) -> str:
    """An adapter and its card in ``adapter_dir``; returns the model name that selects it."""
    adapter_dir.mkdir(parents=True, exist_ok=True)
    write_tiny_adapter(adapter_dir / f"{adapter_id}.gguf", **kwargs)
    card = {"base": base, "suffix": suffix}
    (adapter_dir / f"{adapter_id}.json").write_text(json.dumps(card))
    return f"ft:{base}:{suffix}:{adapter_id}"
