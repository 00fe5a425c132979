"""Output size planning: from a scale, a target size and a fit mode to the exact pixels rendered and written.

A request (`SizeRequest`) is validated once, before any file is read, so a bad `--scale` fails a whole batch at
once; `SizeRequest.plan(input_size)` then gives each image its `SizePlan`:

- `render_size`: the size the image is resampled to (the model enlarges, Lanczos shrinks);
- `crop`: for `cover`, the centred box of the render that is kept;
- `pad`: for `pad`, where the render sits on the final canvas (the rest is transparent or a background colour);
- `final_size`: what is written.

All sizes are (width, height). Rounding is half up, `floor(x + 0.5)`, in exact integer arithmetic where the
inputs are integers, so a 2.5× of 101 pixels is always 253.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from enlarge.errors import SizeError
from enlarge.imageio.reading import DEFAULT_MAX_INPUT_PIXELS

FITS = ("contain", "cover", "pad", "stretch")
DEFAULT_FIT = "contain"  # never a silent stretch: the aspect ratio is kept unless asked otherwise
DEFAULT_MAX_OUTPUT_MP = 200.0
PIXELS_PER_MP = 1_000_000
DEFAULT_MAX_INPUT_MP = DEFAULT_MAX_INPUT_PIXELS / PIXELS_PER_MP
MAX_SHOWN_SIDE = 10**9  # a size with a longer side is described in words in messages, not as hundreds of digits
# Colour of the padding added by `--fit pad` when the image has no alpha and no background is given (RGB 0-255).
DEFAULT_PAD_COLOR = (0, 0, 0)
_SIZE_PATTERN = re.compile(r"^\s*(-?\d+)\s*[x×X*]\s*(-?\d+)\s*$")

Size = tuple[int, int]  # (width, height)


@dataclass(frozen=True)
class Box:
    """A pixel rectangle `[left, right) × [top, bottom)`."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def size(self) -> Size:
        return self.right - self.left, self.bottom - self.top


@dataclass(frozen=True)
class SizePlan:
    """How one image becomes its output: resample to `render_size`, then crop or pad to `final_size`."""

    input_size: Size
    render_size: Size
    final_size: Size
    fit: str | None = None  # None for --scale / --width / --height, where the render is the output
    crop: Box | None = None  # cover: the part of the render that is kept
    pad: Box | None = None  # pad: where the render is placed on the final canvas

    @property
    def is_identity(self) -> bool:
        """True when nothing changes: no resampling, crop or padding."""
        return self.input_size == self.render_size == self.final_size

    @property
    def enlarges(self) -> bool:
        """True when the render is larger than the input along at least one axis (the model's work)."""
        return self.render_size[0] > self.input_size[0] or self.render_size[1] > self.input_size[1]


@dataclass(frozen=True)
class SizeRequest:
    """What the user asked for: exactly one of `scale`, `size`, or `width` and/or `height`; validated on creation.

    `width` and `height` together mean `size=(width, height)`; either alone keeps the aspect ratio.
    """

    scale: float | None = None
    size: Size | None = None
    width: int | None = None
    height: int | None = None
    fit: str = DEFAULT_FIT
    max_output_mp: float = DEFAULT_MAX_OUTPUT_MP

    def __post_init__(self) -> None:
        given = [self.scale is not None, self.size is not None, self.width is not None or self.height is not None]
        if sum(given) != 1:
            raise SizeError("give exactly one of a scale, a size (WIDTHxHEIGHT), or a width and/or a height")
        if self.scale is not None and (not math.isfinite(self.scale) or self.scale <= 0):
            raise SizeError(f"scale must be a positive finite number, got {self.scale}; e.g. 2.5", setting="scale")
        if self.size is not None:
            _check_sides(self.size, f"size {self.size[0]}x{self.size[1]}", "size")
        for name, value in (("width", self.width), ("height", self.height)):
            if value is not None:
                _check_sides((value,), f"{name} {value}", name)
        if self.fit not in FITS:
            raise SizeError(f"unknown fit {self.fit!r}; use one of {', '.join(FITS)}", setting="fit")
        if not math.isfinite(self.max_output_mp) or self.max_output_mp <= 0:
            raise SizeError(
                f"the output limit must be a positive number of megapixels, got {self.max_output_mp}",
                setting="max_output_mp",
            )

    @property
    def target(self) -> Size | None:
        """The box asked for with --size, or --width and --height together; None otherwise."""
        if self.size is not None:
            return self.size
        if self.width is not None and self.height is not None:
            return self.width, self.height
        return None

    @property
    def label(self) -> str:
        """A short tag for output file names: `x2.5`, `640x480`, `w800`, `h600`."""
        if self.scale is not None:
            return f"x{format_scale(self.scale)}"
        target = self.target
        if target is not None:
            return f"{target[0]}x{target[1]}"
        return f"w{self.width}" if self.width is not None else f"h{self.height}"

    def plan(self, input_size: Size) -> SizePlan:
        """The plan for an image of `input_size` (width, height); SizeError if it would exceed the output limit."""
        in_w, in_h = input_size
        if in_w < 1 or in_h < 1:
            raise SizeError(f"input size {in_w}x{in_h} is empty; nothing to enlarge")
        target = self.target
        if self.scale is not None:
            scaled = (in_w * self.scale, in_h * self.scale)
            if not all(math.isfinite(side) for side in scaled):  # past the float range: over any limit
                raise self._over_limit("output", f"at scale {format_scale(self.scale)}")
            plan = _simple(input_size, (_round_half_up(scaled[0]), _round_half_up(scaled[1])))
        elif target is None and self.width is not None:
            plan = _simple(input_size, (self.width, _scaled_side(in_h, self.width, in_w)))
        elif target is None:
            plan = _simple(input_size, (_scaled_side(in_w, self.height, in_h), self.height))
        else:
            plan = _fit(input_size, target, self.fit)
        self._check_limit(plan)
        return plan

    def _check_limit(self, plan: SizePlan) -> None:
        """SizeError for an empty output or render, or one above `max_output_mp`; exact for sides of any size."""
        for what, (w, h) in (("output", plan.final_size), ("intermediate render", plan.render_size)):
            if w < 1 or h < 1:
                raise SizeError(
                    f"{what} size for a {plan.input_size[0]}x{plan.input_size[1]} input would be {w}x{h}; "
                    "use a larger scale or size"
                )
            if w * h > self.max_output_mp * PIXELS_PER_MP:  # integer against float: no overflow
                raise self._over_limit(what, _describe_size(w, h))

    def _over_limit(self, what: str, shown: str) -> SizeError:
        return SizeError(
            f"{what} {shown} is above the {self.max_output_mp:g} MP output limit; "
            "ask for a smaller size or raise the limit",
            setting="max_output_mp",
        )


def parse_scale(text: str) -> float:
    """A scale factor from the command line: `2`, `2.5`, `2x`; SizeError if not a number."""
    cleaned = text.strip().rstrip("xX×")
    try:
        return float(cleaned)
    except ValueError:
        raise SizeError(f"scale {text!r} is not a number; e.g. 2.5", setting="scale") from None


def parse_size(text: str) -> Size:
    """`WxH` (also `W×H`) → (width, height); SizeError if malformed or a side is not at least 1."""
    match = _SIZE_PATTERN.match(text)
    if match is None:
        raise SizeError(f"size {text!r} is not WIDTHxHEIGHT; e.g. 1920x1080", setting="size")
    size = (int(match.group(1)), int(match.group(2)))
    _check_sides(size, f"size {text.strip()}", "size")
    return size


def parse_length(text: str, side: str) -> int:
    """A side length (`side` is "width" or "height"); SizeError if not a positive integer."""
    try:
        value = int(text.strip())
    except ValueError:
        raise SizeError(f"{side} {text!r} is not a whole number of pixels", setting=side) from None
    _check_sides((value,), f"{side} {value}", side)
    return value


def format_scale(scale: float) -> str:
    """A scale as people write it: 2 → `2`, 2.5 → `2.5`, 1/3 → `0.333333`."""
    return f"{scale:g}"


def _check_sides(sides: tuple[int, ...], what: str, setting: str) -> None:
    if any(side < 1 for side in sides):
        raise SizeError(f"{what} has a zero or negative side; every side must be at least 1 pixel", setting=setting)


def _describe_size(w: int, h: int) -> str:
    """`WxH (N MP)` for messages; a size with a side past MAX_SHOWN_SIDE in words."""
    if max(w, h) > MAX_SHOWN_SIDE:
        return f"with a side over {MAX_SHOWN_SIDE:,} pixels"
    return f"{w}x{h} ({w * h / PIXELS_PER_MP:.1f} MP)"


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def _scaled_side(side: int, numerator: int, denominator: int) -> int:
    """round_half_up(side · numerator / denominator) in exact integers, at least 1."""
    return max(1, (2 * side * numerator + denominator) // (2 * denominator))


def _simple(input_size: Size, size: Size) -> SizePlan:
    return SizePlan(input_size=input_size, render_size=size, final_size=size)


def _contain(input_size: Size, target: Size) -> Size:
    """Largest size with the input's aspect ratio inside `target`: one side equals the target's."""
    (in_w, in_h), (tw, th) = input_size, target
    if tw * in_h <= th * in_w:  # width is the tighter constraint
        return tw, _scaled_side(in_h, tw, in_w)
    return _scaled_side(in_w, th, in_h), th


def _cover(input_size: Size, target: Size) -> Size:
    """Smallest size with the input's aspect ratio covering `target`: one side equals the target's."""
    (in_w, in_h), (tw, th) = input_size, target
    if tw * in_h >= th * in_w:  # width needs the larger factor
        return tw, _scaled_side(in_h, tw, in_w)
    return _scaled_side(in_w, th, in_h), th


def _centred(inner: Size, outer: Size) -> Box:
    left, top = (outer[0] - inner[0]) // 2, (outer[1] - inner[1]) // 2
    return Box(left, top, left + inner[0], top + inner[1])


def _fit(input_size: Size, target: Size, fit: str) -> SizePlan:
    """The plan for a target box; the crop or pad box is left out when the render already fills the box."""
    if fit == "stretch":
        return SizePlan(input_size, target, target, fit)
    if fit == "cover":
        render = _cover(input_size, target)
        crop = _centred(target, render) if render != target else None
        return SizePlan(input_size, render, target, fit, crop=crop)
    render = _contain(input_size, target)
    if fit == "pad":
        pad = _centred(render, target) if render != target else None
        return SizePlan(input_size, render, target, fit, pad=pad)
    return SizePlan(input_size, render, render, fit)


def max_input_pixels(max_input_mp: float) -> int:
    """The input pixel limit for `read_image` from megapixels; SizeError if not a positive number."""
    if not math.isfinite(max_input_mp) or max_input_mp <= 0:
        raise SizeError(
            f"the input limit must be a positive number of megapixels, got {max_input_mp}", setting="max_input_mp"
        )
    return int(max_input_mp * PIXELS_PER_MP)
