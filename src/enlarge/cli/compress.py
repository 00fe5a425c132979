"""`enlarge compress`: EASIER depth reduction of a trained model, or (`--report`) its activation entropies.

The shipped-model run, on an otherwise idle CPU (it writes runs/lite-easier/lite-easier.{safetensors,json} and the
results section; `--resume` continues it after a stop):

    enlarge compress --model lite --config configs/lite.yaml --name lite-easier \
        --benchmark ../shared/data/benchmark/{Set5,Set14,B100,Urban100} --markdown docs/results/compression.md
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from enlarge.compress import finalize as final
from enlarge.compress import loop
from enlarge.compress.entropy import entropy_on_folder, entropy_table
from enlarge.errors import ConfigError
from enlarge.evaluation import parse_scales
from enlarge.models import load_model

DEFAULT_REPORT_SCALES = "2,3,4"

# The library's setting names (EnlargeError.setting) that this command spells otherwise than `--name-with-dashes`.
FLAGS = {"finetune_steps": "--steps"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `compress` command."""
    parser = subparsers.add_parser(
        "compress",
        description="Depth reduction after EASIER (arXiv 2404.18949): the ReLU whose on/off state has the lowest "
        "entropy becomes identity, the model is fine-tuned with the training data of --config and kept while its "
        "validation Y-PSNR stays within --max-psnr-drop; exact merges follow. With --report, only print the "
        "entropy of every ReLU on the images of --data.",
    )
    parser.add_argument("--model", required=True, help="the trained model: a registered name or a weights file")
    parser.add_argument("--report", action="store_true", help="print every activation's entropy on --data and stop")
    parser.add_argument("--data", type=Path, metavar="DIR", help="--report: calibration images (an eval-style folder)")
    parser.add_argument("--scales", default=DEFAULT_REPORT_SCALES,
                        help=f"--report: scales the calibration images are shrunk by (default {DEFAULT_REPORT_SCALES})")
    parser.add_argument("--limit", type=int, metavar="N", help="--report: only the first N images")
    parser.add_argument("--config", type=Path, help="training config: data, sampler, precision, threads, validation")
    parser.add_argument("--name", help=f"compressed model name (default MODEL{loop.NAME_SUFFIX}); run in runs/NAME")
    parser.add_argument("--run-dir", type=Path, metavar="DIR", help="run folder (default runs/NAME)")
    parser.add_argument("--resume", action="store_true", help="continue the run in the run folder")
    parser.add_argument("--steps", type=int, default=loop.DEFAULT_FINETUNE_STEPS,
                        help=f"fine-tune steps per round (default {loop.DEFAULT_FINETUNE_STEPS})")
    parser.add_argument("--lr", type=float, help="fine-tune learning rate (default: the config's final rate)")
    parser.add_argument("--distill", type=float, default=loop.DEFAULT_DISTILL,
                        help=f"weight of the L1 to the uncompressed model's output (default {loop.DEFAULT_DISTILL})")
    parser.add_argument("--calibration-batches", type=int, default=loop.DEFAULT_CALIBRATION_BATCHES, metavar="N",
                        help=f"training batches the entropies are measured on (default "
                        f"{loop.DEFAULT_CALIBRATION_BATCHES})")
    parser.add_argument("--layers", metavar="PREFIXES",
                        help="only remove activations whose name starts with one of these comma-separated prefixes, "
                        "e.g. head (lite's decoder, the cost that grows with the output); default: all")
    parser.add_argument("--max-psnr-drop", type=float, default=loop.DEFAULT_MAX_PSNR_DROP, metavar="DB",
                        help=f"stop when a removal costs more validation Y-PSNR (default {loop.DEFAULT_MAX_PSNR_DROP})")
    parser.add_argument("--remove", type=int, metavar="N", help="remove at most N activations")
    parser.add_argument("--out", type=Path, metavar="DIR", help="folder for NAME.safetensors + NAME.json "
                        "(default: the run folder)")
    parser.add_argument("--benchmark", type=Path, nargs="+", default=[], metavar="DIR",
                        help="benchmark folders to score both models on (enlarge eval's protocol, ×2/3/4)")
    parser.add_argument("--time-repeats", type=int, default=final.DEFAULT_TIME_REPEATS, metavar="N",
                        help=f"timed renders per model (default {final.DEFAULT_TIME_REPEATS})")
    parser.add_argument("--markdown", type=Path, metavar="F", help="write the results section, e.g. "
                        "docs/results/compression.md")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Report entropies, or run (or resume) a compression and write the compressed model."""
    if args.report:
        if args.data is None:
            raise ConfigError("--report needs --data DIR: the images to measure the entropies on")
        entropies = entropy_on_folder(load_model(args.model), args.data, parse_scales(args.scales), args.limit)
        if not entropies:
            raise ConfigError(f"{args.model} has no ReLU to measure")
        print(entropy_table(entropies))
        return 0
    if args.config is None:
        raise ConfigError("compress needs --config (the training config: data and validation list), or --report")
    settings = loop.CompressSettings(
        finetune_steps=args.steps, lr=args.lr, distill=args.distill, calibration_batches=args.calibration_batches,
        layers=tuple(p for p in (args.layers or "").split(",") if p), max_psnr_drop=args.max_psnr_drop,
        remove=args.remove,
    )
    outputs = final.Outputs(out_dir=args.out, benchmarks=list(args.benchmark), time_repeats=args.time_repeats,
                            markdown=args.markdown, command=command_line(args))
    outputs.check()
    compressor = loop.start(args.model, args.config, settings, name=args.name, run_dir=args.run_dir,
                            resume=args.resume)
    result = compressor.run()
    if result.stopped_by is not None:
        print(f"stopped by {result.stopped_by}; state in {result.run_dir}\ncontinue with the same command and "
              "--resume", file=sys.stderr)
        return 0
    written = final.finalize(compressor, outputs)
    summary = written.card.extra["compression"]
    before, after = summary["teacher"], summary["compressed"]
    print(f"{compressor.stop_reason()}\nwrote {written.weights} and {written.card_path}: ReLUs {before['relus']} → "
          f"{after['relus']}, parameters {before['parameters']} → {after['parameters']}, val Y-PSNR "
          f"{before['val_psnr_y']:.3f} → {after['val_psnr_y']:.3f} dB, CPU {before['cpu_time_s']:.3f} → "
          f"{after['cpu_time_s']:.3f} s{' (CPU busy: times unreliable)' if summary['cpu_time']['contended'] else ''}")
    return 0


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run, as the results section quotes it."""
    words = ["enlarge", "compress", "--model", str(args.model), "--config", str(args.config)]
    options = {
        "--name": args.name, "--run-dir": args.run_dir, "--steps": args.steps, "--lr": args.lr,
        "--distill": args.distill, "--calibration-batches": args.calibration_batches, "--layers": args.layers,
        "--max-psnr-drop": args.max_psnr_drop, "--remove": args.remove, "--out": args.out,
        "--time-repeats": args.time_repeats, "--markdown": args.markdown,
    }
    for flag, value in options.items():
        if value is not None:
            words += [flag, str(value)]
    if args.benchmark:
        words += ["--benchmark", *map(str, args.benchmark)]
    return shlex.join(words)
