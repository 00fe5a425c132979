"""`enlarge profile`: time each bundled model on this machine and save the speed profile `--model auto` uses."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from enlarge.autoselect import PROFILE_ENV, Profile, bundled_models, measure, profile_path
from enlarge.errors import ConfigError, EnlargeError
from enlarge.models.registry import load_model

BUSY_LOAD = 0.5  # load average per core above which another process is likely competing for the CPU


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `profile` command."""
    parser = sub.add_parser(
        "profile",
        description="Time every bundled model (or those named) at a few scales and save seconds per output "
        f"megapixel to the speed profile (${PROFILE_ENV}, else the user cache folder). Entries of models not "
        "measured this time are kept.",
    )
    parser.add_argument(
        "--model", dest="models", action="append", default=[], metavar="NAME|PATH",
        help="model to time; repeat for several (default: every bundled model)",
    )
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads, as you will run `upscale` with")
    parser.add_argument("--output", type=Path, metavar="JSON", help="profile file (default: the usual place)")
    parser.add_argument("--show", action="store_true", help="print the saved profile; measure nothing")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Measure and save (or, with --show, print) the profile."""
    path = args.output or profile_path()
    if args.show:
        print(describe(Profile.read(path), path))
        return 0
    if args.threads is not None:
        if args.threads < 1:
            raise EnlargeError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    if load > BUSY_LOAD:
        print(f"warning: load average {load:.2f} per core: another process is using the CPU, so these timings "
              "will be slower than this machine is", file=sys.stderr)
    models = [load_model(name) for name in args.models] if args.models else bundled_models()
    measured = measure(models)
    try:
        kept = Profile.read(path).models
    except ConfigError:
        kept = {}  # no profile yet, or an unusable one: replaced
    profile = Profile({**kept, **measured.models}, measured.machine)
    profile.write(path)
    print(describe(profile, path))
    return 0


def describe(profile: Profile, path: Path) -> str:
    """The profile as a table: seconds per output megapixel per model and scale."""
    scales = sorted({s for t in profile.models.values() for s in t.seconds_per_mp})
    machine = ", ".join(f"{k} {v}" for k, v in profile.machine.items())
    lines = [f"{path} ({machine})", "model".ljust(24) + "".join(f"×{s:g} s/MP".rjust(12) for s in scales)]
    for name, timing in profile.models.items():
        cells = "".join(
            (f"{timing.seconds_per_mp[s]:.3f}" if s in timing.seconds_per_mp else "-").rjust(12) for s in scales
        )
        lines.append(name.ljust(24) + cells)
    return "\n".join(lines)
