"""Box prompts: accepted as given, refused with a message that names the box."""

from __future__ import annotations

import pytest

from jobs.registry import InvalidInput
from jobs.segmentation.boxes import MAX_BOXES, Box, check_inside, parse_boxes


def test_boxes_parse_as_floats_in_order() -> None:
    assert parse_boxes([[0, 1, 2, 3], [0.5, 1.5, 4, 9.25]]) == [
        (0.0, 1.0, 2.0, 3.0),
        (0.5, 1.5, 4.0, 9.25),
    ]


@pytest.mark.parametrize(
    ("value", "param", "message"),
    [
        (None, "input.boxes", "non-empty list"),
        ([], "input.boxes", "non-empty list"),
        ("0,0,4,4", "input.boxes", "non-empty list"),
        ([0, 0, 4, 4], "input.boxes", r"write \[\[0, 0, 4, 4\]\] for one box"),
        ([[0, 0, 4, 4], [1, 2, 3]], "input.boxes[1]", "box 1 must be .*four numbers"),
        ([[0, 0, 4, 4], ["0", 0, 4, 4]], "input.boxes[1]", "box 1 must be"),
        ([[True, 0, 4, 4]], "input.boxes[0]", "box 0 must be"),
        ([[0, 0, 4, 4], [0, 0, 4, 4], [0, 0, float("nan"), 4]], "input.boxes[2]", "non-finite"),
        ([[5, 0, 4, 4]], "input.boxes[0]", "box 0 .*reversed.*x1 > x0"),
        ([[0, 4, 4, 4]], "input.boxes[0]", "box 0 .*empty"),
    ],
)
def test_malformed_boxes_are_refused_by_index(value: object, param: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        parse_boxes(value)
    assert caught.value.param == param


def test_too_many_boxes_are_refused() -> None:
    with pytest.raises(InvalidInput, match=f"at most {MAX_BOXES}"):
        parse_boxes([[0, 0, 1, 1]] * (MAX_BOXES + 1))


def test_boxes_touching_the_image_edges_are_inside() -> None:
    check_inside([(0, 0, 80, 64), (10.5, 3, 80, 64)], width=80, height=64)


@pytest.mark.parametrize(
    "box", [(-1, 0, 10, 10), (0, -0.5, 10, 10), (0, 0, 81, 10), (0, 0, 10, 64.5)]
)
def test_a_box_outside_the_image_is_refused_by_index(box: Box) -> None:
    boxes = [(0.0, 0.0, 5.0, 5.0), (1.0, 1.0, 6.0, 6.0), box]
    with pytest.raises(InvalidInput, match=r"box 2 \[.*\] is not inside the 80x64 image") as e:
        check_inside(boxes, width=80, height=64)
    assert e.value.param == "input.boxes[2]"
