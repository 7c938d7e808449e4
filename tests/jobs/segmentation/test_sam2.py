"""``sam2`` on a randomly initialised tiny SAM 2: shapes, one mask per box, the input frame
it builds without transformers' torchvision-only processor, and checkpoint errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from jobs.registry import ModelError
from jobs.segmentation import rle
from jobs.segmentation.sam2 import IMAGENET_MEAN, IMAGENET_STD, Sam2
from tests.jobs.segmentation.helpers import b64, blob_image, run_job, tiff
from tests.jobs.segmentation.tiny_models import write_tiny_sam, write_tiny_sam2

BOXES = [[26, 16, 55, 45], [0, 0, 20, 20], [10.5, 5, 80, 64]]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_sam2(tmp_path_factory.mktemp("sam2"))


def loaded(monkeypatch: pytest.MonkeyPatch, path: Path, device: str = "cpu") -> Sam2:
    monkeypatch.setenv("SEGMENTATION_SAM2_CHECKPOINT", str(path))
    model = Sam2()
    model.load(device)
    return model


def test_one_mask_per_box_at_the_image_size(
    monkeypatch: pytest.MonkeyPatch, checkpoint: Path
) -> None:
    model = loaded(monkeypatch, checkpoint)
    result, progress = run_job(model, {"image": b64(tiff(blob_image())), "boxes": BOXES})
    data = result.data
    assert data["model"] == "sam2" and data["device"] == "cpu"
    assert len(data["masks"]) == len(BOXES) and progress[-1] == 1.0
    for entry in data["masks"]:
        assert rle.decode(entry["rle"]).shape == (64, 80)
        assert isinstance(entry["score"], float)


def test_the_image_and_boxes_are_put_in_the_models_square_frame(
    monkeypatch: pytest.MonkeyPatch, checkpoint: Path
) -> None:
    model = loaded(monkeypatch, checkpoint)
    rgb = np.full((64, 80, 3), 255, np.uint8)
    pixels, prompts = model.inputs(rgb, [(8.0, 16.0, 40.0, 64.0)])
    assert pixels.shape == (1, 3, 128, 128)
    white = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(pixels[0, :, 5, 5], white, atol=1e-5)
    assert torch.allclose(prompts, torch.tensor([[[12.8, 32.0, 64.0, 128.0]]]))


def test_masks_come_back_at_the_image_size(
    monkeypatch: pytest.MonkeyPatch, checkpoint: Path
) -> None:
    model = loaded(monkeypatch, checkpoint)
    logits = -torch.ones(1, 2, 1, 32, 32)
    logits[0, 1, 0, :16] = 1.0  # the top half
    masks = model.upscale(logits, 64, 80)
    assert masks.shape == (2, 64, 80) and not masks[0].any()
    assert masks[1, :31].all() and not masks[1, 33:].any()


def test_no_checkpoint_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGMENTATION_SAM2_CHECKPOINT", raising=False)
    with pytest.raises(ModelError, match="set SEGMENTATION_SAM2_CHECKPOINT") as caught:
        Sam2().load("cpu")
    assert caught.value.code == "model_not_configured"


def test_a_sam_checkpoint_is_not_a_sam2_checkpoint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_tiny_sam(tmp_path, image_size=128, patch=16, processor=True)
    with pytest.raises(ModelError, match=r"holds a 'sam' checkpoint.*'sam2'") as caught:
        loaded(monkeypatch, path)
    assert caught.value.code == "checkpoint_invalid"
