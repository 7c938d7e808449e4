"""COCO run-length encoding of binary masks, byte-compatible with ``pycocotools.mask``.

A mask is flattened column-major (down the first column, then the next), the run
lengths alternate starting with a run of zeros, and the counts are written as
COCO's compressed string: each count (after the third, as the difference to the
count two before it) in 5-bit groups, least significant first, offset by 48, with
bit 0x20 marking "more groups follow" and the sign taken from bit 0x10 of the
last group. ``{"size": [h, w], "counts": "..."}`` decodes with
``pycocotools.mask.decode`` unchanged, and this module decodes what it writes.
"""

from __future__ import annotations

from typing import Any, TypedDict

import numpy as np
import numpy.typing as npt

Mask = npt.NDArray[np.bool_]


class RLE(TypedDict):
    size: list[int]  # [height, width]
    counts: str


class RLEError(ValueError):
    """A string or size that is not a valid COCO RLE."""


def counts_of(mask: Mask) -> list[int]:
    """Run lengths of ``mask`` in column-major order, starting with the zeros (maybe 0)."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return []
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], edges, [flat.size]))
    runs = np.diff(bounds).tolist()
    return [0, *runs] if flat[0] else runs


def counts_to_string(counts: list[int]) -> str:
    out: list[str] = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        while True:
            group = x & 0x1F
            x >>= 5  # arithmetic shift: a negative difference ends in -1
            more = x != -1 if group & 0x10 else x != 0
            out.append(chr(group + 48 + (0x20 if more else 0)))
            if not more:
                break
    return "".join(out)


def string_to_counts(text: str) -> list[int]:
    counts: list[int] = []
    x = shift = 0
    for char in text:
        code = ord(char) - 48
        if not 0 <= code < 64:
            raise RLEError(f"character {char!r} cannot occur in a COCO RLE string")
        x |= (code & 0x1F) << shift
        shift += 5
        if code & 0x20:
            continue
        if code & 0x10:
            x |= -1 << shift
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
        x = shift = 0
    if shift:
        raise RLEError("the RLE string ends in the middle of a count")
    return counts


def encode(mask: Mask) -> RLE:
    """The COCO compressed RLE of a 2-D mask."""
    array = np.asarray(mask)
    if array.ndim != 2:
        raise RLEError(f"a mask is 2-D, got shape {array.shape}")
    height, width = array.shape
    return {"size": [int(height), int(width)], "counts": counts_to_string(counts_of(array))}


def decode(rle: RLE | dict[str, Any]) -> Mask:
    """The mask an RLE describes (``counts`` as a string or pycocotools' bytes)."""
    try:
        height, width = (int(v) for v in rle["size"])
        raw = rle["counts"]
    except (KeyError, TypeError, ValueError) as exc:
        raise RLEError("an RLE is {'size': [height, width], 'counts': '...'}") from exc
    text = raw.decode("ascii") if isinstance(raw, bytes) else raw
    if not isinstance(text, str):
        raise RLEError("RLE counts must be the compressed string")
    counts = string_to_counts(text)
    if any(c < 0 for c in counts) or sum(counts) != height * width:
        raise RLEError(f"the RLE counts do not cover a {height}x{width} mask")
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return flat.reshape((height, width), order="F")
