"""A peft LoRA adapter to a GGUF adapter, with llama.cpp's ``convert_lora_to_gguf.py``.

The script comes from the llama-cpp-python sdist of the installed version (the
one ``inference.build`` compiles llama-server from, so converter and server are
the same llama.cpp): fetched once with ``pip download`` and the converter's
files (the script, ``convert_hf_to_gguf.py``, ``conversion/``, ``gguf-py/``)
extracted into ``$XDG_CACHE_HOME/p2/llama.cpp/convert-<version>``, atomically
and under a lock. ``FINETUNE_LLAMA_CPP_DIR`` names a llama.cpp tree to use instead
(an offline machine). Nothing is vendored into P2.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path

from jobs.finetune.process import Beat, run_watched
from jobs.registry import ModelError

SCRIPT = "convert_lora_to_gguf.py"
NEEDED = (SCRIPT, "convert_hf_to_gguf.py", "conversion/", "gguf-py/")
FETCH_TIMEOUT = 900.0
CONVERT_TIMEOUT = 900.0
CODE = "converter_unavailable"


def cache_root() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "p2" / "llama.cpp"


def converter_tree(configured: Path | None, beat: Beat) -> Path:
    """A folder with ``convert_lora_to_gguf.py`` and what it imports."""
    if configured is not None:
        tree = configured.expanduser()
        if not (tree / SCRIPT).is_file():
            raise ModelError(f"FINETUNE_LLAMA_CPP_DIR has no {SCRIPT}: {tree}", code=CODE)
        return tree
    pinned = version("llama-cpp-python")
    target = cache_root() / f"convert-{pinned}"
    if (target / SCRIPT).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / ".fetch.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / SCRIPT).is_file():
            _fetch(pinned, target, beat)
    return target


def _fetch(pinned: str, target: Path, beat: Beat) -> None:
    with tempfile.TemporaryDirectory(prefix="p2-llama-sdist-", dir=target.parent) as tmp:
        work = Path(tmp)
        argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        argv += ["-d", str(work), f"llama-cpp-python=={pinned}"]
        run_watched(
            argv,
            beat=beat,
            what="fetching the llama-cpp-python sdist",
            code=CODE,
            timeout=FETCH_TIMEOUT,
        )
        sdist = next(work.glob("llama_cpp_python-*.tar.gz"), None)
        if sdist is None:
            raise ModelError("pip download produced no llama-cpp-python sdist", code=CODE)
        tree = work / "tree"
        with tarfile.open(sdist) as archive:
            for member in archive.getmembers():
                _, _, inner = member.name.partition("/vendor/llama.cpp/")
                if inner and any(inner == n or inner.startswith(n) for n in NEEDED):
                    member.name = inner
                    archive.extract(member, tree, filter="data")
        if not (tree / SCRIPT).is_file():
            raise ModelError(f"the sdist {sdist.name} has no vendored {SCRIPT}", code=CODE)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tree, target)


def to_gguf(tree: Path, adapter: Path, base_config: Path, out: Path, beat: Beat) -> None:
    """Write the GGUF adapter of the peft adapter in ``adapter`` to ``out`` (f16)."""
    argv = [sys.executable, str(tree / SCRIPT), "--base", str(base_config)]
    argv += ["--outfile", str(out), "--outtype", "f16", str(adapter)]
    run_watched(
        argv,
        beat=beat,
        what="converting the adapter to GGUF",
        code="conversion_failed",
        timeout=CONVERT_TIMEOUT,
    )
    if not out.is_file():
        raise ModelError("the converter wrote no adapter file", code="conversion_failed")
