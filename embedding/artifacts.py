"""The exported ONNX models, built once per model directory and cached on disk.

Layout: ``<cache>/<model-id>-<fingerprint>/model.onnx`` (fp32), ``model-int8.onnx``
and ``int8.json`` (its measured agreement with fp32, and whether it was
accepted). The fingerprint covers the model's file names, sizes and mtimes,
so a changed model is exported again. Builds run under a file lock and land
by atomic rename: concurrent starts and interrupted builds leave no torn file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from embedding.model import ModelInfo
from embedding.quantize import Agreement, quantize_int8
from p2.core.files import atomic_write, replacing

log = logging.getLogger("p2.embedding")

FORMAT = "1"  # bump when the export recipe changes
FP32_NAME, INT8_NAME, REPORT_NAME = "model.onnx", "model-int8.onnx", "int8.json"


@dataclass(frozen=True)
class OnnxArtifacts:
    fp32: Path
    int8: Path | None  # None: not requested, or refused by the agreement check
    agreement: Agreement | None


def fingerprint(model_dir: Path) -> str:
    digest = hashlib.sha256(FORMAT.encode())
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        stat = path.stat()
        rel = path.relative_to(model_dir).as_posix()
        digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def cache_dir_for(model: ModelInfo, root: Path) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model.id).strip("._") or "model"
    return root / f"{safe}-{fingerprint(model.path)}"


def prepare(
    model: ModelInfo,
    root: Path,
    *,
    int8: bool,
    check: Callable[[Path, Path], Agreement],
) -> OnnxArtifacts:
    """Export (and quantize, if asked) unless cached; ``check(fp32, int8)`` gates int8."""
    folder = cache_dir_for(model, root)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        fp32 = folder / FP32_NAME
        if not fp32.is_file():
            with replacing(fp32) as partial:
                _export(model.path, partial)
        if not int8:
            return OnnxArtifacts(fp32, None, None)
        return _prepare_int8(folder, fp32, check)


def _prepare_int8(
    folder: Path, fp32: Path, check: Callable[[Path, Path], Agreement]
) -> OnnxArtifacts:
    target, report = folder / INT8_NAME, folder / REPORT_NAME
    if report.is_file():
        result = _read_report(report)
        if result is not None and (target.is_file() or not result.accepted):
            return OnnxArtifacts(fp32, target if result.accepted else None, result)
    log.info("quantizing %s to int8", fp32)
    try:
        with replacing(target) as candidate:
            quantize_int8(fp32, candidate)
            result = check(fp32, candidate)
            if not result.accepted:
                raise _Refused(result)  # the candidate is removed, the target left as it is
    except _Refused as refused:
        result = refused.agreement
    atomic_write(report, json.dumps(result.as_dict(), indent=2) + "\n")
    return OnnxArtifacts(fp32, target if result.accepted else None, result)


class _Refused(Exception):
    """The int8 candidate disagrees with fp32 too much to replace anything."""

    def __init__(self, agreement: Agreement) -> None:
        super().__init__(f"int8 refused: {agreement}")
        self.agreement = agreement


def _read_report(path: Path) -> Agreement | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Agreement(float(data["mean"]), float(data["min"]), int(data["samples"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _export(model_dir: Path, target: Path) -> None:
    from embedding.onnx_export import export_onnx

    log.info("exporting %s to ONNX (once; cached in %s)", model_dir, target.parent)
    export_onnx(model_dir, target)
