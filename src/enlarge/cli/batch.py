"""`enlarge batch`: run a job spec (YAML) and/or flags through the batch runner, print its report.

    enlarge batch job.yaml                                   # the job as written
    enlarge batch job.yaml --engine ray --address auto       # flags override the file's fields
    enlarge batch --input photos/ --output big/ --scale 2    # a one-off job from flags alone
    enlarge batch job.yaml --dry-run                         # what would be done, skipped or refused

Exit status 0 when every item is done or skipped, non-zero when any failed (the report says why).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from enlarge.batch.runner import run_job
from enlarge.batch.spec import ENGINES, FORMAT_EXTENSIONS, OVERWRITE_POLICIES, WRITERS, flag_overrides, load_job
from enlarge.sizing import FITS


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `batch` command to the `enlarge` parser."""
    parser = sub.add_parser(
        "batch",
        description="Enlarge many images as a job: resumable (a manifest in OUTPUT/.enlarge), on a local process "
        "pool or a Ray cluster. Flags override the job file's fields; see docs/batch.md.",
    )
    parser.add_argument("job", nargs="?", type=Path, help="job spec (YAML)")
    source = parser.add_argument_group("input")
    source.add_argument("--input", metavar="DIR|GLOB", help="a folder of images or a glob pattern")
    source.add_argument("--input-list", metavar="FILE", help="a text file with one input path per line")
    source.add_argument("--max-input-mp", type=float, metavar="MP", help="refuse inputs above this many megapixels")
    model = parser.add_argument_group("model")
    model.add_argument("--model", metavar="NAME|PATH", help="model name or weights file")
    model.add_argument("--scale", metavar="S", help="scale factor, e.g. 2 or 2.5")
    model.add_argument("--size", metavar="WxH", help="target box in pixels, shaped by --fit")
    model.add_argument("--width", type=int, metavar="W", help="output width; the height keeps the aspect ratio")
    model.add_argument("--height", type=int, metavar="H", help="output height; the width keeps the aspect ratio")
    model.add_argument("--fit", choices=FITS, help="how the image meets --size")
    model.add_argument(
        "--adaptive", action="store_true", default=None, help="the big model only where the image has detail"
    )
    model.add_argument("--backend", metavar="NAME", help="model runtime (torch)")
    model.add_argument("--tile", type=int, metavar="N", help="tile size in input pixels (default: automatic)")
    model.add_argument("--precision", metavar="P", help="fp32 or bf16 (default: the model's)")
    model.add_argument("--max-output-mp", type=float, metavar="MP", help="refuse outputs above this many megapixels")
    output = parser.add_argument_group("output")
    output.add_argument("--output", metavar="DIR", help="output folder")
    output.add_argument("--naming", metavar="PATTERN", help="output file name, e.g. '{stem}_x{scale}.{ext}'")
    output.add_argument("--format", choices=sorted(FORMAT_EXTENSIONS), help="output format (default: the input's)")
    output.add_argument("--quality", type=int, metavar="Q", help="JPEG/WebP quality (1-100)")
    output.add_argument("--background", metavar="COLOR", help="colour to flatten transparency onto")
    output.add_argument("--overwrite", choices=OVERWRITE_POLICIES, help="existing files this job did not write")
    output.add_argument("--write-by", choices=WRITERS, help="who writes outputs: the driver, or workers (shared FS)")
    running = parser.add_argument_group("run")
    running.add_argument("--engine", choices=ENGINES, help="local process pool (default) or ray")
    running.add_argument("--address", metavar="ADDR", help="Ray cluster address, e.g. auto")
    running.add_argument("--workers", type=int, metavar="N", help="worker processes or actors (0: automatic)")
    running.add_argument("--threads", type=int, metavar="N", help="torch threads per worker")
    running.add_argument("--retries", type=int, metavar="N", help="retries of an item whose worker crashed")
    running.add_argument(
        "--item-timeout", type=float, metavar="S", help="seconds one item may run before it is stopped and failed"
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would be done and skipped, then stop")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Load the job, run it, print the report; the exit status says whether every item succeeded."""
    job = load_job(args.job, flag_overrides(vars(args)))
    report = run_job(job, dry_run=args.dry_run, progress=sys.stderr.isatty() and not args.json)
    print(json.dumps(report.to_dict()) if args.json else "\n".join(report.lines()), flush=True)
    return report.exit_code
