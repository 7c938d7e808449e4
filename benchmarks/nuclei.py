"""The nuclei set and box-prompt protocol behind ``p2 bench segmentation`` and its tests.

One 512x512 uint16 fluorescence image from the 2018 Data Science Bowl with its
ground-truth label image (``benchmarks/data/nuclei/``, see the README there).
Protocol: every labelled nucleus of at least 30 px (124 of 125 labels; a 25-px
sliver on the image edge is left out), in label order; its box is the tight
ground-truth box plus a random 0-5 px margin on each side
(``np.random.RandomState(seed).randint(0, 6, 4)`` per nucleus), clipped to the
image; boxes are ``[x0, y0, x1, y1]`` with exclusive ends. Score: Dice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import tifffile

DATA = Path(__file__).parent / "data" / "nuclei"
IMAGE = DATA / "img2d.tif"
LABELS = DATA / "mask2d.tif"
MIN_AREA = 30
MAX_MARGIN = 5

Box = tuple[int, int, int, int]
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class NucleiSet:
    image: npt.NDArray[np.uint16]
    labels: npt.NDArray[np.int32]
    ids: list[int]  # the selected labels, in order
    boxes: list[Box]  # one prompt per selected label

    def truth(self, index: int) -> Mask:
        return np.asarray(self.labels == self.ids[index])


def load(seed: int = 0) -> NucleiSet:
    image = np.asarray(tifffile.imread(IMAGE))
    labels = np.asarray(tifffile.imread(LABELS)).astype(np.int32)
    ids = select(labels)
    return NucleiSet(image, labels, ids, prompt_boxes(labels, ids, seed))


def select(labels: npt.NDArray[np.int32]) -> list[int]:
    areas = np.bincount(labels.ravel())
    return [int(i) for i in np.flatnonzero(areas) if i != 0 and areas[i] >= MIN_AREA]


def prompt_boxes(labels: npt.NDArray[np.int32], ids: list[int], seed: int) -> list[Box]:
    height, width = labels.shape
    rng = np.random.RandomState(seed)
    boxes: list[Box] = []
    for label in ids:
        rows, cols = np.nonzero(labels == label)
        margin = rng.randint(0, MAX_MARGIN + 1, 4)
        boxes.append(
            (
                max(0, int(cols.min()) - int(margin[0])),
                max(0, int(rows.min()) - int(margin[1])),
                min(width, int(cols.max()) + 1 + int(margin[2])),
                min(height, int(rows.max()) + 1 + int(margin[3])),
            )
        )
    return boxes


def box_mask(shape: tuple[int, ...], box: Box) -> Mask:
    """The box itself as a mask: the reference every model must beat."""
    mask = np.zeros(shape[:2], bool)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = True
    return mask


def dice(predicted: Mask, truth: Mask) -> float:
    total = int(predicted.sum()) + int(truth.sum())
    return 2.0 * int(np.logical_and(predicted, truth).sum()) / total if total else 1.0
