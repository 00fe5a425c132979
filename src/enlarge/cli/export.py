"""`enlarge export`: a training run's weights as a shippable model, a model as ONNX graphs, or the web app.

    enlarge export RUN_DIR --name NAME [--out DIR] [--which best|last]   NAME.safetensors + NAME.json model card
    enlarge export --model NAME|PATH --onnx DIR [--int8]                encoder.onnx, decoder.onnx, model.json
                                                                        (+ decoder_grid.onnx for lite, bicubic)
    enlarge export --web DIR [--model NAME[,NAME...]]                  the static page that enlarges in the browser
"""

from __future__ import annotations

import argparse
from pathlib import Path

from enlarge.errors import ConfigError
from enlarge.training.export import WHICH, export_run


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        description="Export a training run (RUN_DIR --name NAME), a model as ONNX (--model NAME|PATH --onnx DIR), "
        "or the web app that enlarges on the visitor's device (--web DIR).",
    )
    parser.add_argument("run_dir", type=Path, nargs="?", help="the run folder, e.g. runs/lite")
    parser.add_argument("--name", help="model name: writes NAME.safetensors and NAME.json")
    parser.add_argument("--out", type=Path, help="output folder (default: the package's weights folder)")
    parser.add_argument("--which", choices=WHICH, default="best", help="best validation weights or the last ones")
    onnx = parser.add_argument_group("ONNX: the encoder and the decoders as graphs, run by onnxruntime")
    onnx.add_argument("--model", metavar="NAME|PATH", help="the model to export (name or weights file)")
    onnx.add_argument("--onnx", type=Path, metavar="DIR",
                      help="write encoder.onnx, decoder.onnx, model.json (and decoder_grid.onnx) here")
    onnx.add_argument("--int8", action="store_true",
                      help="store the graphs' weights in 8 bits (smaller files; on a desktop CPU slower, see docs/onnx.md)")
    web = parser.add_argument_group("web: a static page (index.html) that runs the models in the browser, offline")
    web.add_argument("--web", type=Path, metavar="DIR",
                     help="write the page, onnxruntime-web and the models here (--model: comma-separated names, "
                     "default: the bundled models with a grid decoder)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Dispatch on the mode: the web app with --web, ONNX when --model or --onnx is given, else a training run."""
    if args.web is not None:
        return run_web(args)
    if args.model is not None or args.onnx is not None or args.int8:
        return run_onnx(args)
    if args.run_dir is None or args.name is None:
        raise ConfigError("give RUN_DIR and --name to export a training run, or --model and --onnx for ONNX")
    result = export_run(args.run_dir, args.name, out_dir=args.out, which=args.which)
    macs = ", ".join(f"{k} {v / 1e3:.1f} k" for k, v in result.card.macs_per_output_pixel.items())
    print(f"wrote {result.weights} and {result.card_path} ({result.card.parameters} parameters; MACs/pixel {macs})")
    return 0


def run_onnx(args: argparse.Namespace) -> int:
    """`--model NAME|PATH --onnx DIR`: the graphs and their description, checked against PyTorch."""
    if args.model is None or args.onnx is None:
        raise ConfigError("an ONNX export needs both --model NAME|PATH and --onnx DIR")
    if args.run_dir is not None or args.name is not None or args.out is not None:
        raise ConfigError("RUN_DIR, --name and --out export a training run; leave them out with --model/--onnx")
    from enlarge.export.onnx import export_onnx
    from enlarge.models.registry import load_model

    paths = export_onnx(load_model(args.model), args.onnx, int8=args.int8)
    graphs = [paths.encoder, paths.decoder] + ([paths.grid] if paths.grid is not None else [])
    print(f"wrote {', '.join(str(g) for g in graphs)} and {paths.meta}")
    return 0


def run_web(args: argparse.Namespace) -> int:
    """`--web DIR [--model NAMES]`: the static app, each model exported to ONNX and checked against PyTorch."""
    if args.onnx is not None or args.run_dir is not None or args.name is not None or args.out is not None or args.int8:
        raise ConfigError("--web writes the web app alone; leave out RUN_DIR, --name, --out, --onnx and --int8")
    from enlarge.export.web import default_models, export_web, runtime_dist
    from enlarge.models.registry import load_model

    runtime_dist()  # refuse before the exports when onnxruntime-web is not installed
    names = [n.strip() for n in args.model.split(",") if n.strip()] if args.model is not None else default_models()
    written = export_web([load_model(name) for name in names], args.web)
    print(f"wrote {written.index} with {', '.join(written.models)} (onnxruntime-web {written.runtime_version}); "
          "open it in a browser, from disk or any static host")
    return 0
