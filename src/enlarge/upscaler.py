"""`Upscaler`: load a model once, enlarge many images; the one entry point of every front-end.

Front-ends hand it decoded images or file paths and a `SizeRequest`; it runs the engine and never lets a tensor
out. What it does around the model:

- **colour channels**: grayscale (L, LA) is replicated to RGB for the model and averaged back to one channel;
- **alpha**: the colour is enlarged premultiplied by alpha, and un-premultiplied afterwards (colour set to 0 where
  alpha is below `ALPHA_FLOOR`), so transparent pixels, whose stored colour is often black, cannot bleed a dark
  halo into the edges. Alpha itself goes through the **same model** (replicated to RGB, averaged back): dividing a
  sharpened colour by a softer alpha would leave a dark rim just outside every edge. A constant alpha (an opaque
  RGBA file) skips both steps;
- **shrinking**: the model only ever enlarges; an axis that shrinks is resampled with Pillow's antialiased
  Lanczos filter (after the model, for a stretch that enlarges one axis and shrinks the other);
- output clamped to [0, 1]; bit depth, ICC profile and EXIF carried to the result.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import io
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from enlarge.autoselect import AUTO, Selection, Selector
from enlarge.engine.adaptive import Routing, check_routable, render_adaptive
from enlarge.engine.precision import BF16, resolve_precision
from enlarge.engine.render import PRECISIONS, Progress, render
from enlarge.errors import EnlargeError, InputError, ModelError, OutputError, SizeError
from enlarge.imageio import (
    DEFAULT_MAX_INPUT_PIXELS,
    SUPPORTED_OUTPUT_EXTENSIONS,
    DecodedImage,
    decode_image_bytes,
    encode_image_bytes,
    read_image,
    write_image,
)
from enlarge.models.card import ModelCard, card_path_for
from enlarge.models.registry import (
    SPECS,
    LoadedModel,
    available,
    build,
    bundled_weights,
    load_model,
    parameter_count,
)
from enlarge.sizing import DEFAULT_FIT, DEFAULT_PAD_COLOR, PIXELS_PER_MP, Box, Size, SizePlan, SizeRequest

# The model used when none is named: the trained CPU model once its weights ship, bicubic until then.
DEFAULT_MODEL = "lite" if available(SPECS["lite"]) else "bicubic"
DEFAULT_MAX_INPUT_MP = DEFAULT_MAX_INPUT_PIXELS / PIXELS_PER_MP
MAX_INPUT_FLAG = "--max-input-mp"
DEVICES = ("cpu", "cuda", "mps")
TORCH_BACKEND, ONNX_BACKEND = "torch", "onnx"
BACKENDS = (TORCH_BACKEND, ONNX_BACKEND)  # onnx: the exported graphs run by onnxruntime (CPU, fp32)
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # Rec. 601, to turn a background colour into a gray level
RGB = 3
FALLBACK_OUTPUT_EXTENSION = ".png"  # for inputs whose own format cannot be written (e.g. GIF, BMP)
PIL_PRECONVERT = {"RGBa": "RGBA", "La": "LA", "HSV": "RGB"}  # PIL modes TIFF cannot store → their plain form
SHARED_UPSCALERS = 2  # models kept loaded by `upscale()` between calls
MAX_8_BIT = 255  # colours (background, padding) are given as 0-255 RGB
MAX_16_BIT = 65_535
ALPHA_FLOOR = 0.5 / MAX_8_BIT  # below half an 8-bit step a pixel is invisible: its colour is set to 0
GLOB_CHARS = "*?["  # an input spec holding one of these, and naming no existing file, is a pattern
INPUT_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif")  # picked from folders

Color = tuple[int, int, int]


@dataclass(frozen=True)
class Result:
    """What one enlargement did: for summary lines, JSON output, manifests."""

    input: Path
    output: Path
    input_size: Size
    output_size: Size
    model: str
    seconds: float
    notes: tuple[str, ...] = ()
    routed_fraction: float | None = None  # adaptive: share of the output decoded by the big model
    choice: str | None = None  # model "auto": why this model was chosen

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (paths as strings, sizes as [width, height]); adaptive and auto facts when present."""
        data: dict[str, object] = {
            "input": str(self.input),
            "output": str(self.output),
            "input_size": list(self.input_size),
            "output_size": list(self.output_size),
            "model": self.model,
            "seconds": round(self.seconds, 3),
            "notes": list(self.notes),
        }
        if self.routed_fraction is not None:
            data["routed_fraction"] = round(self.routed_fraction, 4)
        if self.choice is not None:
            data["choice"] = self.choice
        return data


@dataclass
class _Report:
    """What an enlargement did besides its pixels, gathered while it runs: the model that ran, the share routed
    to the big model (adaptive, colour pass) and why the model was chosen (auto)."""

    model: str
    routed: float | None = None
    choice: str | None = None


class Upscaler:
    """A loaded model plus the settings to run it: build once, call `upscale_image` / `enlarge_file` many times.

    `adaptive`: decode the model's residual only where the input has detail (engine/adaptive.py), above the
    calibrated default threshold, `threshold`, or for the `route_fraction` of regions with most to gain.
    `model="auto"`: per image, the bundled model that fits `time_budget` seconds and is worth it (autoselect.py).
    `precision`: fp32 or bf16, else the model card's default (engine/precision.py). `backend="onnx"`: the model
    exported to ONNX and run by onnxruntime (export/onnx.py); `model` may also name an export folder then.
    """

    def __init__(
        self,
        model: str | Path | LoadedModel | None = None,
        device: str = "cpu",
        threads: int | None = None,
        tile: int | None = None,
        precision: str | None = None,
        adaptive: bool = False,
        threshold: float | None = None,
        route_fraction: float | None = None,
        time_budget: float | None = None,
        backend: str = TORCH_BACKEND,
    ) -> None:
        self.device = resolve_device(device)
        check_backend(backend, model, self.device, precision)
        if (threshold is not None or route_fraction is not None) and not adaptive:
            raise EnlargeError("a routing threshold or route fraction needs adaptive enlargement (--adaptive)")
        if time_budget is not None and model != AUTO:
            raise EnlargeError(f"a time budget is for automatic model choice (--model {AUTO})")
        if threads is not None and threads < 1:
            raise EnlargeError(f"threads must be at least 1, got {threads}")
        if tile is not None and tile < 1:
            raise EnlargeError(f"tile must be at least 1 LR pixel, got {tile}; omit it for automatic tiles")
        if precision is not None and precision not in PRECISIONS:
            raise EnlargeError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
        self.tile = tile
        self.routing = Routing(threshold, route_fraction) if adaptive else None
        self.selector = Selector.bundled(time_budget) if model == AUTO else None
        if self.selector is not None:
            for candidate in self.selector.candidates:
                candidate.module.to(self.device)
                if self.routing is not None and candidate.descriptor.little is not None:
                    check_routable(candidate, self.routing)
            loaded = next(c for c in self.selector.candidates if c.descriptor.name == DEFAULT_MODEL)
        else:
            named = model if model is not None else DEFAULT_MODEL
            if backend == ONNX_BACKEND:
                from enlarge.export.onnx import load_onnx

                loaded = load_onnx(named, threads)
            else:
                loaded = model if isinstance(model, LoadedModel) else load_model(named)
            if self.routing is not None:
                check_routable(loaded, self.routing)
        self.model = LoadedModel(loaded.module.to(self.device), loaded.descriptor)
        self.precision = resolve_precision(precision, loaded.descriptor.default_precision, self.device)
        if threads is not None:
            torch.set_num_threads(threads)  # process-wide: set once, here, for every image this Upscaler runs

    @property
    def model_name(self) -> str:
        return AUTO if self.selector is not None else self.model.descriptor.name

    def upscale_image(
        self,
        decoded: DecodedImage,
        plan: SizePlan,
        *,
        background: Color | None = None,
        progress: Progress | None = None,
    ) -> DecodedImage:
        """Resample `decoded` as `plan` says; `background` fills `pad` borders of images without alpha.

        `progress(done, total)` is called after each tile of each model pass (colour, then alpha if any).
        """
        return self._upscale(decoded, plan, background, progress)[0]

    def upscale_image_routed(
        self,
        decoded: DecodedImage,
        plan: SizePlan,
        *,
        background: Color | None = None,
        progress: Progress | None = None,
    ) -> tuple[DecodedImage, float | None]:
        """`upscale_image`, and the share of the output the big model decoded (None unless adaptive ran)."""
        enlarged, report = self._upscale(decoded, plan, background, progress)
        return enlarged, report.routed

    def _upscale(
        self, decoded: DecodedImage, plan: SizePlan, background: Color | None, progress: Progress | None
    ) -> tuple[DecodedImage, _Report]:
        """`upscale_image`, and the report of what it did."""
        if (decoded.width, decoded.height) != plan.input_size:
            raise SizeError(
                f"size plan is for a {plan.input_size[0]}x{plan.input_size[1]} image, "
                f"not {decoded.width}x{decoded.height}; plan each image from its own size"
            )
        pixels = decoded.pixels
        model, report = self.model, _Report(self.method(plan))
        if self.selector is not None and plan.enlarges:
            selection = self._choose(decoded, plan)
            model, report = selection.model, _Report(selection.model.descriptor.name, choice=selection.reason)
        if not plan.is_identity:
            pixels = self._resample_channels(pixels, decoded.has_alpha, plan.render_size, progress, model, report)
        if plan.crop is not None:
            box = plan.crop
            pixels = pixels[box.top : box.bottom, box.left : box.right]
        if plan.pad is not None:
            pixels = _pad(pixels, plan.pad, plan.final_size, decoded.has_alpha, background or DEFAULT_PAD_COLOR)
        pixels = np.ascontiguousarray(pixels, dtype=np.float32)
        return dataclasses.replace(decoded, pixels=pixels, notes=list(decoded.notes)), report

    def _choose(self, decoded: DecodedImage, plan: SizePlan) -> Selection:
        """Model "auto": the selector's choice for this image's colour, render size and number of model passes."""
        colour = decoded.pixels[..., :-1] if decoded.has_alpha else decoded.pixels
        alpha = decoded.pixels[..., -1] if decoded.has_alpha else None
        passes = 2 if alpha is not None and float(alpha.min()) != float(alpha.max()) else 1
        lr = torch.from_numpy(np.ascontiguousarray(_to_rgb(colour).transpose(2, 0, 1), dtype=np.float32))[None]
        (in_w, in_h), (out_w, out_h) = plan.input_size, plan.render_size
        return self.selector.choose(lr, (max(out_h, in_h), max(out_w, in_w)), passes)

    def enlarge_file(
        self,
        input: str | Path,
        output: str | Path,
        request: SizeRequest,
        *,
        max_pixels: int = DEFAULT_MAX_INPUT_PIXELS,
        overwrite: bool = False,
        quality: int | None = None,
        background: Color | None = None,
        progress: Progress | None = None,
    ) -> Result:
        """Read `input`, enlarge it as `request` asks, write `output` atomically; typed errors for anything bad.

        The output is checked before any work, so an existing file or a missing folder fails fast.
        """
        start = time.perf_counter()
        source, target = Path(input), Path(output)
        if source.is_dir():
            raise InputError(f"{source} is a folder with no images in it; pass image files or a folder of them")
        check_output(source, target, overwrite)
        decoded = read_image(source, max_pixels=max_pixels)
        plan = request.plan((decoded.width, decoded.height))
        check_encodable(decoded, target, quality, background)
        enlarged, report = self._upscale(decoded, plan, background, progress)
        written = write_image(target, enlarged, quality=quality, background=background, overwrite=overwrite)
        return Result(
            input=source,
            output=Path(written),
            input_size=plan.input_size,
            output_size=plan.final_size,
            model=report.model,
            seconds=time.perf_counter() - start,
            notes=tuple(enlarged.notes),
            routed_fraction=report.routed,
            choice=report.choice,
        )

    def method(self, plan: SizePlan) -> str:
        """What produces the pixels of `plan`: the model's name, `lanczos` for a pure shrink, `copy` for none."""
        if plan.enlarges:
            return self.model_name
        return "copy" if plan.render_size == plan.input_size else "lanczos"

    def _resample_channels(
        self,
        pixels: np.ndarray,
        has_alpha: bool,
        size: Size,
        progress: Progress | None,
        model: LoadedModel,
        report: _Report,
    ) -> np.ndarray:
        """Colour (premultiplied when there is alpha) and alpha to `size`, each through `_resample` with `model`."""
        colour = pixels[..., :-1] if has_alpha else pixels
        gray = colour.shape[-1] == 1
        alpha = pixels[..., -1:] if has_alpha else None
        constant_alpha = alpha is not None and float(alpha.min()) == float(alpha.max())
        premultiply = alpha is not None and not constant_alpha
        passes = 2 if premultiply else 1
        colour_in = colour * alpha if premultiply else colour
        out = self._resample(_to_rgb(colour_in), size, _pass_progress(progress, 0, passes), model, report)
        if alpha is None:
            channels = [out]
        elif constant_alpha:
            channels = [out, np.full((size[1], size[0], 1), alpha.flat[0], dtype=np.float32)]
        else:
            out_alpha = self._resample(_to_rgb(alpha), size, _pass_progress(progress, 1, passes), model, report)
            out_alpha = np.clip(out_alpha.mean(axis=-1, keepdims=True), 0.0, 1.0)
            safe = np.maximum(out_alpha, ALPHA_FLOOR)
            out = np.where(out_alpha >= ALPHA_FLOOR, np.clip(out, 0.0, None) / safe, 0.0)
            channels = [out, out_alpha]
        channels[0] = channels[0].mean(axis=-1, keepdims=True) if gray else channels[0]
        return np.clip(np.concatenate(channels, axis=-1), 0.0, 1.0)

    def _resample(
        self, rgb: np.ndarray, size: Size, progress: Progress | None, model: LoadedModel, report: _Report
    ) -> np.ndarray:
        """H×W×3 → size: the model up to the larger of input and target on each axis, then Lanczos down.

        Adaptive where asked and the model has a little path; the first pass's routed share goes in `report`.
        """
        in_h, in_w = rgb.shape[:2]
        grown = (max(size[0], in_w), max(size[1], in_h))
        if grown != (in_w, in_h):
            lr = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32))[None]
            if self.routing is not None and model.descriptor.little is not None:
                adaptive = render_adaptive(
                    model, lr.to(self.device), (grown[1], grown[0]), self.routing,
                    tile=self.tile, precision=self.precision, progress=progress,
                )
                out = adaptive.image
                report.routed = adaptive.routed if report.routed is None else report.routed
            else:
                out = render(
                    model, lr.to(self.device), (grown[1], grown[0]),
                    tile=self.tile, precision=self.precision, progress=progress,
                )
            rgb = out[0].float().clamp_(0.0, 1.0).permute(1, 2, 0).cpu().numpy()
        if grown != size:
            rgb = lanczos(rgb, size)
        return rgb


def lanczos(pixels: np.ndarray, size: Size) -> np.ndarray:
    """Antialiased Lanczos resize of an H×W×C float array to `size` (width, height), one float plane at a time."""
    planes = [
        np.asarray(Image.fromarray(np.ascontiguousarray(pixels[..., c], dtype=np.float32)).resize(
            size, Image.Resampling.LANCZOS
        ))
        for c in range(pixels.shape[-1])
    ]
    return np.stack(planes, axis=-1)


def check_backend(backend: str, model: object, device: torch.device, precision: str | None) -> None:
    """Fail before loading anything if `backend` is unknown or cannot run what was asked (onnx: CPU, fp32)."""
    if backend not in BACKENDS:
        raise EnlargeError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend == ONNX_BACKEND:
        if model == AUTO:
            raise EnlargeError(f"--model {AUTO} picks among PyTorch models; name one model for the onnx backend")
        if device.type != "cpu" or precision == BF16:
            raise EnlargeError("the onnx backend runs on the CPU in fp32; drop --device and --precision bf16")


def resolve_device(name: str) -> torch.device:
    """`cpu`, or `cuda` / `mps` when asked for and present; EnlargeError otherwise."""
    kind = name.split(":", 1)[0]
    if kind not in DEVICES:
        raise EnlargeError(f"unknown device {name!r}; use one of {', '.join(DEVICES)}")
    present = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not present[kind]:
        raise EnlargeError(f"device {name!r} is not available on this machine (PyTorch sees no such device); use cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise EnlargeError(f"invalid device {name!r}; use cpu, cuda, cuda:N or mps") from None


def max_input_pixels(max_input_mp: float) -> int:
    """The input pixel limit for `read_image` from megapixels; SizeError if not a positive number."""
    if not math.isfinite(max_input_mp) or max_input_mp <= 0:
        raise SizeError(f"{MAX_INPUT_FLAG} must be a positive number, got {max_input_mp}")
    return int(max_input_mp * PIXELS_PER_MP)


def check_output(input: Path, output: Path, overwrite: bool) -> None:
    """Fail before any work if `output` could not be written: the input itself, exists, or no folder."""
    if output.exists() and input.exists() and output.resolve() == input.resolve():
        raise OutputError(f"output {output} is the input file; choose another output name")
    if output.is_dir():
        raise OutputError(f"output {output} is a folder; give a file name or use several inputs with -o FOLDER")
    if output.exists() and not overwrite:
        raise OutputError(f"output {output} already exists; pass --overwrite to replace it")
    if not output.parent.is_dir():
        raise OutputError(f"output folder {output.parent} does not exist or is not a folder; create it first")


def check_encodable(image: DecodedImage, output: Path, quality: int | None, background: Color | None) -> None:
    """Fail before any work if `image` could not be saved as `output` (format, quality, alpha without background).

    Encodes a 1×1 image of the same kind in the output's format: the writer's own rules, at no cost.
    """
    probe = DecodedImage(image.pixels[:1, :1].copy(), image.bit_depth)
    encode_image_bytes(probe, output.suffix, quality=quality, background=background)


def upscale(
    image: Image.Image | str | Path,
    scale: float | None = None,
    size: Size | None = None,
    model: str | Path | None = None,
    fit: str = DEFAULT_FIT,
    *,
    adaptive: bool = False,
    threshold: float | None = None,
    route_fraction: float | None = None,
    time_budget: float | None = None,
) -> Image.Image:
    """Enlarge a PIL image or an image file by `scale` or to `size` (width, height); returns a PIL image.

    The model is loaded on first use and kept for later calls. A file keeps its ICC profile and EXIF in
    `result.info`; 16-bit grayscale comes back as mode "I;16", 16-bit colour as 8-bit (Pillow has no 16-bit RGB).
    `adaptive`, `threshold`, `route_fraction` and `time_budget` (with `model="auto"`) are as for `Upscaler`.
    """
    decoded = read_image(image) if isinstance(image, (str, Path)) else _from_pil(image)
    request = SizeRequest(scale=scale, size=size, fit=fit)
    plan = request.plan((decoded.width, decoded.height))
    upscaler = _shared_upscaler(model, adaptive, threshold, route_fraction, time_budget)
    return _to_pil(upscaler.upscale_image(decoded, plan))


@functools.lru_cache(maxsize=SHARED_UPSCALERS)
def _shared_upscaler(
    model: str | Path | None,
    adaptive: bool,
    threshold: float | None,
    route_fraction: float | None,
    time_budget: float | None,
) -> Upscaler:
    return Upscaler(
        model, adaptive=adaptive, threshold=threshold, route_fraction=route_fraction, time_budget=time_budget
    )


def _from_pil(image: Image.Image) -> DecodedImage:
    """A PIL image → DecodedImage through an uncompressed TIFF in memory, so the file reader's mode rules apply."""
    image = image.convert(PIL_PRECONVERT[image.mode]) if image.mode in PIL_PRECONVERT else image
    buffer = io.BytesIO()
    extra = {key: image.info[key] for key in ("icc_profile", "exif") if image.info.get(key)}
    try:
        image.save(buffer, format="TIFF", **extra)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot enlarge a PIL image of mode {image.mode} ({exc}); convert it to RGB first") from None
    return decode_image_bytes(buffer.getvalue(), name=f"PIL image ({image.mode})")


def _to_pil(image: DecodedImage) -> Image.Image:
    """DecodedImage → PIL image: 8-bit L/LA/RGB/RGBA, or "I;16" for 16-bit grayscale; ICC and EXIF in `info`."""
    if image.bit_depth == 16 and image.mode == "L":
        samples = np.rint(image.pixels[..., 0] * MAX_16_BIT).astype(np.uint16)
        result = Image.fromarray(samples)
    else:
        samples = np.rint(image.pixels * MAX_8_BIT).astype(np.uint8)
        result = Image.fromarray(samples[..., 0] if image.mode == "L" else samples)
    result.info.update({k: v for k, v in (("icc_profile", image.icc_profile), ("exif", image.exif)) if v})
    return result


def expand_inputs(specs: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders → the images directly inside, glob patterns → the files they match (sorted).

    A folder without images stays in the list as itself, and a pattern without matches as its text, so that
    `enlarge_file` reports each as a bad input while the rest of a batch goes on. Repeats are dropped.
    """
    found: list[Path] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_dir():
            images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in INPUT_EXTENSIONS)
            found.extend(images or [path])
        elif not path.exists() and _is_pattern(str(path)):
            matches = sorted(Path(m) for m in glob.glob(str(path)) if Path(m).is_file())
            found.extend(matches or [path])
        else:
            found.append(path)
    return list(dict.fromkeys(found))


def plan_outputs(
    specs: Iterable[str | Path], request: SizeRequest, output: str | Path | None = None
) -> list[tuple[Path, Path]]:
    """(input, output) pairs for input specs (files, folders, globs) and an optional `-o` file or folder.

    Without `output`: `NAME_{label}.EXT` beside each input. `output` is a folder (created if missing) when it is
    one already, ends with a separator, or there is more than one input (or a folder or pattern was given); each
    image keeps its name there. OutputError if two inputs would land on the same output.
    """
    specs = [str(spec) for spec in specs]
    inputs = expand_inputs(specs)
    if output is None:
        pairs = [(path, path.parent / f"{path.stem}_{request.label}{_output_suffix(path)}") for path in inputs]
    elif _is_folder_output(str(output), specs, inputs):
        folder = Path(output).expanduser()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"cannot use {folder} as the output folder ({exc.strerror}); give a writable folder"
            ) from None
        pairs = [(path, folder / f"{path.stem}{_output_suffix(path)}") for path in inputs]
    else:
        pairs = [(path, Path(output).expanduser()) for path in inputs]
    seen: dict[Path, Path] = {}
    for source, target in pairs:
        if target in seen:
            raise OutputError(f"{seen[target]} and {source} would both be written to {target}; rename one or omit -o")
        seen[target] = source
    return pairs


def _is_folder_output(output: str, specs: list[str], inputs: list[Path]) -> bool:
    many = len(inputs) > 1 or any(Path(spec).is_dir() or _is_pattern(spec) for spec in specs)
    return many or output.endswith(("/", os.sep)) or Path(output).is_dir()


def _is_pattern(text: str) -> bool:
    return any(char in text for char in GLOB_CHARS)


def _output_suffix(input: Path) -> str:
    """The input's own extension when we can write that format, else PNG."""
    return input.suffix if input.suffix.lower() in SUPPORTED_OUTPUT_EXTENSIONS else FALLBACK_OUTPUT_EXTENSION


@dataclass(frozen=True)
class ModelInfo:
    """One line of `enlarge models`."""

    name: str
    parameters: int
    weights: str  # "bundled", "not needed" or "not bundled"
    available: bool  # usable by name, without a checkpoint path
    license: str  # licence of the weights, from the model card
    description: str

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def list_models() -> list[ModelInfo]:
    """Every registered model; parameters counted on the meta device, so nothing is allocated."""
    infos = []
    for spec in SPECS.values():
        with torch.device("meta"):
            parameters = parameter_count(build(spec.arch, spec.config))
        weights_path = bundled_weights(spec)
        if not spec.needs_weights:
            weights, license = "not needed", "n/a"
        elif weights_path is None:
            weights, license = "not bundled", ""
        else:
            weights, license = "bundled", _card_license(weights_path)
        infos.append(ModelInfo(spec.name, parameters, weights, available(spec), license, spec.description))
    return infos


def _card_license(weights_path: Path) -> str:
    try:
        return ModelCard.read(card_path_for(weights_path)).license or "unknown (not in the card)"
    except ModelError:
        return "unknown (card unreadable)"


def _to_rgb(channels: np.ndarray) -> np.ndarray:
    """H×W×1 → H×W×3 (replicated); H×W×3 unchanged."""
    return np.repeat(channels, RGB, axis=-1) if channels.shape[-1] == 1 else channels


def _pass_progress(progress: Progress | None, index: int, passes: int) -> Progress | None:
    """Report the tiles of pass `index` of `passes` as one continuous count."""
    if progress is None:
        return None
    return lambda done, total: progress(index * total + done, passes * total)


def _pad(pixels: np.ndarray, box: Box, size: Size, has_alpha: bool, background: Color) -> np.ndarray:
    """Place `pixels` at `box` on a `size` canvas: transparent with alpha, else `background` (gray for L)."""
    channels = pixels.shape[-1]
    canvas = np.zeros((size[1], size[0], channels), dtype=np.float32)
    if not has_alpha:
        rgb = np.asarray(background, dtype=np.float32) / MAX_8_BIT
        canvas[:] = float(rgb @ np.asarray(LUMA_WEIGHTS, dtype=np.float32)) if channels == 1 else rgb
    canvas[box.top : box.bottom, box.left : box.right] = pixels
    return canvas
