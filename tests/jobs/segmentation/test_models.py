"""The segmentation task's job contract: what a submit is refused for, and the result shape."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from jobs.registry import InvalidInput, discover
from jobs.segmentation import rle
from jobs.segmentation.models import BoxSeg
from tests.jobs.segmentation.helpers import b64, blob_image, png, run_job, tiff

DISC_BOX = [26, 16, 55, 45]  # around the disc of blob_image (centre x 40, y 30, radius 12)


@pytest.fixture(scope="module")
def model() -> BoxSeg:
    loaded = BoxSeg()
    loaded.load("cpu")
    return loaded


def test_the_models_are_registered_for_the_segmentation_task() -> None:
    registry = discover()
    assert {"boxseg", "sam", "sam2"} <= set(registry.models("segmentation"))
    assert registry.find("segmentation", "boxseg") is BoxSeg


def test_registering_imports_no_heavy_library() -> None:
    """The job API imports the models to validate submits: it must stay light."""
    code = (
        "import sys, jobs.segmentation; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'torch', 'transformers', 'skimage', 'scipy', 'PIL', 'tifffile', 'pydicom'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_16_bit_tiff_disc_is_segmented(model: BoxSeg) -> None:
    image = blob_image(np.uint16, 60000)
    result, _ = run_job(model, {"image": b64(tiff(image)), "boxes": [DISC_BOX]})
    data = result.data
    assert data["model"] == "boxseg" and data["device"] == "cpu"
    assert data["image"] == {"width": 80, "height": 64, "format": "tiff", "slices": 1}
    (entry,) = data["masks"]
    yy, xx = np.mgrid[:64, :80]
    truth = (yy - 30) ** 2 + (xx - 40) ** 2 <= 12**2
    mask = rle.decode(entry["rle"])
    assert 2 * (mask & truth).sum() / (mask.sum() + truth.sum()) > 0.95
    assert entry["box"] == DISC_BOX and entry["index"] == 0 and "png" not in entry
    assert result.artifacts == ()


def test_png_artifacts_on_request_hold_the_same_masks(model: BoxSeg) -> None:
    boxes = [DISC_BOX, [0, 0, 20, 20]]
    result, _ = run_job(
        model, {"image": b64(png(blob_image(np.uint8, 255))), "boxes": boxes}, {"png": True}
    )
    assert [a.name for a in result.artifacts] == ["mask-0.png", "mask-1.png"]
    for entry, artifact in zip(result.data["masks"], result.artifacts, strict=True):
        assert entry["png"] == artifact.name and artifact.media_type == "image/png"
        picture = Image.open(io.BytesIO(artifact.data))
        assert picture.mode == "1" and picture.size == (80, 64)
        assert np.array_equal(np.asarray(picture), rle.decode(entry["rle"]))


def test_an_uploaded_file_is_read_from_the_path_the_worker_gives(
    model: BoxSeg, tmp_path: Path
) -> None:
    path = tmp_path / "upload"
    path.write_bytes(tiff(blob_image()))
    result, _ = run_job(
        model, {"image_file_id": "file-abc", "boxes": [DISC_BOX]}, files={"file-abc": path}
    )
    assert result.data["masks"][0]["area"] > 300


def test_fractional_boxes_are_echoed_as_given(model: BoxSeg) -> None:
    box = [25.5, 16, 55.25, 45]
    result, _ = run_job(model, {"image": b64(tiff(blob_image())), "boxes": [box]})
    assert result.data["masks"][0]["box"] == box


def test_a_data_url_is_accepted(model: BoxSeg) -> None:
    url = "data:image/png;base64," + b64(png(blob_image(np.uint8, 255)))
    result, _ = run_job(model, {"image": url, "boxes": [DISC_BOX]})
    assert result.data["image"]["format"] == "png"


GOOD = {"image": b64(b"\x89PNG\r\n\x1a\n"), "boxes": [DISC_BOX]}


@pytest.mark.parametrize(
    ("input", "config", "param", "message"),
    [
        ({"boxes": [DISC_BOX]}, {}, "input.image_file_id", "exactly one of"),
        ({**GOOD, "image_file_id": "file-1"}, {}, "input.image_file_id", "exactly one of"),
        ({**GOOD, "image": "not base64!"}, {}, "input.image", "not valid base64"),
        ({**GOOD, "image": 7}, {}, "input.image", "base64 string"),
        ({"image_file_id": 3, "boxes": [DISC_BOX]}, {}, "input.image_file_id", "a file id"),
        ({**GOOD, "mask": 1}, {}, "input.mask", "not a segmentation input field"),
        (GOOD, {"threshold": 0.5}, "config.threshold", "not a segmentation config field"),
        (GOOD, {"png": "yes"}, "config.png", "true or false"),
        ({**GOOD, "slice": -1}, {}, "input.slice", "integer >= 0"),
        ({**GOOD, "boxes": [[0, 0, 4]]}, {}, "input.boxes[0]", "four numbers"),
    ],
)
def test_a_bad_submit_is_refused_naming_the_field(
    input: dict[str, Any], config: dict[str, Any], param: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        BoxSeg.validate(input, config)
    assert caught.value.param == param


def test_a_box_outside_the_decoded_image_fails_the_job(model: BoxSeg) -> None:
    with pytest.raises(InvalidInput, match=r"box 1 .* not inside the 80x64 image") as caught:
        run_job(model, {"image": b64(tiff(blob_image())), "boxes": [DISC_BOX, [0, 0, 81, 5]]})
    assert caught.value.param == "input.boxes[1]"


def test_a_file_the_worker_did_not_provide_fails_the_job(model: BoxSeg) -> None:
    with pytest.raises(InvalidInput, match="'file-x' is not available"):
        run_job(model, {"image_file_id": "file-x", "boxes": [DISC_BOX]})
