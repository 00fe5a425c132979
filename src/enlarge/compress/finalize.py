"""The end of a compression run: exact merges, the `.safetensors` model and its card, and the measurements in it.

The card's `extra["compression"]` holds what was removed, dropped and merged, parameters, MACs per output pixel,
CPU time and validation Y-PSNR before and after, and the benchmark scores of `enlarge.evaluation` when benchmark
folders are given; `evaluation` holds the compressed model's benchmark rows as `enlarge eval --json` writes them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from enlarge import evaluation
from enlarge.compress.entropy import rectifier_names
from enlarge.compress.loop import Compressor, say, scale_keys
from enlarge.compress.merge import merge_exact
from enlarge.compress.report import cpu_times, markdown
from enlarge.errors import ConfigError, InputError, OutputError
from enlarge.fileutil import atomic_write_text
from enlarge.models import LoadedModel, load_model, parameter_count
from enlarge.models.card import ModelCard
from enlarge.models.macs import count_macs
from enlarge.training.export import ExportResult, licence_of, weights_licence, write_model
from enlarge.training.validation_set import mean_score, validate

DEFAULT_TIME_REPEATS = 5
BENCHMARK_SCALES = (2, 3, 4)
METHOD = "EASIER (arXiv 2404.18949): lowest-entropy ReLU → identity, fine-tuned with distillation, then exact merges"


@dataclass(frozen=True)
class Outputs:
    """Where the compressed model goes and what is measured for its card."""

    out_dir: Path | None = None  # None: the run folder
    benchmarks: list[Path] = field(default_factory=list)
    time_repeats: int = DEFAULT_TIME_REPEATS
    markdown: Path | None = None
    command: str = "enlarge compress"

    def check(self) -> None:
        """Fail before a long run if an output folder or a benchmark folder is missing."""
        folders = [self.out_dir] if self.out_dir is not None else []
        folders += [self.markdown.parent] if self.markdown is not None else []
        for folder in folders:
            if not Path(folder).is_dir():
                raise OutputError(f"output folder {folder} does not exist")
        for folder in self.benchmarks:
            if not Path(folder).is_dir():
                raise InputError(f"benchmark folder {folder} does not exist")
        if self.time_repeats < 1:
            raise ConfigError(f"time repeats must be at least 1, got {self.time_repeats}", setting="time_repeats")


def finalize(run: Compressor, outputs: Outputs) -> ExportResult:
    """Merge, write and measure the accepted model of a finished run; returns the files written."""
    state, teacher, unmerged = run.state, run.teacher, run.accepted()
    merged, merges = merge_exact(unmerged)
    module = merged.build()
    card = ModelCard(
        name=run.name, arch=merged.arch, config=merged.config,
        description=f"{teacher.descriptor.name} depth-reduced by enlarge compress ({METHOD})",
        parameters=parameter_count(module), macs_per_output_pixel=count_macs(module),
        trained_scales=teacher.descriptor.trained_scales, default_precision=teacher.descriptor.default_precision,
        training=_training_record(run), license=_licence(run),
    )
    result = write_model(module, card, outputs.out_dir or run.run_dir)
    compressed = load_model(result.weights)  # the written files, as every command will load them
    say(f"wrote {result.weights} and {result.card_path}; measuring")
    val_after = validate(compressed, run.val_images)
    timed = [teacher, compressed] + ([unmerged.loaded(f"{run.name} before merges")] if merges else [])
    timing = cpu_times(timed, outputs.time_repeats)
    medians = timing.pop("median_s")
    rows = _benchmark(run, result, outputs.benchmarks)
    summary = {
        "method": METHOD,
        "teacher": _model_row(teacher, state["baseline"]["psnr"], state["baseline"]["by_scale"],
                              medians[0], run.teacher_source),
        "compressed": _model_row(compressed, mean_score(val_after), scale_keys(val_after), medians[1]),
        "rounds": [{k: v for k, v in r.items() if k != "entropies"} for r in state["rounds"]],  # tables: the log
        "linear_activations": merged.config.get("linear_activations", []),
        "merged": merges,
        "stop_reason": run.stop_reason(),
        "max_psnr_drop_db": run.settings.max_psnr_drop,
        "cpu_time": {**timing, "before_merges_s": medians[2] if merges else None},
        "benchmarks": _benchmark_pairs(rows, teacher.descriptor.name, run.name),
        "finetune": {"steps": run.settings.finetune_steps, "lr": run.lr, "distill": run.settings.distill,
                     "calibration_batches": run.settings.calibration_batches,
                     "layers": list(run.settings.layers), "precision": run.precision},
    }
    card.evaluation = [asdict(r) for r in rows if r.model == run.name]
    card.extra = {"compression": summary}
    card.write(result.card_path)
    if outputs.markdown is not None:
        atomic_write_text(outputs.markdown, markdown(summary, outputs.command))
    return ExportResult(result.weights, result.card_path, card)


def _model_row(
    model: LoadedModel, psnr: float, by_scale: dict[str, float], seconds: float, source: str | None = None
) -> dict[str, Any]:
    """One side of the before/after comparison."""
    row = {
        "name": model.descriptor.name, "relus": len(rectifier_names(model.module)), "parameters": model.parameters,
        "macs_per_output_pixel": count_macs(model.module), "cpu_time_s": seconds, "val_psnr_y": psnr,
        "val_psnr_y_by_scale": by_scale,
    }
    if source is not None:
        row["source"] = source
    return row


def _training_record(run: Compressor) -> dict[str, Any]:
    """The uncompressed model's training record, and the fine-tuning done here."""
    card = run.teacher.descriptor.card
    data = run.config.data
    return {
        "teacher": card.training if card is not None else {},
        "finetune": {
            "data": [{"folder": d, "licence": licence_of(d).note} for d in data.train_dirs],
            "data_root": data.data_root,
            "steps": run.state["next_step"],
            "wall_time_s": round(run.state["elapsed_s"], 1),
            "precision": run.precision,
            "threads": run.config.threads,
            "config_hash": run.identity["config"],
        },
    }


def _licence(run: Compressor) -> str:
    """The uncompressed model's licence if it has a card, else the one its fine-tuning data implies."""
    card = run.teacher.descriptor.card
    return card.license if card is not None and card.license else weights_licence(run.config.data.train_dirs)


def _benchmark(run: Compressor, result: ExportResult, folders: list[Path]) -> list[evaluation.Row]:
    """Both models on the benchmark folders with the standard protocol (bicubic rows included, as always)."""
    if not folders:
        return []
    settings = evaluation.Settings(scales=BENCHMARK_SCALES)
    return evaluation.evaluate([run.teacher_source, str(result.weights)], folders, settings)


def _benchmark_pairs(rows: list[evaluation.Row], before: str, after: str) -> list[dict[str, Any]]:
    """Before/after PSNR and SSIM per dataset and scale."""
    by_key = {(r.model, r.dataset, r.scale): r for r in rows}
    pairs = []
    for (model, dataset, scale), row in by_key.items():
        if model != before or (after, dataset, scale) not in by_key:
            continue
        other = by_key[(after, dataset, scale)]
        pairs.append({"dataset": dataset, "scale": scale, "before_psnr": row.psnr, "before_ssim": row.ssim,
                      "after_psnr": other.psnr, "after_ssim": other.ssim})
    return pairs
