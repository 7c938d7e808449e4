"""Image input: every format decodes to the pixels that were written, told by content."""

from __future__ import annotations

import gzip
import io
import sys

import nibabel
import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from jobs.registry import InvalidInput
from jobs.segmentation import images
from jobs.segmentation.images import Format
from tests.jobs.segmentation.helpers import blob_image, jpeg, png, tiff


def test_png_gray_keeps_its_pixels() -> None:
    gray = blob_image(np.uint8, 255)
    image = images.decode(png(gray))
    assert image.format is Format.PNG and image.slices == 1
    assert image.pixels.dtype == np.uint8 and np.array_equal(image.pixels, gray)
    assert (image.width, image.height) == (80, 64)


def test_png_16_bit_keeps_values_above_255() -> None:
    deep = blob_image(np.uint16, 60000)
    image = images.decode(png(deep))
    assert int(image.pixels.max()) > 255
    assert np.array_equal(image.pixels.astype(np.uint16), deep)


def test_png_rgba_and_palette_become_rgb() -> None:
    rgb = np.stack([blob_image(np.uint8, 255)] * 3, axis=2)
    rgba = np.concatenate([rgb, np.full((64, 80, 1), 128, np.uint8)], axis=2)
    decoded = images.decode(png(rgba))
    assert decoded.pixels.shape == (64, 80, 3) and np.array_equal(decoded.pixels, rgb)
    assert images.decode(png(rgb, mode="P")).pixels.shape == (64, 80, 3)


def test_jpeg_decodes_close_to_what_was_written() -> None:
    gray = blob_image(np.uint8, 255)
    image = images.decode(jpeg(gray))
    assert image.format is Format.JPEG and image.pixels.shape == (64, 80)
    assert np.abs(image.pixels.astype(int) - gray.astype(int)).mean() < 3


def test_tiff_16_bit_and_float_keep_dtype_and_values() -> None:
    deep = blob_image(np.uint16, 60000)
    image = images.decode(tiff(deep))
    assert image.format is Format.TIFF and image.pixels.dtype == np.uint16
    assert np.array_equal(image.pixels, deep)
    floats = deep.astype(np.float32) / 7
    assert np.array_equal(images.decode(tiff(floats)).pixels, floats)


@pytest.mark.parametrize("planar", ["contig", "separate"])
def test_tiff_rgb_is_colour_not_a_stack(planar: str) -> None:
    rgb = np.stack([blob_image(np.uint16) + i for i in range(3)], axis=2)
    written = rgb if planar == "contig" else np.moveaxis(rgb, 2, 0)
    image = images.decode(tiff(written, photometric="rgb", planarconfig=planar))
    assert image.pixels.shape == (64, 80, 3) and image.slices == 1
    assert np.array_equal(image.pixels, rgb)


def test_a_tiff_stack_needs_a_slice() -> None:
    stack = np.stack([blob_image(np.uint16) + i for i in range(3)])
    data = tiff(stack, photometric="minisblack")
    with pytest.raises(InvalidInput, match=r"holds 3 2-D images.*input.slice \(0..2\)") as e:
        images.decode(data)
    assert e.value.param == "input.slice"
    assert np.array_equal(images.decode(data, slice_index=2).pixels, stack[2])
    with pytest.raises(InvalidInput, match=r"input\.slice is 3 but the TIFF file holds 3"):
        images.decode(data, slice_index=3)


def test_slice_zero_of_a_single_image_is_the_image() -> None:
    gray = blob_image(np.uint8, 255)
    assert np.array_equal(images.decode(png(gray), slice_index=0).pixels, gray)
    with pytest.raises(InvalidInput, match=r"holds 1 2-D image$"):
        images.decode(png(gray), slice_index=1)


def dicom(frames: np.ndarray, photometric: str = "MONOCHROME2") -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.set_pixel_data(frames, photometric_interpretation=photometric, bits_stored=16)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_dicom_frame_decodes() -> None:
    deep = blob_image(np.uint16, 4000)
    image = images.decode(dicom(deep))
    assert image.format is Format.DICOM and np.array_equal(image.pixels, deep)


def test_dicom_multi_frame_needs_a_slice() -> None:
    frames = np.stack([blob_image(np.uint16, 4000) + i for i in range(4)])
    with pytest.raises(InvalidInput, match="DICOM file holds 4 2-D images"):
        images.decode(dicom(frames))
    assert np.array_equal(images.decode(dicom(frames), slice_index=1).pixels, frames[1])


def test_dicom_monochrome1_is_shown_bright_for_high_signal() -> None:
    deep = blob_image(np.uint16, 4000)
    pixels = images.decode(dicom(deep, "MONOCHROME1")).pixels
    assert pixels[30, 40] < pixels[2, 2]  # the disc: high values, shown dark -> low here


def test_nifti_slice_has_rows_along_the_second_voxel_axis() -> None:
    volume = np.stack([blob_image(np.uint16).T + k for k in range(5)], axis=2)  # (x, y, z)
    raw = nibabel.Nifti1Image(volume, np.eye(4)).to_bytes()
    for data in (raw, gzip.compress(raw)):
        with pytest.raises(InvalidInput, match="NIFTI file holds 5 2-D images"):
            images.decode(data)
        image = images.decode(data, slice_index=3)
        assert image.format is Format.NIFTI and image.pixels.shape == (64, 80)
        assert np.array_equal(image.pixels, blob_image(np.uint16) + 3)


def test_a_2d_nifti_needs_no_slice() -> None:
    data = nibabel.Nifti2Image(blob_image(np.uint16).T, np.eye(4)).to_bytes()
    assert np.array_equal(images.decode(data).pixels, blob_image(np.uint16))


@pytest.mark.parametrize(("module", "name"), [("pydicom", "DICOM"), ("nibabel", "NIFTI")])
def test_a_missing_optional_library_is_named(
    monkeypatch: pytest.MonkeyPatch, module: str, name: str
) -> None:
    data = (
        dicom(blob_image())
        if name == "DICOM"
        else nibabel.Nifti1Image(blob_image().T, np.eye(4)).to_bytes()
    )
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(InvalidInput, match=f"{name} input needs the Python package '{module}'"):
        images.decode(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GIF89a" + bytes(100), "not PNG, JPEG, TIFF, DICOM or NIfTI"),
        (b"", "not PNG, JPEG, TIFF, DICOM or NIfTI"),
        (b"\x89PNG\r\n\x1a\n" + bytes(40), "cannot be decoded"),
        (b"II*\x00" + bytes(40), "TIFF cannot be decoded"),
        (gzip.compress(b"not a volume" * 100), "does not hold a NIfTI image"),
        (b"\x1f\x8b" + bytes(40), "gzip stream is corrupt"),
    ],
)
def test_undecodable_data_is_invalid_input(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        images.decode(data)
    assert caught.value.param == "input.image"


def test_an_image_over_the_pixel_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "MAX_PIXELS", 64 * 80 - 1)
    for data in (png(blob_image(np.uint8, 255)), tiff(blob_image())):
        with pytest.raises(InvalidInput, match="80x64, over the limit"):
            images.decode(data)
