"""COCO RLE: the same strings as pycocotools, and lossless round trips."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.segmentation import rle

# Encoded by pycocotools 2.0.11 (pycocotools.mask.encode of the Fortran-ordered uint8 mask).
SMALL = "5172L05"
DISC = "nZ11i1<H4L4L4M2N2N2N2O0O2O0O2O0O2O000000000O20N10000000001N101N101N101N2N2N2N3L4L4L8DXS1"


def small_mask() -> rle.Mask:
    mask = np.zeros((6, 5), bool)
    mask[1:4, 2:4] = True
    mask[5, 0] = True
    return mask


def disc_mask() -> rle.Mask:
    yy, xx = np.mgrid[:64, :80]
    return np.asarray((yy - 30) ** 2 + (xx - 41) ** 2 <= 20**2)


@pytest.mark.parametrize(
    ("mask", "counts"), [(small_mask(), SMALL), (disc_mask(), DISC)], ids=["small", "disc"]
)
def test_encoding_matches_pycocotools(mask: rle.Mask, counts: str) -> None:
    encoded = rle.encode(mask)
    assert encoded == {"size": [mask.shape[0], mask.shape[1]], "counts": counts}
    assert np.array_equal(rle.decode({"size": list(mask.shape), "counts": counts}), mask)


def test_pycocotools_bytes_counts_decode() -> None:
    assert np.array_equal(rle.decode({"size": [6, 5], "counts": SMALL.encode()}), small_mask())


def test_counts_run_down_columns_starting_with_zeros() -> None:
    mask = np.array([[1, 0], [1, 1]], bool)  # column-major: 1 1 0 1
    assert rle.counts_of(mask) == [0, 2, 1, 1]
    assert rle.counts_of(np.zeros((2, 3), bool)) == [6]


@pytest.mark.parametrize("seed", range(20))
def test_round_trip(seed: int) -> None:
    rng = np.random.default_rng(seed)
    height, width = (int(v) for v in rng.integers(1, 60, 2))
    mask = rng.random((height, width)) < rng.random()
    assert np.array_equal(rle.decode(rle.encode(mask)), mask)


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (40, 1)])
@pytest.mark.parametrize("fill", [False, True])
def test_round_trip_of_uniform_masks(shape: tuple[int, int], fill: bool) -> None:
    mask = np.full(shape, fill)
    assert np.array_equal(rle.decode(rle.encode(mask)), mask)


def test_a_large_mask_with_long_runs_round_trips() -> None:
    mask = np.zeros((3000, 2000), bool)
    mask[100:2900, 50:1950] = True
    mask[1500, 1000] = False
    assert np.array_equal(rle.decode(rle.encode(mask)), mask)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"size": [6, 5], "counts": "5172L0"}, "do not cover"),
        ({"size": [6, 6], "counts": SMALL}, "do not cover"),
        ({"size": [6, 5], "counts": "5 72L05"}, "cannot occur"),
        ({"size": [6, 5], "counts": "5172L0o"}, "middle of a count"),
        ({"counts": SMALL}, "size"),
        ({"size": [6, 5], "counts": [5, 1, 7]}, "compressed string"),
    ],
)
def test_invalid_rle_is_refused(value: dict[str, object], message: str) -> None:
    with pytest.raises(rle.RLEError, match=message):
        rle.decode(value)


def test_only_2d_masks_encode() -> None:
    with pytest.raises(rle.RLEError, match="2-D"):
        rle.encode(np.zeros((2, 2, 2), bool))
