"""Running a segmentation model the way a worker does, and images encoded in memory."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import tifffile
from PIL import Image

from jobs.registry import JobModel, Result


def run_job(
    model: JobModel,
    input: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    files: Mapping[str, Path] | None = None,
) -> tuple[Result, list[float]]:
    """validate -> preprocess -> predict -> postprocess, as the job API and a worker call
    them; also returns the progress fractions reported."""
    config = config or {}
    type(model).validate(input, config)
    reported: list[float] = []
    prepared = model.preprocess(input, files or {}, config)
    output = model.predict(prepared, reported.append)
    return model.postprocess(output), reported


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png(array: npt.NDArray[Any], mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg(array: npt.NDArray[Any]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def tiff(array: npt.NDArray[Any], **options: Any) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **options)
    return buffer.getvalue()


def blob_image(dtype: type = np.uint16, scale: float = 40000.0) -> npt.NDArray[Any]:
    """A 64x80 image with a bright disc (centre 30, 40; radius 12) on a dim, noisy ground."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :80]
    disc = (yy - 30) ** 2 + (xx - 40) ** 2 <= 12**2
    values = 0.1 + 0.8 * disc + rng.normal(0, 0.02, disc.shape)
    return np.asarray(np.clip(values, 0, 1) * scale, dtype=dtype)
