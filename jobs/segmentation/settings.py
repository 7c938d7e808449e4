"""Settings of the segmentation models on a worker (``SEGMENTATION_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from p2.core.settings import ServiceSettings


class SegmentationSettings(ServiceSettings):
    """Env names are ``SEGMENTATION_<FIELD>``; read when a worker loads a model."""

    model_config = SettingsConfigDict(env_prefix="SEGMENTATION_", extra="ignore")

    # A SAM or MedSAM checkpoint in Hugging Face format (a directory with config.json and
    # model.safetensors): the `sam` model. None: `sam` jobs fail with model_not_configured.
    sam_checkpoint: Path | None = None
    # The same for SAM 2 / MedSAM2 (model_type sam2): the `sam2` model.
    sam2_checkpoint: Path | None = None
    sam_batch: int = Field(default=64, ge=1, le=1024)  # boxes per mask-decoder pass (both)
