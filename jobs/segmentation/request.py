"""A segmentation job's input and config: checked cheaply at submit time, decoded on the
worker.

Input: the image as ``image_file_id`` (an uploaded file: ``/v1/files``) or inline as
``image`` (base64, or a ``data:`` URL, for small images), ``boxes`` (a list of
``[x0, y0, x1, y1]``) and, for a file that holds several 2-D images, ``slice``.
Config: ``png`` (true: each mask also as a 1-bit PNG artifact of the job).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.registry import InvalidInput
from jobs.segmentation import images
from jobs.segmentation.boxes import Box, check_inside, parse_boxes

INPUT_KEYS = ("image", "image_file_id", "boxes", "slice")
CONFIG_KEYS = ("png",)


@dataclass(frozen=True)
class Request:
    image: images.Image
    boxes: list[Box]
    png: bool


def validate(input: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """Refuse a malformed job before it is queued (the image itself is read on the worker)."""
    _known(input, INPUT_KEYS, "input")
    _known(config, CONFIG_KEYS, "config")
    has_inline, has_file = "image" in input, "image_file_id" in input
    if has_inline == has_file:
        raise InvalidInput(
            "give the image as exactly one of input.image_file_id (an uploaded file) or "
            "input.image (base64)",
            param="input.image_file_id",
        )
    if has_inline:
        _inline_bytes(input["image"])
    elif not isinstance(input["image_file_id"], str) or not input["image_file_id"]:
        raise InvalidInput("input.image_file_id must be a file id", param="input.image_file_id")
    parse_boxes(input.get("boxes"))
    _slice(input)
    _png(config)


def prepare(
    input: Mapping[str, Any], files: Mapping[str, Path], config: Mapping[str, Any]
) -> Request:
    """Decode the image and check the boxes against it."""
    validate(input, config)
    if "image" in input:
        data = _inline_bytes(input["image"])
    else:
        path = files.get(input["image_file_id"])
        if path is None:
            raise InvalidInput(
                f"the input file '{input['image_file_id']}' is not available to this job",
                param="input.image_file_id",
            )
        data = path.read_bytes()
    image = images.decode(data, slice_index=_slice(input))
    boxes = parse_boxes(input["boxes"])
    check_inside(boxes, image.width, image.height)
    return Request(image=image, boxes=boxes, png=_png(config))


def _known(values: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in values:
        if key not in known:
            raise InvalidInput(
                f"{where}.{key} is not a segmentation {where} field; known: {', '.join(known)}",
                param=f"{where}.{key}",
            )


def _inline_bytes(value: object) -> bytes:
    if not isinstance(value, str) or not value:
        raise InvalidInput("input.image must be a base64 string", param="input.image")
    text = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("input.image is not valid base64", param="input.image") from None


def _slice(input: Mapping[str, Any]) -> int | None:
    value = input.get("slice")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidInput("input.slice must be an integer >= 0", param="input.slice")
    return value


def _png(config: Mapping[str, Any]) -> bool:
    value = config.get("png", False)
    if not isinstance(value, bool):
        raise InvalidInput("config.png must be true or false", param="config.png")
    return value
