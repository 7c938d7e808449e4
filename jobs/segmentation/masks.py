"""Masks kept as their tight crop, so a job's memory grows with its objects, not with the
image size times the number of boxes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jobs.segmentation.rle import Mask


@dataclass(frozen=True)
class CroppedMask:
    height: int
    width: int
    box: tuple[int, int, int, int] | None  # [x0, y0, x1, y1] around the pixels; None: empty
    crop: Mask  # the pixels inside ``box``

    @classmethod
    def of(cls, mask: Mask) -> CroppedMask:
        """The tight crop of a full-size 2-D mask."""
        full = np.asarray(mask, dtype=bool)
        height, width = full.shape
        rows = np.flatnonzero(full.any(axis=1))
        if rows.size == 0:
            return cls(height, width, None, np.zeros((0, 0), bool))
        cols = np.flatnonzero(full.any(axis=0))
        x0, y0, x1, y1 = int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
        return cls(height, width, (x0, y0, x1, y1), full[y0:y1, x0:x1].copy())

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.crop))

    def full(self) -> Mask:
        out = np.zeros((self.height, self.width), bool)
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            out[y0:y1, x0:x1] = self.crop
        return out
