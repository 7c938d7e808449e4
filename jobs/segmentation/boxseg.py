"""Weight-free box-prompted segmentation: a marker watershed seeded by the box.

For one box:

1. Crop the box plus a context pad (15% of its long side, at least 4 px); gray
   float (RGB to luminance, any dtype and scale); Gaussian blur, sigma 1. Crops
   longer than 96 px are block-mean downscaled first and the mask is upsampled
   bilinearly, so a large object costs about as much as a small one.
2. Polarity: if the centre of the box is darker than its border ring (ring sides on
   the image border left out), invert, so the object is the bright one. Bright
   fluorescence and dark stains work alike.
3. Markers: background is the pad outside the box plus in-box pixels below the
   ring's median; the object seed is a centred ellipse at ``SEED_SCALE`` of the
   box's half-axes, keeping the pixels above ``SEED_GATE`` of the way from that
   median to the centre's 90th percentile.
4. Watershed on the Sobel gradient between the markers; clip to the box, a 1-px
   opening, the largest component, holes filled.

A neighbour that pokes into the box also lies outside it, where it is seeded as
background, so the flood stops at the edge between the two (plain thresholding
keeps the neighbour). No weights and no ground truth: the two constants were
chosen on half of a nuclei set (124 nuclei of the 2018 Data Science Bowl, boxes
= ground-truth box + 0-5 px) and checked on the other half: Dice 0.897 held out,
0.904 on all, against 0.835 for Otsu in the box (see docs/segmentation.md). It expects
one roughly convex object filling most of a reasonably tight box; with 20 px of
slack around the object, Dice drops to about 0.79.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from skimage import filters, segmentation, transform

from jobs.segmentation.boxes import Box

SEED_SCALE = 0.65  # object seed: this fraction of the box's half-axes
SEED_GATE = 0.25  # ... keeping pixels this far from background to object level
SIGMA = 1.0
MAX_SIDE = 96  # longer crops (box + pad) are segmented downscaled

Mask = npt.NDArray[np.bool_]
Gray = npt.NDArray[np.float32]
IntBox = tuple[int, int, int, int]
Edges = tuple[bool, bool, bool, bool]  # left, top, right, bottom on the image border

LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def to_gray(image: npt.NDArray[Any]) -> Gray:
    """``HxW`` or ``HxWxC`` (C = 1, or 3+ with the first three RGB) to float32 ``HxW``."""
    array = np.asarray(image)
    if array.ndim == 3:  # colour to luminance; a single channel as it is
        array = array[..., :3].astype(np.float32) @ LUMA if array.shape[2] >= 3 else array[..., 0]
    if array.ndim != 2:
        raise ValueError(f"expected an HxW or HxWxC image, got shape {np.shape(image)}")
    return array.astype(np.float32, copy=False)


def segment_box(image: npt.NDArray[Any], box: Box) -> Mask:
    """The mask (full image size, ``True`` only inside the box) of the object in ``box``.

    ``box`` is ``[x0, y0, x1, y1]`` inside the image (``boxes.check_inside``), rounded
    to whole pixels. A box under 3 px on a side, or one without contrast, comes back
    filled; one that rounds to nothing comes back empty.
    """
    height, width = image.shape[:2]
    x0, y0, x1, y1 = (round(v) for v in box)
    out = np.zeros((height, width), bool)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return out
    if x1 - x0 < 3 or y1 - y0 < 3:
        out[y0:y1, x0:x1] = True  # too thin to have an inside and a border
        return out
    pad = max(4, round(0.15 * max(x1 - x0, y1 - y0)))
    cx0, cy0 = max(0, x0 - pad), max(0, y0 - pad)
    cx1, cy1 = min(width, x1 + pad), min(height, y1 + pad)
    crop = to_gray(image[cy0:cy1, cx0:cx1])  # only the crop: cost independent of image size
    local: IntBox = (x0 - cx0, y0 - cy0, x1 - cx0, y1 - cy0)
    edges: Edges = (x0 == 0, y0 == 0, x1 == width, y1 == height)
    factor = -(-max(crop.shape) // MAX_SIDE)
    if factor > 1:
        mask = _segment_downscaled(crop, local, edges, factor)
    else:
        mask = _segment_crop(crop, local, edges)
    out[cy0:cy1, cx0:cx1] = mask
    return out


def _segment_downscaled(crop: Gray, local: IntBox, edges: Edges, k: int) -> Mask:
    """Segment a ``k``-times block-mean reduced crop and upsample the mask bilinearly."""
    padded = np.pad(crop, ((0, -crop.shape[0] % k), (0, -crop.shape[1] % k)), mode="edge")
    rows, cols = padded.shape[0] // k, padded.shape[1] // k
    small = padded.reshape(rows, k, cols, k).mean(axis=(1, 3), dtype=np.float32)
    x0, y0 = local[0] // k, local[1] // k
    x1 = min(max(x0 + 3, -(-local[2] // k)), cols)
    y1 = min(max(y0 + 3, -(-local[3] // k)), rows)
    coarse = _segment_crop(small, (x0, y0, x1, y1), edges)
    up = _resize(coarse.astype(np.float32), padded.shape) > 0.5
    mask = up[: crop.shape[0], : crop.shape[1]]
    inside = np.zeros(crop.shape, bool)
    inside[local[1] : local[3], local[0] : local[2]] = True
    return np.asarray(mask & inside, dtype=bool)


def _segment_crop(crop: Gray, local: IntBox, edges: Edges) -> Mask:
    """The method on a float crop with the box at ``local``; returns the crop's mask."""
    x0, y0, x1, y1 = local
    inside = np.zeros(crop.shape, bool)
    inside[y0:y1, x0:x1] = True
    smooth = ndimage.gaussian_filter(crop, SIGMA)
    ring = _ring(crop.shape, local, edges, width=max(1, min(2, min(x1 - x0, y1 - y0) // 4)))
    centre = _ellipse(crop.shape, local, 0.5) & inside
    if np.median(smooth[centre]) < np.median(smooth[ring]):
        smooth = -smooth  # a dark object on a bright background
    background = float(np.median(smooth[ring]))
    foreground = float(np.percentile(smooth[centre], 90))
    if foreground - background <= 1e-6 * (abs(background) + abs(foreground) + 1e-12):
        return inside  # no contrast in the box: the box is the best guess
    markers = np.zeros(crop.shape, np.int32)
    markers[~inside] = 1
    markers[inside & (smooth < background)] = 1
    seed = _ellipse(crop.shape, local, SEED_SCALE) & inside
    gated = seed & (smooth > background + SEED_GATE * (foreground - background))
    seed = gated if gated.any() else seed
    markers[seed] = 2
    mask = (_watershed(_sobel(smooth), markers) == 2) & inside
    mask = ndimage.binary_opening(mask)
    labels, count = ndimage.label(mask)
    if count == 0:
        mask = seed
    elif count > 1:
        mask = labels == np.bincount(labels.ravel())[1:].argmax() + 1
    return np.asarray(ndimage.binary_fill_holes(mask), dtype=bool)


# scikit-image's functions are untyped: typed entry points for the three used here.
def _resize(image: Gray, shape: tuple[int, ...]) -> Gray:
    """Bilinear resize."""
    return np.asarray(transform.resize(image, shape, order=1), np.float32)  # type: ignore[no-untyped-call]


def _sobel(image: Gray) -> Gray:
    return np.asarray(filters.sobel(image), np.float32)  # type: ignore[no-untyped-call]


def _watershed(gradient: Gray, markers: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
    return np.asarray(segmentation.watershed(gradient, markers), np.int32)  # type: ignore[no-untyped-call]


def _ellipse(shape: tuple[int, ...], local: IntBox, scale: float) -> Mask:
    """A filled ellipse inscribed in ``local``, its half-axes times ``scale``."""
    x0, y0, x1, y1 = local
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    cy, cx = (y0 + y1 - 1) / 2.0, (x0 + x1 - 1) / 2.0
    ry, rx = max((y1 - y0) / 2.0 * scale, 0.5), max((x1 - x0) / 2.0 * scale, 0.5)
    return np.asarray(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0)


def _ring(shape: tuple[int, ...], local: IntBox, edges: Edges, width: int) -> Mask:
    """The box's inner border of ``width`` px, without sides on the image border (an
    object cut by the image edge fills that side; it is not background there)."""
    x0, y0, x1, y1 = local
    left, top, right, bottom = edges
    ring = np.zeros(shape[:2], bool)
    if not top:
        ring[y0 : y0 + width, x0:x1] = True
    if not bottom:
        ring[y1 - width : y1, x0:x1] = True
    if not left:
        ring[y0:y1, x0 : x0 + width] = True
    if not right:
        ring[y0:y1, x1 - width : x1] = True
    if not ring.any():
        ring[y0:y1, x0:x1] = True
    return ring
