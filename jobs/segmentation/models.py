"""The segmentation task's shared job flow, and ``boxseg``, its weight-free default model.

Every segmentation model decodes the same input (``request``) and shapes the same
result (``output``); a model only says how it turns an image and boxes into masks.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jobs.registry import JobModel, Progress, Result, register
from jobs.segmentation import request
from jobs.segmentation.boxes import Box
from jobs.segmentation.images import Pixels
from jobs.segmentation.masks import CroppedMask
from jobs.segmentation.output import Prediction, result
from jobs.segmentation.rle import Mask

TASK = "segmentation"


class BoxPromptModel(JobModel):
    """Image + boxes in, one mask per box out; subclasses implement ``load`` and ``segment``."""

    task = TASK
    device = "cpu"

    @classmethod
    def validate(cls, input: Mapping[str, Any], config: Mapping[str, Any]) -> None:
        request.validate(input, config)

    def preprocess(
        self, input: Mapping[str, Any], files: Mapping[str, Path], config: Mapping[str, Any]
    ) -> request.Request:
        return request.prepare(input, files, config)

    def predict(self, prepared: request.Request, progress: Progress) -> Prediction:
        masks, scores = self.segment(prepared.image.pixels, prepared.boxes, progress)
        return Prediction(prepared, masks, scores, model=self.name, device=self.device)

    def postprocess(self, output: Prediction) -> Result:
        return result(output)

    @abstractmethod
    def segment(
        self, pixels: Pixels, boxes: Sequence[Box], progress: Progress
    ) -> tuple[list[CroppedMask], list[float | None]]:
        """One mask per box, and the model's confidence in each (None: it has none)."""


@register("boxseg")
class BoxSeg(BoxPromptModel):
    """Marker watershed seeded by the box (``jobs.segmentation.boxseg``): CPU, no weights."""

    def load(self, device: str) -> None:
        from jobs.segmentation.boxseg import segment_box  # scikit-image: on the worker only

        self._segment_box: Callable[[Pixels, Box], Mask] = segment_box

    def segment(
        self, pixels: Pixels, boxes: Sequence[Box], progress: Progress
    ) -> tuple[list[CroppedMask], list[float | None]]:
        masks: list[CroppedMask] = []
        for index, box in enumerate(boxes):
            masks.append(CroppedMask.of(self._segment_box(pixels, box)))
            progress((index + 1) / len(boxes))
        return masks, [None] * len(masks)
