"""``boxseg`` on real nuclei, through the job flow a worker runs: Dice on the 124-nucleus
protocol (ground-truth box + 0-5 px, seed 0) decoded back from the RLE the job returns."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import nuclei
from jobs.segmentation import rle
from jobs.segmentation.models import BoxSeg
from tests.jobs.segmentation.helpers import b64, run_job, tiff


@pytest.fixture(scope="module")
def data() -> nuclei.NucleiSet:
    return nuclei.load(seed=0)


@pytest.fixture(scope="module")
def model() -> BoxSeg:
    loaded = BoxSeg()
    loaded.load("cpu")
    return loaded


def dice_through_the_job(model: BoxSeg, data: nuclei.NucleiSet, image: bytes) -> list[float]:
    boxes = [list(box) for box in data.boxes]
    result, progress = run_job(model, {"image": b64(image), "boxes": boxes})
    masks = result.data["masks"]
    assert len(masks) == len(boxes) and progress[-1] == 1.0
    return [nuclei.dice(rle.decode(m["rle"]), data.truth(i)) for i, m in enumerate(masks)]


def test_the_protocol_selects_124_nuclei(data: nuclei.NucleiSet) -> None:
    assert len(data.ids) == 124 and data.image.dtype == np.uint16


def test_boxseg_beats_the_box_and_reaches_dice_085(model: BoxSeg, data: nuclei.NucleiSet) -> None:
    scores = dice_through_the_job(model, data, nuclei.IMAGE.read_bytes())
    box_only = [
        nuclei.dice(nuclei.box_mask(data.image.shape, b), data.truth(i))
        for i, b in enumerate(data.boxes)
    ]
    assert np.mean(scores) >= 0.85, np.mean(scores)
    assert np.median(scores) >= 0.85
    assert np.mean(scores) > np.mean(box_only) + 0.15


def test_dark_nuclei_on_a_bright_ground_score_the_same(
    model: BoxSeg, data: nuclei.NucleiSet
) -> None:
    inverted = (np.iinfo(np.uint16).max - data.image).astype(np.uint16)
    assert np.mean(dice_through_the_job(model, data, tiff(inverted))) >= 0.85


def test_masks_stay_inside_their_boxes_with_consistent_area_and_box(
    model: BoxSeg, data: nuclei.NucleiSet
) -> None:
    boxes = [list(box) for box in data.boxes[:10]]
    result, _ = run_job(model, {"image": b64(nuclei.IMAGE.read_bytes()), "boxes": boxes})
    for box, entry in zip(boxes, result.data["masks"], strict=True):
        mask = rle.decode(entry["rle"])
        x0, y0, x1, y1 = entry["mask_box"]
        assert box[0] <= x0 < x1 <= box[2] and box[1] <= y0 < y1 <= box[3]
        assert entry["area"] == int(mask.sum()) > 0 and entry["score"] is None
        assert mask[y0:y1, x0:x1].sum() == entry["area"]
