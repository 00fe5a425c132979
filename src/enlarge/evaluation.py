"""The SR evaluation protocol over benchmark folders: crop, shrink, enlarge, quantise, score, report.

The protocol of the published tables (SRCNN, EDSR, LIIF … on Set5, Set14, B100, Urban100):

1. HR: each image read as 8-bit RGB (grayscale replicated to three channels, alpha ignored) and cropped from the
   top-left corner to a multiple of the scale.
2. LR: MATLAB's bicubic `imresize` of the HR by 1/scale on the 8-bit image (`enlarge.resize`, rounded to 8 bits
   between and after the two passes, as MATLAB does on uint8). A paired folder's own LR files are used instead.
   `degrade` makes the LR the way real photos are made instead (`Degradation`): steps joined by `+`, applied in
   the order a photo meets them: another downscaling kernel in place of bicubic (`nearest` and `bilinear`,
   without antialiasing as thumbnails are often made; `area`, box averaging), then Gaussian noise of S 8-bit levels (`noiseS`, seeded by image and scale), then a JPEG
   of quality Q (`jpegQ`, Pillow/libjpeg, 4:2:0 chroma), e.g. `jpeg75` or `nearest+noise5+jpeg75`.
3. SR: the model renders the LR at exactly the HR size; the result is clamped to [0, 1] and rounded to 8 bits.
4. Scores: PSNR on MATLAB luma with shave = scale (`metric="y"`, the default) or on RGB with shave = scale + 6
   (`metric="rgb"`, the DIV2K convention); SSIM on luma with the same shave. A row reports the means over images.

A dataset is one folder, named by the folder itself (`…/Set5` → `Set5`; a folder called `HR` takes its parent's
name). Its HR images (png, jpg, jpeg, webp) are found recursively under `DIR/HR/` if that exists, else under
`DIR`. If `DIR/LR_bicubic/` exists too, the folder is *paired*: the LR of `HR/<path>/<stem>.<ext>` at scale s is
`LR_bicubic/X<s>/<path>/<stem>x<s>.<ext>` (EDSR's naming) or `…/<stem>.<ext>`, any image extension, and must be
exactly the cropped HR size / s. The `bicubic` baseline is always scored, first.
"""

from __future__ import annotations

import io
import json
import math
import re
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

from enlarge import degradations
from enlarge.engine import render
from enlarge.errors import ConfigError, InputError, OutputError, SizeError
from enlarge import imagefolders
from enlarge.fileutil import atomic_write_bytes, atomic_write_text
from enlarge.imagefolders import IMAGE_SUFFIXES, find_images
from enlarge.metrics import METRICS, SSIM_WINDOW, psnr, ssim_y
from enlarge.models import LoadedModel, load_model
from enlarge.resize import imresize

if TYPE_CHECKING:
    from matplotlib.figure import Figure

HR_FOLDER = "HR"
LR_FOLDER = "LR_bicubic"
BASELINE = "bicubic"
RGB_EXTRA_SHAVE = 6  # the DIV2K convention: shave scale + 6 pixels when scoring RGB
LEVELS = 255  # 8-bit images
JPEG_DEGRADE = re.compile(r"jpeg(\d+)")
NOISE_DEGRADE = re.compile(r"noise(\d+(?:\.\d+)?)")
JPEG_QUALITY_RANGE = (1, 100)
PROTOCOL_KERNEL = "bicubic"
DEGRADE_KERNELS = tuple(k for k in degradations.KERNELS if k != PROTOCOL_KERNEL)
DEGRADE_STEP_SEPARATOR = "+"
NOISE_SEED = 18  # noise is a pure function of (this seed, the image's name, the scale): every run sees the same
PLOT_DPI = 120
PLOT_PANEL_SIZE = (4.0, 3.2)  # inches per dataset panel


@dataclass(frozen=True)
class Degradation:
    """How the LR is made when it is not the protocol's bicubic: kernel, then noise, then JPEG (module docstring)."""

    kernel: str = PROTOCOL_KERNEL
    noise_sigma: float | None = None  # Gaussian, in 8-bit levels
    jpeg_quality: int | None = None

    @classmethod
    def parse(cls, spec: str) -> Degradation:
        """`"nearest+noise5+jpeg75"` → its Degradation; ConfigError naming the step it cannot read."""
        fields: dict[str, Any] = {}
        for step in spec.split(DEGRADE_STEP_SEPARATOR):
            jpeg, noise = JPEG_DEGRADE.fullmatch(step), NOISE_DEGRADE.fullmatch(step)
            low, high = JPEG_QUALITY_RANGE
            if step in DEGRADE_KERNELS:
                key, value = "kernel", step
            elif noise is not None and float(noise.group(1)) > 0:
                key, value = "noise_sigma", float(noise.group(1))
            elif jpeg is not None and low <= int(jpeg.group(1)) <= high:
                key, value = "jpeg_quality", int(jpeg.group(1))
            else:
                raise ConfigError(
                    f"unknown degradation {step!r} in {spec!r}: use steps joined by {DEGRADE_STEP_SEPARATOR!r}: "
                    f"a kernel ({', '.join(DEGRADE_KERNELS)}), noiseS (S > 0 levels), jpegQ (Q in {low}..{high}); "
                    "e.g. jpeg75 or nearest+noise5+jpeg75"
                )
            if key in fields:
                raise ConfigError(f"degradation {spec!r} has two steps of one kind ({step!r}); give each once")
            fields[key] = value
        return cls(**fields)

    def make_lr(self, hr: torch.Tensor, scale: int, name: str) -> torch.Tensor:
        """The 8-bit LR of the cropped 8-bit HR `hr` (3×H×W) at `scale`, degraded; `name` seeds the noise."""
        h, w = hr.shape[-2:]
        if self.kernel == PROTOCOL_KERNEL:
            lr = make_lr(hr, scale)
        else:
            lr = to_uint8(degradations.downscale(hr.float() / LEVELS, (h // scale, w // scale), self.kernel))
        return self.degrade(lr, scale, name)

    def degrade(self, lr: torch.Tensor, scale: int, name: str) -> torch.Tensor:
        """Noise, then JPEG, on an 8-bit LR (3×h×w uint8) of image `name` at `scale`."""
        image = lr.float() / LEVELS
        if self.noise_sigma is not None:
            rng = np.random.default_rng([NOISE_SEED, zlib.crc32(name.encode("utf-8")), scale])
            image = degradations.gaussian_noise(image, self.noise_sigma, rng)
        if self.jpeg_quality is not None:
            image = degradations.jpeg_roundtrip(image, self.jpeg_quality)
        return to_uint8(image)


@dataclass(frozen=True)
class Settings:
    """What to measure: integer scales, PSNR flavour, optional LR degradation (`Degradation`), images per dataset."""

    scales: tuple[int, ...]
    metric: str = "y"
    degrade: str | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        if not self.scales or any(not isinstance(s, int) or s < 1 for s in self.scales):
            raise SizeError(f"scales must be positive integers, got {self.scales}")
        if len(set(self.scales)) != len(self.scales):
            raise SizeError(f"a scale is listed twice in {self.scales}")
        if self.metric not in METRICS:
            raise ConfigError(f"unknown metric {self.metric!r}: use one of {', '.join(METRICS)}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be at least 1, got {self.limit}")
        if self.degrade is not None:
            Degradation.parse(self.degrade)  # now, so a bad spec fails before any work

    @property
    def degradation(self) -> Degradation | None:
        """The parsed `degrade` spec, None without one."""
        return None if self.degrade is None else Degradation.parse(self.degrade)

    def shave(self, scale: int) -> int:
        """Border pixels left out of the scores at this scale."""
        return scale if self.metric == "y" else scale + RGB_EXTRA_SHAVE


@dataclass(frozen=True)
class Dataset:
    """One benchmark folder: its name, HR images (sorted, limited), and the LR folder if it is paired."""

    name: str
    hr_root: Path
    images: tuple[Path, ...]
    lr_root: Path | None = None


@dataclass
class ImageScore:
    """One image's scores; `name` is its path under the HR root, without extension."""

    name: str
    psnr: float
    ssim: float


@dataclass
class Row:
    """One model on one dataset at one scale: mean scores, image count, seconds spent rendering, per-image scores."""

    model: str
    dataset: str
    scale: int
    psnr: float = math.nan
    ssim: float = math.nan
    n_images: int = 0
    seconds: float = 0.0
    per_image: list[ImageScore] = field(default_factory=list)

    def add(self, score: ImageScore, seconds: float) -> None:
        """Count one more image and refresh the means."""
        self.per_image.append(score)
        self.n_images = len(self.per_image)
        self.seconds += seconds
        self.psnr = sum(s.psnr for s in self.per_image) / self.n_images
        self.ssim = sum(s.ssim for s in self.per_image) / self.n_images


def parse_scales(text: str) -> tuple[int, ...]:
    """`"2,3,4"` → (2, 3, 4); the protocol crops HR to a multiple of the scale, so scales are integers."""
    try:
        scales = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise SizeError(f"scales must be comma-separated integers such as 2,3,4, got {text!r}") from None
    if not scales:
        raise SizeError("no scale given: give comma-separated scales such as 2,3,4", setting="scales")
    return scales


def find_dataset(folder: Path, limit: int | None = None) -> Dataset:
    """The dataset in `folder` (layout in the module docstring), with at most `limit` images."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"dataset folder {folder} does not exist or is not a folder")
    resolved = folder.resolve()
    name = resolved.parent.name if resolved.name == HR_FOLDER else resolved.name
    hr_root = folder / HR_FOLDER if (folder / HR_FOLDER).is_dir() else folder
    lr_root = folder / LR_FOLDER if (folder / LR_FOLDER).is_dir() else None
    images = find_images(hr_root)
    if not images:
        raise InputError(f"no images ({', '.join(s[1:] for s in IMAGE_SUFFIXES)}) found under {hr_root}")
    return Dataset(name=name, hr_root=hr_root, images=tuple(images[:limit]), lr_root=lr_root)


def read_rgb8(path: Path) -> torch.Tensor:
    """An 8-bit image file as a 3×H×W uint8 tensor (grayscale replicated, alpha dropped)."""
    return torch.from_numpy(imagefolders.read_rgb8(path).copy()).permute(2, 0, 1)


def make_lr(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """MATLAB's `imresize(hr, 1/scale)` on an 8-bit 3×H×W image (H, W multiples of `scale`) → 8-bit LR."""
    h, w = hr.shape[-2:]
    lr = imresize(hr.to(torch.float64) / LEVELS, (h // scale, w // scale), quantize=True)
    return to_uint8(lr)


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """Clamp a [0, 1] float image and round it to 8-bit levels."""
    return (image.clamp(0, 1) * LEVELS).round().to(torch.uint8)


def paired_lr_path(dataset: Dataset, hr_path: Path, scale: int) -> Path:
    """The LR file of `hr_path` at `scale` in a paired dataset (naming in the module docstring)."""
    folder = dataset.lr_root / f"X{scale}" / hr_path.parent.relative_to(dataset.hr_root)
    for stem in (f"{hr_path.stem}x{scale}", hr_path.stem):
        for suffix in IMAGE_SUFFIXES:
            candidate = folder / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    raise InputError(f"no LR image for {hr_path.name} at ×{scale} in {folder} (expected {hr_path.stem}x{scale}.png)")


def load_pair(dataset: Dataset, hr_path: Path, scale: int, settings: Settings) -> tuple[torch.Tensor, torch.Tensor]:
    """The cropped 8-bit HR and its 8-bit LR (made, or read from a paired folder, then degraded if asked).

    A degradation with its own kernel needs the HR to make the LR from, so a paired folder refuses it."""
    hr = read_rgb8(hr_path)
    h, w = hr.shape[-2:]
    h, w = h - h % scale, w - w % scale
    if min(h, w) - 2 * settings.shave(scale) < SSIM_WINDOW:
        raise InputError(f"{hr_path} ({hr.shape[-1]}×{hr.shape[-2]}) is too small to score at ×{scale}")
    hr = hr[:, :h, :w]
    degradation = settings.degradation or Degradation()
    name = hr_path.relative_to(dataset.hr_root).as_posix()
    if dataset.lr_root is None:
        return hr, degradation.make_lr(hr, scale, name)
    if degradation.kernel != PROTOCOL_KERNEL:
        raise ConfigError(f"{dataset.name} brings its own LR images, which cannot be made with {degradation.kernel}; "
                          "use a folder of HR images alone")
    lr_path = paired_lr_path(dataset, hr_path, scale)
    lr = read_rgb8(lr_path)
    if tuple(lr.shape[-2:]) != (h // scale, w // scale):
        raise InputError(f"{lr_path} is {lr.shape[-1]}×{lr.shape[-2]}, expected {w // scale}×{h // scale}")
    return hr, degradation.degrade(lr, scale, name)


def model_list(models: Sequence[str]) -> list[str]:
    """The models to score: `bicubic` first, then the others in order, each once."""
    return list(dict.fromkeys([BASELINE, *models]))


def evaluate(models: Sequence[str], folders: Sequence[Path], settings: Settings, progress: bool = True) -> list[Row]:
    """Score every model on every dataset folder at every scale; rows ordered by model, dataset, scale.

    Each LR is made once and shared by all models; `seconds` counts only the time spent rendering.
    """
    loaded = [load_model(name) for name in model_list(models)]
    datasets = [find_dataset(Path(folder), settings.limit) for folder in folders]
    named = {"models": [m.descriptor.name for m in loaded], "dataset folders": [d.name for d in datasets]}
    for what, names in named.items():
        if len(set(names)) != len(names):
            raise ConfigError(f"two {what} have the same name ({', '.join(names)}); rows would mix them")
    rows = {
        (m.descriptor.name, d.name, s): Row(m.descriptor.name, d.name, s)
        for m in loaded
        for d in datasets
        for s in settings.scales
    }
    total = sum(len(d.images) for d in datasets) * len(settings.scales) * len(loaded)
    with tqdm(total=total, unit="img", desc="eval", disable=not progress) as bar:
        for dataset in datasets:
            for scale in settings.scales:
                for hr_path in dataset.images:
                    hr, lr = load_pair(dataset, hr_path, scale, settings)
                    name = hr_path.relative_to(dataset.hr_root).with_suffix("").as_posix()
                    for model in loaded:
                        bar.set_postfix_str(f"{dataset.name} ×{scale} {model.descriptor.name}")
                        score, seconds = score_image(model, hr, lr, scale, name, settings)
                        rows[(model.descriptor.name, dataset.name, scale)].add(score, seconds)
                        bar.update()
    return list(rows.values())


def score_image(
    model: LoadedModel, hr: torch.Tensor, lr: torch.Tensor, scale: int, name: str, settings: Settings
) -> tuple[ImageScore, float]:
    """Render one LR with one model and score it against the HR: (ImageScore, seconds spent rendering)."""
    start = time.perf_counter()
    sr = render(model, lr.unsqueeze(0).float() / LEVELS, tuple(hr.shape[-2:]))
    seconds = time.perf_counter() - start
    sr = to_uint8(sr[0]).to(torch.float64) / LEVELS
    hr = hr.to(torch.float64) / LEVELS
    shave = settings.shave(scale)
    return ImageScore(name, psnr(sr, hr, shave, settings.metric), ssim_y(sr, hr, shave)), seconds


def report_dict(rows: Sequence[Row], settings: Settings) -> dict[str, Any]:
    """The JSON report: the settings, then one entry per row with its per-image scores."""
    return {"metric": settings.metric, "degrade": settings.degrade, "rows": [asdict(row) for row in rows]}


def _table(rows: Sequence[Row]) -> tuple[list[str], list[list[str]]]:
    """Header and body of the summary table: one line per dataset and model, one `PSNR / SSIM` column per scale."""
    scales = sorted({row.scale for row in rows})
    header = ["dataset", "model", *(f"×{s} PSNR / SSIM" for s in scales)]
    dataset_order = {name: i for i, name in enumerate(dict.fromkeys(row.dataset for row in rows))}
    cells: dict[tuple[str, str], dict[int, str]] = {}
    for row in sorted(rows, key=lambda r: dataset_order[r.dataset]):  # stable: models keep their order
        cells.setdefault((row.dataset, row.model), {})[row.scale] = f"{row.psnr:.2f} / {row.ssim:.4f}"
    body = [[dataset, model, *(by_scale.get(s, "") for s in scales)] for (dataset, model), by_scale in cells.items()]
    return header, body


def markdown_table(rows: Sequence[Row], settings: Settings) -> str:
    """The summary table in Markdown, with a line saying what was measured."""
    header, body = _table(rows)
    lines = [
        _title(settings),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|",
        *("| " + " | ".join(line) + " |" for line in body),
    ]
    return "\n".join(lines) + "\n"


def text_table(rows: Sequence[Row], settings: Settings) -> str:
    """The summary table as aligned plain text, for the terminal."""
    header, body = _table(rows)
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([_title(settings), fmt.format(*header), *(fmt.format(*line) for line in body)])


def _title(settings: Settings) -> str:
    """What the tables hold: how PSNR was measured, and the LR degradation if any."""
    shave = "scale" if settings.metric == "y" else f"scale + {RGB_EXTRA_SHAVE}"
    degraded = "" if settings.degrade is None else f", LR degraded: {settings.degrade}"
    return f"PSNR (dB, {settings.metric.upper()}, shave = {shave}) / SSIM (Y){degraded}"


@dataclass(frozen=True)
class Reports:
    """Where to write the reports (each optional): JSON, Markdown table, PSNR-vs-scale plot."""

    json: Path | None = None
    markdown: Path | None = None
    plot: Path | None = None

    def check(self) -> None:
        """Fail before a long evaluation if a report cannot be written: missing folder, or no matplotlib."""
        for path in (self.json, self.markdown, self.plot):
            if path is not None and not Path(path).parent.resolve().is_dir():
                raise OutputError(f"cannot write {path}: folder {Path(path).parent} does not exist")
        if self.plot is not None:
            figure = _new_figure()
            suffix = Path(self.plot).suffix.lower().lstrip(".")
            if suffix not in figure.canvas.get_supported_filetypes():
                raise OutputError(f"cannot write plot {self.plot}: format {suffix!r} unknown; use .png, .svg or .pdf")

    def write(self, rows: Sequence[Row], settings: Settings) -> None:
        """Write each report that has a path."""
        if self.json is not None:
            atomic_write_text(Path(self.json), json.dumps(report_dict(rows, settings), indent=2) + "\n")
        if self.markdown is not None:
            atomic_write_text(Path(self.markdown), markdown_table(rows, settings))
        if self.plot is not None:
            image_format = Path(self.plot).suffix.lower().lstrip(".")
            atomic_write_bytes(Path(self.plot), plot_bytes(rows, settings, image_format))


def plot_bytes(rows: Sequence[Row], settings: Settings, image_format: str = "png") -> bytes:
    """PSNR against scale, one panel per dataset and one line per model, encoded as `image_format`."""
    datasets = list(dict.fromkeys(row.dataset for row in rows))
    figure = _new_figure(figsize=(PLOT_PANEL_SIZE[0] * len(datasets), PLOT_PANEL_SIZE[1]))
    axes = figure.subplots(1, len(datasets), squeeze=False)[0]
    for ax, dataset in zip(axes, datasets):
        for model in dict.fromkeys(row.model for row in rows):
            points = sorted((r.scale, r.psnr) for r in rows if r.dataset == dataset and r.model == model)
            ax.plot([s for s, _ in points], [p for _, p in points], marker="o", label=model)
        ax.set_title(dataset)
        ax.set_xlabel("scale")
        ax.set_xticks(sorted({row.scale for row in rows}))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"PSNR (dB, {settings.metric.upper()})")
    axes[-1].legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format=image_format, dpi=PLOT_DPI)
    return buffer.getvalue()


def _new_figure(**kwargs: Any) -> Figure:
    """A matplotlib Figure (object API, no global pyplot state); OutputError when matplotlib is missing."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise OutputError("a plot needs matplotlib: pip install 'enlarge[plot]'", setting="plot") from None
    return Figure(**kwargs)
