"""`enlarge upscale`: parse the arguments, load the model once, enlarge each input, print one line per image.

A bad file in a batch is reported (`error: FILE: message` on stderr) and skipped; the exit status is non-zero
at the end if any failed. Settings that apply to every file (size, model, limits) fail at once, before any work.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from enlarge.cli.flags import with_flag
from enlarge.errors import EnlargeError
from enlarge.imageio import parse_color
from enlarge.paths import output_clashes, plan_outputs
from enlarge.sizing import (
    DEFAULT_FIT,
    DEFAULT_MAX_INPUT_MP,
    DEFAULT_MAX_OUTPUT_MP,
    FITS,
    SizeRequest,
    max_input_pixels,
    parse_length,
    parse_scale,
    parse_size,
)
from enlarge.threads import choose_threads
from enlarge.upscaler import BACKENDS, PRECISIONS, TORCH_BACKEND, Progress, Result, Upscaler

EXIT_SOME_FAILED = 2  # as main's user-error status: at least one input could not be enlarged
PROGRESS_DELAY_S = 1.0  # the bar appears only for work that takes longer than this
# The library's setting names (EnlargeError.setting) that this command spells otherwise than `--name-with-dashes`.
FLAGS = {"output": "-o"}


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `upscale` command to the `enlarge` parser."""
    parser = sub.add_parser(
        "upscale",
        description="Enlarge images by any factor. Without -o, NAME_x2.EXT (or NAME_WxH.EXT) is written beside "
        "each input; with several inputs, folders or patterns, -o names a folder.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders of images or glob patterns")
    parser.add_argument("-o", "--output", metavar="OUT", help="output file (one input) or folder")
    size = parser.add_argument_group("output size: --scale, --size, or --width and/or --height")
    size.add_argument("--scale", metavar="S", help="scale factor, e.g. 2 or 2.5")
    size.add_argument("--size", metavar="WxH", help="target box in pixels, shaped by --fit")
    size.add_argument("--width", metavar="W", help="output width; the height keeps the aspect ratio")
    size.add_argument("--height", metavar="H", help="output height; the width keeps the aspect ratio")
    size.add_argument(
        "--fit", choices=FITS, default=DEFAULT_FIT,
        help="how the image meets --size: contain (inside, aspect kept), cover (fill, centre-crop), pad (contain, "
        "then pad to the box), stretch (exact box, aspect not kept); default %(default)s",
    )
    parser.add_argument(
        "--model", metavar="NAME|PATH|auto",
        help="model name (see `enlarge models`), weights file, or auto: per image, the bundled model that fits "
        "--time-budget and is worth it for the image (needs `enlarge profile` once); default: lite, with "
        "compressed JPEGs sent to lite-real (a named model serves every input)",
    )
    parser.add_argument(
        "--time-budget", type=float, metavar="SECONDS", help="with --model auto: seconds allowed per image"
    )
    routing = parser.add_argument_group("adaptive enlargement: the model only where the detail is")
    routing.add_argument(
        "--adaptive", action="store_true",
        help="decode the model's residual only in regions expected to gain from it, bicubic elsewhere, blended "
        "without seams (models with a bicubic skip, such as lite)",
    )
    routing.add_argument(
        "--threshold", type=float, metavar="T",
        help="with --adaptive: route a region when its expected MSE reduction (Y, 8-bit levels² per pixel) "
        "exceeds T (default: the threshold calibrated on training data)",
    )
    routing.add_argument(
        "--route-fraction", type=float, metavar="F",
        help="with --adaptive: route the share F (0-1) of regions with the most to gain, instead of a threshold",
    )
    parser.add_argument("--tile", type=int, metavar="N", help="tile size in input pixels (default: automatic)")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for the model (default: the free CPUs)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or mps")
    parser.add_argument(
        "--precision", choices=PRECISIONS,
        help="fp32, or bf16 on hardware with native bf16 (default: the model card's calibrated choice)",
    )
    parser.add_argument(
        "--backend", choices=BACKENDS, default=TORCH_BACKEND,
        help="torch (default), or onnx: the model exported to ONNX, run by onnxruntime (CPU, fp32; needs "
        "enlarge[onnx]); --model may then name an `enlarge export --onnx` folder",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--quality", type=int, metavar="Q", help="JPEG/WebP quality (1-100)")
    parser.add_argument(
        "--background", metavar="COLOR",
        help="colour to flatten transparency onto (needed for JPEG output of transparent images) and to fill "
        "--fit pad borders of opaque images (default black), e.g. white or #ffffff",
    )
    parser.add_argument(
        "--max-input-mp", type=float, default=DEFAULT_MAX_INPUT_MP, metavar="MP",
        help="refuse inputs above this many megapixels (default %(default)g)",
    )
    parser.add_argument(
        "--max-output-mp", type=float, default=DEFAULT_MAX_OUTPUT_MP, metavar="MP",
        help="refuse outputs above this many megapixels (default %(default)g)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per image on stdout")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Enlarge every input; returns 0 if all succeeded, EXIT_SOME_FAILED otherwise."""
    try:
        request = SizeRequest(
            scale=parse_scale(args.scale) if args.scale is not None else None,
            size=parse_size(args.size) if args.size is not None else None,
            width=parse_length(args.width, "width") if args.width is not None else None,
            height=parse_length(args.height, "height") if args.height is not None else None,
            fit=args.fit,
            max_output_mp=args.max_output_mp,
        )
        max_pixels = max_input_pixels(args.max_input_mp)
        background = parse_color(args.background) if args.background is not None else None
        threads = choose_threads(args.threads)  # from the CPUs other programs leave free, unless --threads says
        upscaler = Upscaler(
            args.model, device=args.device, threads=threads, tile=args.tile, adaptive=args.adaptive,
            threshold=args.threshold, route_fraction=args.route_fraction, time_budget=args.time_budget,
            precision=args.precision, backend=args.backend,
        )
        pairs = plan_outputs(args.inputs, request, args.output)  # last: it may create the output folder
    except EnlargeError as exc:  # a setting that applies to every file: nothing is done
        print(f"error: {describe(exc)}", file=sys.stderr)
        return EXIT_SOME_FAILED
    clashes = output_clashes(pairs)
    show_progress = not args.json and sys.stderr.isatty()
    failures = 0
    for source, target in pairs:
        try:
            if source in clashes:
                raise clashes[source]
            with progress_bar(str(source), show_progress) as progress:
                result = upscaler.enlarge_file(
                    source, target, request, max_pixels=max_pixels, overwrite=args.overwrite,
                    quality=args.quality, background=background, progress=progress,
                )
        except EnlargeError as exc:
            failures += 1
            print(f"error: {describe(exc, source)}", file=sys.stderr)
            if args.json:
                print(json.dumps({"input": str(source), "error": describe(exc)}), flush=True)
            continue
        print(json.dumps(result.to_dict()) if args.json else summary(result), flush=True)
    return EXIT_SOME_FAILED if failures else 0


def describe(exc: EnlargeError, source: Path | None = None) -> str:
    """The error's one line, with this command's flag for the setting it names, and the input file unless the
    message already names it."""
    message = with_flag(exc, FLAGS)
    if source is not None and str(source) not in message:
        message = f"{source}: {message}"
    return message


def summary(result: Result) -> str:
    """`input WxH → output WxH, model[ adaptive N% routed], seconds[; choice: why]`."""
    (in_w, in_h), (out_w, out_h) = result.input_size, result.output_size
    routed = "" if result.routed_fraction is None else f" adaptive {result.routed_fraction:.0%} routed"
    choice = "" if result.choice is None else f"; choice: {result.choice}"
    return (f"{result.input} {in_w}x{in_h} → {result.output} {out_w}x{out_h}, {result.model}{routed}, "
            f"{result.seconds:.2f} s{choice}")


@contextmanager
def progress_bar(label: str, enabled: bool) -> Iterator[Progress | None]:
    """A tqdm bar over tiles on stderr, shown only after PROGRESS_DELAY_S; yields the engine's progress callback."""
    if not enabled:
        yield None
        return
    with tqdm(desc=label, unit="tile", file=sys.stderr, leave=False, delay=PROGRESS_DELAY_S) as bar:

        def update(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield update
