"""``sam2``: SAM 2 (or MedSAM2, SAM 2.1 fine-tuned on medical images) through transformers'
``Sam2Model``, from ``SEGMENTATION_SAM2_CHECKPOINT``.

transformers' ``Sam2ImageProcessor`` needs torchvision, which P2 does not install,
so the preprocessing is done here the way SAM 2 defines it: the image resized
to the model's square input (1024 for the released models), scaled to 0..1 and
normalised with the ImageNet mean and deviation; boxes scaled into that frame;
the decoder's masks resized back to the image and thresholded at 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from jobs.registry import register
from jobs.segmentation.boxes import Box
from jobs.segmentation.sam import SamFamily
from jobs.segmentation.settings import SegmentationSettings

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@register("sam2")
class Sam2(SamFamily):
    """SAM 2 / MedSAM2 from ``SEGMENTATION_SAM2_CHECKPOINT``; GPU when there is one."""

    model_type = "sam2"
    setting = "SEGMENTATION_SAM2_CHECKPOINT"

    def configured(self, settings: SegmentationSettings) -> Path | None:
        return settings.sam2_checkpoint

    def model_class(self) -> Any:
        from transformers import Sam2Model

        return Sam2Model

    def load_processing(self, path: Path, config: Any) -> None:
        self._side = int(config.vision_config.backbone_config.image_size)

    def inputs(self, rgb: npt.NDArray[np.uint8], boxes: Sequence[Box]) -> tuple[Any, Any]:
        import torch
        import torch.nn.functional as F  # noqa: N812

        height, width = rgb.shape[:2]
        image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
        image = F.interpolate(image, size=(self._side, self._side), mode="bilinear", antialias=True)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        scale = torch.tensor([self._side / width, self._side / height] * 2)
        prompts = torch.tensor([list(box) for box in boxes], dtype=torch.float32) * scale
        return (image - mean) / std, prompts[None]

    def upscale(self, low_res: Any, height: int, width: int) -> Any:
        import torch.nn.functional as F  # noqa: N812

        return F.interpolate(low_res[0], size=(height, width), mode="bilinear")[:, 0] > 0
