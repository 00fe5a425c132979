"""`enlarge eval`: score models on benchmark folders with the standard SR protocol (all logic in enlarge.evaluation)."""

from __future__ import annotations

import argparse
from pathlib import Path

from enlarge import evaluation
from enlarge.metrics import METRICS

DEFAULT_SCALES = "2,3,4"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `eval` command."""
    parser = subparsers.add_parser(
        "eval",
        description="Score models on benchmark folders: HR cropped to a multiple of the scale, LR made by "
        "MATLAB-style bicubic downscaling, SR rounded to 8 bits, PSNR and SSIM on Y. The bicubic baseline is "
        "always included.",
    )
    parser.add_argument(
        "--model", dest="models", action="append", default=[], metavar="M",
        help="model name or weights file; repeat for several",
    )
    parser.add_argument(
        "--data", nargs="+", required=True, type=Path, metavar="DIR",
        help="dataset folders, each named by its folder (images found recursively; HR/ + LR_bicubic/X<s>/ accepted)",
    )
    parser.add_argument(
        "--scales", default=DEFAULT_SCALES, help=f"comma-separated integer scales (default {DEFAULT_SCALES})"
    )
    parser.add_argument(
        "--metric", choices=METRICS, default="y",
        help="PSNR on Y with shave = scale (default), or on RGB with shave = scale + 6",
    )
    parser.add_argument(
        "--degrade", metavar="SPEC",
        help="make the LR as real photos are made: steps joined by +, a downscaling kernel (nearest or bilinear, "
        "without antialiasing; area), noiseS (Gaussian, S levels), jpegQ (quality Q); e.g. jpeg75, noise5, "
        "nearest+noise5+jpeg75",
    )
    parser.add_argument("--json", type=Path, metavar="F", help="write every score, per image too, as JSON")
    parser.add_argument("--markdown", type=Path, metavar="F", help="write the summary table as Markdown")
    parser.add_argument("--plot", type=Path, metavar="F.png", help="plot PSNR against scale (needs matplotlib)")
    parser.add_argument("--limit", type=int, metavar="N", help="score only the first N images of each dataset")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate, write the requested reports, print the summary table."""
    settings = evaluation.Settings(
        scales=evaluation.parse_scales(args.scales), metric=args.metric, degrade=args.degrade, limit=args.limit
    )
    reports = evaluation.Reports(json=args.json, markdown=args.markdown, plot=args.plot)
    reports.check()
    rows = evaluation.evaluate(args.models, args.data, settings)
    reports.write(rows, settings)
    print(evaluation.text_table(rows, settings))
    return 0
