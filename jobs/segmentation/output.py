"""A segmentation job's result: per box, the mask as COCO RLE with its area and tight box,
and on request the mask as a 1-bit PNG artifact (``mask-<i>.png``)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from jobs.registry import Artifact, Result
from jobs.segmentation import rle
from jobs.segmentation.masks import CroppedMask
from jobs.segmentation.request import Request


@dataclass(frozen=True)
class Prediction:
    """What a model's ``predict`` hands to ``postprocess``: one mask (and score) per box."""

    request: Request
    masks: Sequence[CroppedMask]
    scores: Sequence[float | None]
    model: str
    device: str


def result(prediction: Prediction) -> Result:
    request = prediction.request
    image = request.image
    masks: list[dict[str, object]] = []
    artifacts: list[Artifact] = []
    for index, (box, cropped, score) in enumerate(
        zip(request.boxes, prediction.masks, prediction.scores, strict=True)
    ):
        mask = cropped.full()  # one full-size mask at a time
        entry: dict[str, object] = {
            "index": index,
            "box": [int(v) if v.is_integer() else v for v in box],
            "rle": rle.encode(mask),
            "area": cropped.area,
            "mask_box": list(cropped.box) if cropped.box is not None else None,
            "score": score,
        }
        if request.png:
            name = f"mask-{index}.png"
            artifacts.append(Artifact(name, mask_png(mask), "image/png"))
            entry["png"] = name
        masks.append(entry)
    data = {
        "model": prediction.model,
        "device": prediction.device,
        "image": {
            "width": image.width,
            "height": image.height,
            "format": image.format.value,
            "slices": image.slices,
        },
        "masks": masks,
    }
    return Result(data=data, artifacts=tuple(artifacts))


def mask_png(mask: rle.Mask) -> bytes:
    """The mask as a 1-bit PNG: white object on black, the image's size."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(mask.astype(bool)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
