"""Results land where the servers look, in one rename: a reader sees all or nothing.

A chat model's GGUF adapter goes to ``<adapter dir>/<job id>.gguf`` (the
inference servers apply it per request to the model ``ft:<base>:<suffix>:<id>``),
after its card ``<job id>.json`` (``{"base", "suffix"}``: which of the servers'
models it was trained for, so no other name reaches it);
an embedding model's folder to ``<embedding cache>/ft/<job id>/``, with
``p2-model.json`` naming the model, which the embedding service loads on demand.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from p2.core.files import atomic_write, replacing

MARKER = "p2-model.json"


def publish_adapter(source: Path, target: Path, base: str, suffix: str) -> Path:
    """The GGUF adapter at ``target``, its card beside it (written first)."""
    card = json.dumps({"base": base, "suffix": suffix}) + "\n"
    atomic_write(target.with_suffix(".json"), card)
    return publish_file(source, target)


def publish_file(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with replacing(target) as partial:
        shutil.copyfile(source, partial)
        with partial.open("rb") as handle:
            os.fsync(handle.fileno())
    return target


def publish_folder(source: Path, target: Path, name: str) -> Path:
    """Copy ``source`` to ``target`` (replacing what is there), marked as the model ``name``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    (partial / MARKER).write_text(json.dumps({"id": name}) + "\n")
    aside = target.with_name(f".{target.name}.old")
    shutil.rmtree(aside, ignore_errors=True)
    if target.exists():
        os.replace(target, aside)
    os.replace(partial, target)
    shutil.rmtree(aside, ignore_errors=True)
    return target
