"""Box prompts: ``[x0, y0, x1, y1]`` in pixel-edge coordinates, checked with errors that
name the box.

``[0, 0, width, height]`` is the whole image; a box covers the pixels whose centres
lie inside it, so ``[2, 3, 5, 7]`` is columns 2..4 and rows 3..6. Coordinates may be
fractional. Shape and order are checked at submit time; that the box lies inside the
image is checked once the image is decoded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from jobs.registry import InvalidInput

Box = tuple[float, float, float, float]

MAX_BOXES = 1000
PARAM = "input.boxes"


def parse_boxes(value: object) -> list[Box]:
    """The boxes of a job's input, or ``InvalidInput`` naming the first bad one."""
    if not isinstance(value, list) or not value:
        raise InvalidInput(
            "input.boxes must be a non-empty list of boxes [x0, y0, x1, y1]", param=PARAM
        )
    if len(value) > MAX_BOXES:
        raise InvalidInput(
            f"input.boxes has {len(value)} boxes; at most {MAX_BOXES} per job", param=PARAM
        )
    if len(value) == 4 and all(_is_number(v) for v in value):
        raise InvalidInput(
            f"input.boxes is a list of boxes: write [{value!r}] for one box", param=PARAM
        )
    return [_parse_box(i, item) for i, item in enumerate(value)]


def _parse_box(index: int, item: object) -> Box:
    param = f"{PARAM}[{index}]"
    if not isinstance(item, list | tuple) or len(item) != 4 or not all(map(_is_number, item)):
        raise InvalidInput(
            f"box {index} must be [x0, y0, x1, y1], four numbers; got {item!r}", param=param
        )
    x0, y0, x1, y1 = (float(v) for v in item)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise InvalidInput(f"box {index} {list(item)!r} has a non-finite coordinate", param=param)
    if x1 <= x0 or y1 <= y0:
        raise InvalidInput(
            f"box {index} {list(item)!r} is empty or reversed: [x0, y0, x1, y1] needs "
            "x1 > x0 and y1 > y0",
            param=param,
        )
    return (x0, y0, x1, y1)


def check_inside(boxes: Sequence[Box], width: int, height: int) -> None:
    """Every box within ``[0, 0, width, height]``, or ``InvalidInput`` naming the first."""
    for index, (x0, y0, x1, y1) in enumerate(boxes):
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            raise InvalidInput(
                f"box {index} {_show((x0, y0, x1, y1))} is not inside the {width}x{height} "
                f"image: x must lie in 0..{width} and y in 0..{height}",
                param=f"{PARAM}[{index}]",
            )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _show(box: Box) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"
