"""Output size planning: the exact rounding of scales, each fit mode, one-sided sizes, limits and bad requests."""

from __future__ import annotations

import math

import pytest

from enlarge.errors import SizeError
from enlarge.sizing import Box, SizeRequest, format_scale, parse_length, parse_scale, parse_size


@pytest.mark.parametrize(
    ("size", "scale", "expected"),
    [
        ((101, 33), 2.5, (253, 83)),  # 252.5 → 253, 82.5 → 83: half rounds up
        ((640, 480), 2.0, (1280, 960)),
        ((3, 7), 1 / 3, (1, 2)),  # 1.0 → 1, 2.33 → 2
        ((1000, 10), 0.5, (500, 5)),
    ],
)
def test_scale_rounds_half_up(size: tuple[int, int], scale: float, expected: tuple[int, int]) -> None:
    plan = SizeRequest(scale=scale).plan(size)
    w, h = size
    assert plan.render_size == plan.final_size == expected
    assert expected == (math.floor(w * scale + 0.5), math.floor(h * scale + 0.5))
    assert plan.crop is None and plan.pad is None


def test_contain_keeps_aspect_inside_the_box() -> None:
    plan = SizeRequest(size=(300, 300), fit="contain").plan((200, 100))
    assert plan.render_size == plan.final_size == (300, 150)
    tall = SizeRequest(size=(300, 300)).plan((100, 200))  # contain is the default
    assert tall.final_size == (150, 300)


def test_cover_fills_then_centre_crops() -> None:
    plan = SizeRequest(size=(300, 300), fit="cover").plan((200, 100))
    assert plan.render_size == (600, 300)
    assert plan.final_size == (300, 300)
    assert plan.crop == Box(150, 0, 450, 300)


def test_pad_contains_then_centres_on_the_box() -> None:
    plan = SizeRequest(size=(300, 301), fit="pad").plan((200, 100))
    assert plan.render_size == (300, 150)
    assert plan.final_size == (300, 301)
    assert plan.pad == Box(0, 75, 300, 225)


def test_stretch_gives_the_exact_box() -> None:
    plan = SizeRequest(size=(123, 45), fit="stretch").plan((200, 100))
    assert plan.render_size == plan.final_size == (123, 45)


def test_same_aspect_needs_no_crop_or_pad() -> None:
    for fit in ("cover", "pad"):
        plan = SizeRequest(size=(400, 200), fit=fit).plan((200, 100))
        assert plan.render_size == plan.final_size == (400, 200)
        assert plan.crop is None and plan.pad is None


def test_one_side_keeps_the_aspect_ratio() -> None:
    assert SizeRequest(width=505).plan((101, 33)).final_size == (505, 165)
    assert SizeRequest(height=66).plan((101, 33)).final_size == (202, 66)
    assert SizeRequest(width=300, height=300).plan((200, 100)).final_size == (300, 150)  # both = a contained box


def test_smaller_target_is_a_downscale_not_an_error() -> None:
    plan = SizeRequest(size=(50, 50)).plan((200, 100))
    assert plan.final_size == (50, 25)
    assert not plan.enlarges
    assert SizeRequest(scale=1.0).plan((20, 10)).is_identity


def test_labels_for_file_names() -> None:
    assert SizeRequest(scale=2.0).label == "x2"
    assert SizeRequest(scale=2.5).label == "x2.5"
    assert SizeRequest(size=(640, 480)).label == "640x480"
    assert SizeRequest(width=800).label == "w800"
    assert SizeRequest(height=600).label == "h600"
    assert format_scale(1 / 3) == "0.333333"


@pytest.mark.parametrize("scale", [0.0, -1.0, math.nan, math.inf, -math.inf])
def test_bad_scales_are_refused(scale: float) -> None:
    with pytest.raises(SizeError, match="positive finite"):
        SizeRequest(scale=scale)


@pytest.mark.parametrize("kwargs", [{}, {"scale": 2.0, "size": (10, 10)}, {"scale": 2.0, "width": 10}])
def test_exactly_one_kind_of_size(kwargs: dict) -> None:
    with pytest.raises(SizeError, match="exactly one"):
        SizeRequest(**kwargs)


def test_bad_sizes_and_fit_are_refused() -> None:
    with pytest.raises(SizeError, match="zero or negative"):
        SizeRequest(size=(0, 10))
    with pytest.raises(SizeError, match="zero or negative"):
        SizeRequest(width=-5)
    with pytest.raises(SizeError, match="unknown fit"):
        SizeRequest(size=(10, 10), fit="squash")
    with pytest.raises(SizeError, match="output limit must be a positive"):
        SizeRequest(scale=2.0, max_output_mp=0)


def test_output_limit_names_the_numbers_and_the_flag() -> None:
    with pytest.raises(SizeError, match=r"20000x10000 \(200\.0 MP\).*above the 100 MP output limit.*raise the limit"):
        SizeRequest(scale=100.0, max_output_mp=100).plan((200, 100))
    # cover renders more than it writes: the render counts too
    with pytest.raises(SizeError, match="intermediate render"):
        SizeRequest(size=(1000, 10), fit="cover", max_output_mp=0.5).plan((100, 100))


@pytest.mark.parametrize(
    ("request_", "shown"),
    [
        (SizeRequest(scale=1e308), "at scale 1e+308"),  # past the float range: no size to round
        (SizeRequest(scale=1e200), "with a side over 1,000,000,000 pixels"),  # a finite float, a huge integer
        (SizeRequest(width=10**400), "with a side over 1,000,000,000 pixels"),
        (SizeRequest(size=(10**400, 10**400), fit="stretch"), "with a side over 1,000,000,000 pixels"),
    ],
)
def test_absurd_sizes_are_over_the_limit_not_an_overflow(request_: SizeRequest, shown: str) -> None:
    with pytest.raises(SizeError) as excinfo:
        request_.plan((3, 2))
    expected = f"output {shown} is above the 200 MP output limit; ask for a smaller size or raise the limit"
    assert str(excinfo.value) == expected


def test_a_scale_that_rounds_to_nothing_is_refused() -> None:
    with pytest.raises(SizeError, match="would be 0x0"):
        SizeRequest(scale=0.001).plan((100, 100))


def test_parsers() -> None:
    assert parse_scale("2.5") == 2.5
    assert parse_scale("3x") == 3.0
    assert math.isnan(parse_scale("nan"))  # parsed; SizeRequest refuses it with the clear message
    assert parse_size("640x480") == (640, 480)
    assert parse_size("640×480") == (640, 480)
    assert parse_length("800", "width") == 800
    with pytest.raises(SizeError, match="not a number"):
        parse_scale("big")
    with pytest.raises(SizeError, match="WIDTHxHEIGHT"):
        parse_size("640")
    with pytest.raises(SizeError, match="zero or negative"):
        parse_size("0x10")
    with pytest.raises(SizeError, match="whole number"):
        parse_length("8.5", "width")


@pytest.mark.parametrize("make", [
    lambda: SizeRequest(width=0),
    lambda: SizeRequest(scale=0),
    lambda: SizeRequest(size=(10, 0)),
    lambda: SizeRequest(),
    lambda: SizeRequest(scale=2, max_output_mp=0),
    lambda: SizeRequest(scale=1e6).plan((100, 100)),
    lambda: parse_scale("two"),
    lambda: parse_size("big"),
    lambda: parse_length("x", "height"),
])
def test_library_messages_name_no_command_line_flags(make) -> None:
    """Messages reach HTTP bodies too: settings in plain words; `setting` lets the CLI add its own flag."""
    with pytest.raises(SizeError) as caught:
        make()
    assert "--" not in str(caught.value)
