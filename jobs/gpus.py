"""Which devices get a worker: ``WORKER_GPUS`` names them, or ``auto`` asks ``nvidia-smi``.

One worker per entry, each with ``CUDA_VISIBLE_DEVICES`` set to it: a GPU index,
or a MIG instance's UUID (a GPU split by MIG gets one worker per instance, not
one for the whole card). With no GPU, ``WORKER_CPU_WORKERS`` CPU workers run.
"""

from __future__ import annotations

import re
import shutil
import subprocess

_GPU = re.compile(r"^GPU (\d+):")
_MIG = re.compile(r"^\s+MIG .*\(UUID: (MIG-[^)]+)\)")


def parse_nvidia_smi(listing: str) -> list[str]:
    """``nvidia-smi -L`` output -> devices: each GPU's index, or its MIG instances' UUIDs."""
    devices: list[str] = []
    gpu: str | None = None
    migs: list[str] = []
    for line in listing.splitlines():
        if match := _GPU.match(line):
            if gpu is not None:
                devices.extend(migs or [gpu])
            gpu, migs = match.group(1), []
        elif (match := _MIG.match(line)) and gpu is not None:
            migs.append(match.group(1))
    if gpu is not None:
        devices.extend(migs or [gpu])
    return devices


def detect_gpus() -> list[str]:
    """The devices ``nvidia-smi -L`` lists; none without the tool or a driver."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return []
    try:
        listing = subprocess.run(
            [tool, "-L"], capture_output=True, text=True, timeout=20, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_nvidia_smi(listing)


def worker_devices(gpus: str) -> list[str]:
    """``WORKER_GPUS``: ``auto`` (detect), ``none``/empty (CPU only) or a comma list."""
    value = gpus.strip().lower()
    if value == "auto":
        return detect_gpus()
    if value in ("", "none"):
        return []
    return [g.strip() for g in gpus.split(",") if g.strip()]
