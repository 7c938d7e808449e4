"""``sam`` on randomly initialised tiny SAM checkpoints: shapes, one mask per box, device
choice and clear errors for a missing or wrong checkpoint. Real weights are for operators
(docs/segmentation.md); the numbers they give are not what these tests check."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from jobs.registry import ModelError
from jobs.segmentation import rle
from jobs.segmentation.sam import Sam, pick_device, to_rgb8
from tests.jobs.segmentation.helpers import b64, blob_image, run_job, tiff
from tests.jobs.segmentation.tiny_models import write_tiny_sam

BOXES = [[26, 16, 55, 45], [0, 0, 20, 20], [10.5, 5, 80, 64], [60, 40, 80, 64], [1, 1, 79, 63]]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_sam(tmp_path_factory.mktemp("sam"), image_size=128, patch=16, processor=True)


def loaded(monkeypatch: pytest.MonkeyPatch, path: Path | str, device: str = "cpu") -> Sam:
    monkeypatch.setenv("SEGMENTATION_SAM_CHECKPOINT", str(path))
    model = Sam()
    model.load(device)
    return model


def test_one_mask_per_box_at_the_image_size(
    monkeypatch: pytest.MonkeyPatch, checkpoint: Path
) -> None:
    model = loaded(monkeypatch, checkpoint)
    image = blob_image(np.uint16, 60000)
    result, progress = run_job(model, {"image": b64(tiff(image)), "boxes": BOXES}, {"png": True})
    data = result.data
    assert data["model"] == "sam" and data["device"] == "cpu"
    assert [m["index"] for m in data["masks"]] == list(range(len(BOXES)))
    for entry in data["masks"]:
        mask = rle.decode(entry["rle"])
        assert mask.shape == (64, 80) and entry["area"] == int(mask.sum())
        assert isinstance(entry["score"], float)
    assert len(result.artifacts) == len(BOXES)
    assert progress[0] == 0.0 and progress[-1] == 1.0


def test_batches_of_boxes_give_the_same_masks_in_order(
    monkeypatch: pytest.MonkeyPatch, checkpoint: Path
) -> None:
    input = {"image": b64(tiff(blob_image())), "boxes": BOXES}
    whole, _ = run_job(loaded(monkeypatch, checkpoint), input)
    monkeypatch.setenv("SEGMENTATION_SAM_BATCH", "2")
    batched, progress = run_job(loaded(monkeypatch, checkpoint), input)
    assert [m["rle"] for m in batched.data["masks"]] == [m["rle"] for m in whole.data["masks"]]
    assert progress == [0.0, 0.4, 0.8, 1.0]


def test_a_checkpoint_without_processor_config_uses_sams_preprocessing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_tiny_sam(tmp_path, image_size=1024, patch=64, processor=False)
    result, _ = run_job(
        loaded(monkeypatch, path), {"image": b64(tiff(blob_image())), "boxes": BOXES[:2]}
    )
    assert [rle.decode(m["rle"]).shape for m in result.data["masks"]] == [(64, 80)] * 2


@pytest.mark.parametrize(
    ("requested", "cuda", "expected"),
    [
        ("cuda", True, "cuda"),
        ("cuda:1", True, "cuda:1"),
        ("cuda", False, "cpu"),
        ("cpu", True, "cpu"),
        ("cpu", False, "cpu"),
    ],
)
def test_device_choice(requested: str, cuda: bool, expected: str) -> None:
    assert pick_device(requested, cuda) == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_worker_without_a_gpu_torch_runs_sam_on_the_cpu(
    monkeypatch: pytest.MonkeyPatch, checkpoint: Path
) -> None:
    model = loaded(monkeypatch, checkpoint, device="cuda")
    assert model.device == "cpu"
    assert next(model._model.parameters()).device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU that torch sees")
def test_sam_runs_on_the_gpu(monkeypatch: pytest.MonkeyPatch, checkpoint: Path) -> None:
    model = loaded(monkeypatch, checkpoint, device="cuda")
    assert next(model._model.parameters()).device.type == "cuda"
    result, _ = run_job(model, {"image": b64(tiff(blob_image())), "boxes": BOXES})
    assert result.data["device"] == "cuda" and len(result.data["masks"]) == len(BOXES)


def test_no_checkpoint_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEGMENTATION_SAM_CHECKPOINT", raising=False)
    with pytest.raises(ModelError, match="set SEGMENTATION_SAM_CHECKPOINT") as caught:
        Sam().load("cpu")
    assert caught.value.code == "model_not_configured"


Builder = Callable[[Path, Path], Path]  # (a good checkpoint, a folder) -> the path to set


def _absent(checkpoint: Path, folder: Path) -> Path:
    return folder / "absent"


def _a_file(checkpoint: Path, folder: Path) -> Path:
    path = folder / "model.pth"
    path.write_bytes(b"not a directory")
    return path


def _no_config(checkpoint: Path, folder: Path) -> Path:
    return folder


def _config_only(folder: Path, model_type: str) -> Path:
    folder.joinpath("config.json").write_text(json.dumps({"model_type": model_type}))
    return folder


def _other_model(checkpoint: Path, folder: Path) -> Path:
    return _config_only(folder, "bert")


def _no_weights(checkpoint: Path, folder: Path) -> Path:
    return _config_only(folder, "sam")


def _missing_weight(checkpoint: Path, folder: Path) -> Path:
    for name in ("config.json", "processor_config.json"):
        folder.joinpath(name).write_bytes(checkpoint.joinpath(name).read_bytes())
    weights = load_file(checkpoint / "model.safetensors")
    weights.pop("mask_decoder.iou_prediction_head.proj_out.weight")
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_absent, "is not a directory"),
        (_a_file, "is not a directory"),
        (_no_config, "no readable config.json"),
        (_other_model, "holds a 'bert' checkpoint"),
        (_no_weights, "cannot be loaded"),
        (_missing_weight, "lacks 1 weights"),
    ],
)
def test_a_bad_checkpoint_is_named(
    monkeypatch: pytest.MonkeyPatch, checkpoint: Path, tmp_path: Path, make: Builder, message: str
) -> None:
    with pytest.raises(ModelError, match=message) as caught:
        loaded(monkeypatch, make(checkpoint, tmp_path))
    assert caught.value.code == "checkpoint_invalid"


def test_sam_input_is_8_bit_rgb_spanning_the_range() -> None:
    deep = blob_image(np.uint16, 60000)
    rgb = to_rgb8(deep)
    assert rgb.shape == (64, 80, 3) and rgb.dtype == np.uint8
    assert rgb.min() == 0 and rgb.max() == 255 and np.array_equal(rgb[..., 0], rgb[..., 2])
    eight = blob_image(np.uint8, 200)
    assert np.array_equal(to_rgb8(eight)[..., 1], eight)
    assert to_rgb8(np.full((4, 4), 7.0, np.float32)).max() == 0
