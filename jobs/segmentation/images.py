"""Image bytes to a numpy array: PNG, JPEG and TIFF (8/16-bit, float, stacks), and with the
``medical`` extra a DICOM frame (pydicom) or a NIfTI slice (nibabel).

The format is told from the content, never from a file name. The array is ``HxW``
(gray, in the file's own dtype and scale) or ``HxWx3`` (colour; alpha dropped).
A file that holds several 2-D images (a TIFF stack or channels, a multi-frame
DICOM, a 3-D NIfTI volume) needs ``slice``, the index of the one to segment. The
decoders are imported only when an image of their format arrives.
"""

from __future__ import annotations

import importlib
import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from jobs.registry import InvalidInput

PARAM = "input.image"
MAX_PIXELS = 100_000_000  # per 2-D image; a larger one is refused before it is decoded
MAX_NIFTI_BYTES = 2 * 1024**3  # a gzipped volume is refused if it inflates past this

Pixels = npt.NDArray[Any]


class Format(StrEnum):
    PNG = "png"
    JPEG = "jpeg"
    TIFF = "tiff"
    DICOM = "dicom"
    NIFTI = "nifti"


# Optional formats: (module to import, package to install) — the `medical` extra of P2.
OPTIONAL = {Format.DICOM: ("pydicom", "pydicom"), Format.NIFTI: ("nibabel", "nibabel")}


@dataclass(frozen=True)
class Image:
    pixels: Pixels
    format: Format
    slices: int  # how many 2-D images the file holds

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def sniff(data: bytes) -> Format | None:
    """The format of ``data`` by its magic bytes (a gzip stream counts as NIfTI)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return Format.PNG
    if data.startswith(b"\xff\xd8\xff"):
        return Format.JPEG
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return Format.TIFF
    if data[128:132] == b"DICM":
        return Format.DICOM
    if data.startswith(b"\x1f\x8b") or _nifti_version(data):
        return Format.NIFTI
    return None


def decode(data: bytes, *, slice_index: int | None = None) -> Image:
    """Decode ``data``; ``InvalidInput`` (param ``input.image``) says what is wrong."""
    fmt = sniff(data)
    if fmt is None:
        raise InvalidInput(
            "the image is not PNG, JPEG, TIFF, DICOM or NIfTI (told from its content)",
            param=PARAM,
        )
    stack = _DECODERS[fmt](data)
    count = stack.shape[0]
    if slice_index is None and count > 1:
        raise InvalidInput(
            f"the {fmt.name} file holds {count} 2-D images; choose one with input.slice "
            f"(0..{count - 1})",
            param="input.slice",
        )
    index = slice_index or 0
    if index >= count:
        raise InvalidInput(
            f"input.slice is {index} but the {fmt.name} file holds {count} 2-D "
            f"image{'s' if count != 1 else ''}",
            param="input.slice",
        )
    pixels = np.ascontiguousarray(stack[index])
    if pixels.shape[0] < 1 or pixels.shape[1] < 1:
        raise InvalidInput(f"the image is empty ({pixels.shape})", param=PARAM)
    return Image(pixels=pixels, format=fmt, slices=count)


def _optional(fmt: Format) -> ModuleType:
    module, package = OPTIONAL[fmt]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise InvalidInput(
            f"{fmt.name} input needs the Python package '{package}', which is not installed "
            "on this worker; the operator installs it with P2's 'medical' extra "
            "(pip install 'p2[medical]')",
            param=PARAM,
        ) from None


def _check_pixels(height: int, width: int) -> None:
    if height * width > MAX_PIXELS:
        raise InvalidInput(
            f"the image is {width}x{height}, over the limit of {MAX_PIXELS:,} pixels",
            param=PARAM,
        )


def _as_stack(array: Pixels, *, rgb_last: bool) -> Pixels:
    """``N x H x W`` or ``N x H x W x 3`` from any leading stack axes."""
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    color = rgb_last and array.ndim >= 3 and array.shape[-1] in (3, 4)
    if color:
        array = array[..., :3]
    plane = 3 if color else 2
    if array.ndim < plane:
        raise InvalidInput(f"the image has shape {array.shape}, not a 2-D image", param=PARAM)
    return array.reshape((-1, *array.shape[array.ndim - plane :]))


def _pillow(data: bytes) -> Pixels:
    from PIL import Image as PILImage

    try:
        with PILImage.open(io.BytesIO(data)) as img:
            _check_pixels(img.height, img.width)
            img.load()
            frame: PILImage.Image
            if img.mode in ("1", "L", "I;16", "I;16B", "I;16L", "I", "F", "RGB"):
                frame = img
            elif img.mode in ("LA", "La"):
                frame = img.getchannel("L")
            else:  # P, RGBA, CMYK, YCbCr, ...
                frame = img.convert("RGB")
            array = np.array(frame)
    except (OSError, ValueError, SyntaxError, PILImage.DecompressionBombError) as exc:
        raise InvalidInput(f"the image cannot be decoded: {exc}", param=PARAM) from exc
    return _as_stack(array, rgb_last=True)


def _tiff(data: bytes) -> Pixels:
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            series = tif.series[0]
            axes = series.axes
            shape = series.shape
            _check_pixels(int(shape[axes.index("Y")]), int(shape[axes.index("X")]))
            array = series.asarray()
    except (tifffile.TiffFileError, ValueError, IndexError, OSError) as exc:
        raise InvalidInput(f"the TIFF cannot be decoded: {exc}", param=PARAM) from exc
    if "S" in axes and not axes.endswith("S"):  # planar samples: channels last
        array = np.moveaxis(array, axes.index("S"), -1)
        axes = axes.replace("S", "") + "S"
    if axes.endswith("YXS") and array.shape[-1] < 3:  # gray, or gray and alpha
        return _as_stack(array[..., 0], rgb_last=False)
    if axes.endswith("YX") or axes.endswith("YXS"):
        return _as_stack(array, rgb_last=axes.endswith("S"))
    raise InvalidInput(f"the TIFF's axes are {axes!r}, not images of Y by X", param=PARAM)


def _dicom(data: bytes) -> Pixels:
    pydicom = _optional(Format.DICOM)
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        _check_pixels(int(ds.Rows), int(ds.Columns))
        array = ds.pixel_array
    except (AttributeError, RuntimeError, NotImplementedError, ValueError, OSError) as exc:
        raise InvalidInput(f"the DICOM pixels cannot be read: {exc}", param=PARAM) from exc
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        array = array.max() - array  # shown inverted: make bright mean high signal
    samples = int(ds.get("SamplesPerPixel", 1))
    return _as_stack(array, rgb_last=samples == 3)


def _nifti(data: bytes) -> Pixels:
    nibabel = _optional(Format.NIFTI)
    raw = _gunzip(data) if data.startswith(b"\x1f\x8b") else data
    version = _nifti_version(raw)
    if version is None:
        raise InvalidInput("the gzip stream does not hold a NIfTI image", param=PARAM)
    image_class = nibabel.Nifti1Image if version == 1 else nibabel.Nifti2Image
    try:
        volume = image_class.from_bytes(raw)
        shape = volume.shape
        _check_pixels(int(shape[1]), int(shape[0]))
        array = np.asanyarray(volume.dataobj)
    except (nibabel.filebasedimages.ImageFileError, ValueError, IndexError, OSError) as exc:
        raise InvalidInput(f"the NIfTI image cannot be read: {exc}", param=PARAM) from exc
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    if array.ndim != 3:
        raise InvalidInput(
            f"the NIfTI image has shape {array.shape}; P2 segments 2-D slices of a 2-D or "
            "3-D volume",
            param=PARAM,
        )
    # voxel axes (i, j, k) -> slices along k, each with rows j and columns i
    return np.transpose(array, (2, 1, 0))


def _nifti_version(header: bytes) -> int | None:
    if len(header) >= 348 and header[344:348] == b"n+1\x00":
        return 1
    if len(header) >= 540 and header[4:8] == b"n+2\x00":
        return 2
    return None


def _gunzip(data: bytes) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        raw = inflater.decompress(data, MAX_NIFTI_BYTES)
    except zlib.error as exc:
        raise InvalidInput(f"the gzip stream is corrupt: {exc}", param=PARAM) from exc
    if inflater.unconsumed_tail:
        raise InvalidInput(
            f"the gzipped volume inflates past {MAX_NIFTI_BYTES:,} bytes", param=PARAM
        )
    return raw


_DECODERS: dict[Format, Callable[[bytes], Pixels]] = {
    Format.PNG: _pillow,
    Format.JPEG: _pillow,
    Format.TIFF: _tiff,
    Format.DICOM: _dicom,
    Format.NIFTI: _nifti,
}
