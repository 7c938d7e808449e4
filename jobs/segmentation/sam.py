"""``sam``: Segment Anything (or MedSAM, SAM ViT-B fine-tuned on medical images) through
transformers' ``SamModel`` and ``SamProcessor``, from a local checkpoint; and what it
shares with ``sam2`` (``jobs.segmentation.sam2``).

A checkpoint is a directory in Hugging Face format (``config.json`` with the
model's ``model_type``, ``model.safetensors``, for SAM also the processor's
config) named by a setting on the worker; nothing is downloaded. The image is
encoded once, then the boxes go through the prompt encoder and mask decoder in
batches, one mask per box (``multimask_output=False``) with the model's
predicted IoU as its score. It runs on CUDA when the worker's device is a GPU
that torch sees, else on the CPU.
"""

from __future__ import annotations

import json
import logging
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from jobs.registry import ModelError, Progress, register
from jobs.segmentation.boxes import Box
from jobs.segmentation.images import Pixels
from jobs.segmentation.masks import CroppedMask
from jobs.segmentation.models import BoxPromptModel
from jobs.segmentation.settings import SegmentationSettings
from p2.core.settings import use_local_models_only

log = logging.getLogger(__name__)

MAX_UPSCALED = 1 << 28  # mask values upsampled at once (1 GiB of float32): caps a batch
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
LOAD_ERRORS = (OSError, ValueError, RuntimeError, KeyError, TypeError)


def pick_device(requested: str, cuda_available: bool) -> str:
    """``cuda[:n]`` when asked for and torch sees a GPU, else ``cpu``."""
    if requested.startswith("cuda") and cuda_available:
        return requested
    if requested.startswith("cuda"):
        log.warning("device %s requested but torch sees no GPU: running on the CPU", requested)
    return "cpu"


def checkpoint_dir(path: Path | None, setting: str, model_type: str) -> Path:
    """The configured checkpoint directory, or ``ModelError`` saying what is wrong with it."""
    if path is None:
        raise ModelError(
            f"this model needs a checkpoint: set {setting} on the worker to a {model_type} "
            "checkpoint directory in Hugging Face format (see docs/segmentation.md)",
            code="model_not_configured",
        )
    if not path.is_dir():
        raise ModelError(
            f"{setting}={path} is not a directory; it names a Hugging Face-format checkpoint "
            "directory (config.json, model.safetensors)",
            code="checkpoint_invalid",
        )
    try:
        found = json.loads((path / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        raise ModelError(
            f"{path} has no readable config.json: it is not a Hugging Face-format checkpoint "
            "(original .pth/.pt weights must be converted first; see docs/segmentation.md)",
            code="checkpoint_invalid",
        ) from None
    if found != model_type:
        raise ModelError(
            f"{path} holds a '{found}' checkpoint; this model loads model_type '{model_type}'",
            code="checkpoint_invalid",
        )
    return path


def to_rgb8(pixels: Pixels) -> npt.NDArray[np.uint8]:
    """``HxWx3`` uint8 for the SAM family: 8-bit kept, anything else scaled from its
    0.5-99.5 percentile range (MedSAM's preprocessing for non-CT images); gray repeated."""
    array = np.asarray(pixels)
    if array.dtype != np.uint8:
        values = array.astype(np.float32)
        low, high = (float(v) for v in np.percentile(values, [0.5, 99.5]))
        if high <= low:
            low, high = float(values.min()), float(values.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        array = np.clip((values - low) * scale, 0, 255).round().astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, np.newaxis], 3, axis=2)
    return np.ascontiguousarray(array)


class SamFamily(BoxPromptModel):
    """Loading, device choice and batched box decoding shared by SAM and SAM 2."""

    model_type: ClassVar[str]  # config.json's model_type
    setting: ClassVar[str]  # the environment variable naming the checkpoint

    def load(self, device: str) -> None:
        settings = SegmentationSettings()
        path = checkpoint_dir(self.configured(settings), self.setting, self.model_type)
        self._batch = settings.sam_batch
        use_local_models_only()
        import torch
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        self.device = pick_device(device, torch.cuda.is_available())
        try:
            loaded: Any = self.model_class().from_pretrained(path, output_loading_info=True)
            model, info = loaded
            self.load_processing(path, model.config)
        except LOAD_ERRORS as exc:
            raise ModelError(
                f"the checkpoint {path} cannot be loaded: {exc}", code="checkpoint_invalid"
            ) from exc
        if info.get("missing_keys"):
            missing = sorted(info["missing_keys"])
            raise ModelError(
                f"the checkpoint {path} lacks {len(missing)} weights (e.g. {missing[0]}): "
                "it does not match its config.json",
                code="checkpoint_invalid",
            )
        self._model: Any = model.to(self.device).eval()
        log.info("%s: %s on %s", self.name, path, self.device)

    @abstractmethod
    def configured(self, settings: SegmentationSettings) -> Path | None:
        """The checkpoint directory the settings name."""

    @abstractmethod
    def model_class(self) -> Any:
        """The transformers model class."""

    @abstractmethod
    def load_processing(self, path: Path, config: Any) -> None:
        """Set up pre- and post-processing for the loaded checkpoint."""

    @abstractmethod
    def inputs(self, rgb: npt.NDArray[np.uint8], boxes: Sequence[Box]) -> tuple[Any, Any]:
        """``(pixel_values, boxes)`` as tensors in the model's input frame."""

    @abstractmethod
    def upscale(self, low_res: Any, height: int, width: int) -> Any:
        """The decoder's ``(1, n, 1, h, w)`` logits as ``n`` boolean masks of the image size."""

    def segment(
        self, pixels: Pixels, boxes: Sequence[Box], progress: Progress
    ) -> tuple[list[CroppedMask], list[float | None]]:
        import torch

        rgb = to_rgb8(pixels)
        height, width = rgb.shape[:2]
        pixel_values, prompts = self.inputs(rgb, boxes)
        prompts = prompts.to(self.device, torch.float32)
        per_pass = max(1, min(self._batch, MAX_UPSCALED // (height * width)))
        masks: list[CroppedMask] = []
        scores: list[float | None] = []
        with torch.inference_mode():
            embeddings = self._model.get_image_embeddings(pixel_values.to(self.device))
            progress(0.0)
            for start in range(0, len(boxes), per_pass):
                out = self._model(
                    image_embeddings=embeddings,
                    input_boxes=prompts[:, start : start + per_pass],
                    multimask_output=False,
                )
                full = self.upscale(out.pred_masks.float().cpu(), height, width)
                masks.extend(CroppedMask.of(mask.numpy()) for mask in full)
                scores.extend(float(s) for s in out.iou_scores[0, :, 0].float().cpu())
                progress(min(1.0, (start + per_pass) / len(boxes)))
        return masks, scores


@register("sam")
class Sam(SamFamily):
    """SAM / MedSAM from ``SEGMENTATION_SAM_CHECKPOINT``; GPU when there is one."""

    model_type = "sam"
    setting = "SEGMENTATION_SAM_CHECKPOINT"

    def configured(self, settings: SegmentationSettings) -> Path | None:
        return settings.sam_checkpoint

    def model_class(self) -> Any:
        from transformers import SamModel

        return SamModel

    def load_processing(self, path: Path, config: Any) -> None:
        from transformers import SamImageProcessor, SamProcessor

        if any(path.joinpath(name).is_file() for name in PROCESSOR_FILES):
            self._processor: Any = SamProcessor.from_pretrained(path)
        else:  # SAM's own: longest side to 1024, padded square, ImageNet normalisation
            self._processor = SamProcessor(image_processor=SamImageProcessor())  # type: ignore[no-untyped-call]

    def inputs(self, rgb: npt.NDArray[np.uint8], boxes: Sequence[Box]) -> tuple[Any, Any]:
        encoded = self._processor(
            images=rgb, input_boxes=[[list(box) for box in boxes]], return_tensors="pt"
        )
        self._sizes = (encoded["original_sizes"], encoded["reshaped_input_sizes"])
        return encoded["pixel_values"], encoded["input_boxes"]

    def upscale(self, low_res: Any, height: int, width: int) -> Any:
        original, reshaped = self._sizes
        masks = self._processor.image_processor.post_process_masks(low_res, original, reshaped)
        return masks[0][:, 0]
