"""`Upscaler`: load a model once, enlarge many images; the one entry point of every front-end.

Front-ends hand it decoded images or file paths and a `SizeRequest`; it runs the engine and never lets a tensor
out. What it does around the model:

- **colour channels**: grayscale (L, LA) is replicated to RGB for the model and averaged back to one channel;
- **alpha**: the colour is enlarged premultiplied by alpha, and un-premultiplied afterwards, so transparent pixels,
  whose stored colour is often black, cannot bleed a dark halo into the edges. Alpha itself goes through the
  **same model** (replicated to RGB, averaged back): dividing a sharpened colour by a softer alpha would leave a
  dark rim just outside every edge. `fidelity.py` then keeps alpha inside its local input range (no ringing) and
  the colour of faint pixels inside that of their visible neighbours. A constant alpha (an opaque RGBA file)
  skips all of it; a bilevel image (1-bit, black and white only) keeps its local brightness (`keep_local_mean`);
- **shrinking**: the model only ever enlarges; an axis that shrinks is resampled with Pillow's antialiased
  Lanczos filter (after the model, for a stretch that enlarges one axis and shrinks the other);
- output clamped to [0, 1]; bit depth, ICC profile and EXIF carried to the result.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from enlarge.autoselect import AUTO, Selection, Selector, TwinRoute
from enlarge.devices import resolve_device
from enlarge.engine.adaptive import Routing, check_routable, render_adaptive
from enlarge.engine.precision import BF16, resolve_precision
from enlarge.engine.render import PRECISIONS, Progress, render
from enlarge.engine.tiling import check_tile
from enlarge.errors import EnlargeError, InputError, SizeError
from enlarge.fidelity import is_bilevel, keep_local_mean, unpremultiply
from enlarge.imageio.decoded import DecodedImage
from enlarge.imageio.reading import DEFAULT_MAX_INPUT_PIXELS, read_image
from enlarge.imageio.writing import encode_image_bytes, write_image
from enlarge.models.contract import LoadedModel
from enlarge.models.registry import load_model
from enlarge.models.specs import DEFAULT_MODEL
from enlarge.paths import check_output
from enlarge.pixels import Color, lanczos, pad, to_rgb
from enlarge.sizing import DEFAULT_PAD_COLOR, Size, SizePlan, SizeRequest

__all__ = [
    "BACKENDS",
    "DEFAULT_MODEL",
    "ONNX_BACKEND",
    "PRECISIONS",
    "TORCH_BACKEND",
    "Color",
    "Progress",
    "Report",
    "Result",
    "Upscaler",
    "check_encodable",
]

TORCH_BACKEND, ONNX_BACKEND = "torch", "onnx"
BACKENDS = (TORCH_BACKEND, ONNX_BACKEND)  # onnx: the exported graphs run by onnxruntime (CPU, fp32)


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
    choice: str | None = None  # model "auto" or the default: why this model was chosen

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
class Report:
    """What an enlargement did besides its pixels, gathered while it runs: the model that ran (or `lanczos` /
    `copy`), the share routed to the big model (adaptive, colour pass) and why the model was chosen (auto, or the
    default model's routing of compressed JPEGs to its robust twin)."""

    model: str
    routed: float | None = None
    choice: str | None = None


class Upscaler:
    """A loaded model plus the settings to run it: build once, call `upscale_image` / `enlarge_file` many times.

    `adaptive`: decode the model's residual only where the input has detail (engine/adaptive/), above the
    calibrated default threshold, `threshold`, or for the `route_fraction` of regions with most to gain.
    `model="auto"`: per image, the bundled model that fits `time_budget` seconds and is worth it (autoselect.py).
    No `model`: the default model, except that a compressed JPEG goes to the robust twin its card declares
    (`autoselect.TwinRoute`), as it does under `auto`; a model named explicitly serves every input.
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
            raise EnlargeError("a routing threshold or route fraction needs adaptive enlargement", setting="adaptive")
        if time_budget is not None and model != AUTO:
            raise EnlargeError(f"a time budget is for automatic model choice (model {AUTO!r})", setting="time_budget")
        if threads is not None and threads < 1:
            raise EnlargeError(f"threads must be at least 1, got {threads}", setting="threads")
        check_tile(tile)
        if precision is not None and precision not in PRECISIONS:
            raise EnlargeError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}", setting="precision")
        self.tile = tile
        self.routing = Routing(threshold, route_fraction) if adaptive else None
        self.selector = Selector.bundled(time_budget) if model == AUTO else None
        self.routes: dict[str, TwinRoute] = {}  # clean model name → where its compressed JPEGs go
        if self.selector is not None:
            candidates = self.selector.candidates
            loaded = next(c for c in candidates if c.descriptor.name == DEFAULT_MODEL)
        else:
            named = model if model is not None else DEFAULT_MODEL
            if backend == ONNX_BACKEND:
                from enlarge.export.onnx import load_onnx

                loaded = load_onnx(named, threads)
            else:
                loaded = model if isinstance(model, LoadedModel) else load_model(named)
            candidates = [loaded]
        if (model is None or model == AUTO) and backend == TORCH_BACKEND:
            self.routes = {c.descriptor.name: r for c in candidates if (r := TwinRoute.of(c)) is not None}
        for candidate in [*candidates, *(route.twin for route in self.routes.values())]:
            candidate.module.to(self.device)
            if self.routing is not None and (model != AUTO or candidate.descriptor.little is not None):
                check_routable(candidate, self.routing)
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

    def upscale_image_reported(
        self,
        decoded: DecodedImage,
        plan: SizePlan,
        *,
        background: Color | None = None,
        progress: Progress | None = None,
    ) -> tuple[DecodedImage, Report]:
        """`upscale_image`, and the report of what it did: the model that ran, why, and the adaptive share."""
        return self._upscale(decoded, plan, background, progress)

    def _upscale(
        self, decoded: DecodedImage, plan: SizePlan, background: Color | None, progress: Progress | None
    ) -> tuple[DecodedImage, Report]:
        """`upscale_image`, and the report of what it did."""
        if (decoded.width, decoded.height) != plan.input_size:
            raise SizeError(
                f"size plan is for a {plan.input_size[0]}x{plan.input_size[1]} image, "
                f"not {decoded.width}x{decoded.height}; plan each image from its own size"
            )
        pixels = decoded.pixels
        model, report = self.model, Report(self.method(plan))
        if plan.enlarges:
            model, report.choice = self._model_for(decoded, plan)
            report.model = model.descriptor.name
        if not plan.is_identity:
            pixels = self._resample_channels(pixels, decoded.has_alpha, plan.render_size, progress, model, report)
        if plan.crop is not None:
            box = plan.crop
            pixels = pixels[box.top : box.bottom, box.left : box.right]
        if plan.pad is not None:
            pixels = pad(pixels, plan.pad, plan.final_size, decoded.has_alpha, background or DEFAULT_PAD_COLOR)
        pixels = np.ascontiguousarray(pixels, dtype=np.float32)
        return dataclasses.replace(decoded, pixels=pixels, notes=list(decoded.notes)), report

    def _model_for(self, decoded: DecodedImage, plan: SizePlan) -> tuple[LoadedModel, str | None]:
        """The model that enlarges `decoded` and why (None: the one model of this Upscaler, nothing chosen):
        auto's selection, then the robust twin for a compressed JPEG where the chosen model declares one."""
        model, reasons = self.model, []
        if self.selector is not None:
            selection = self._choose(decoded, plan)
            model, reasons = selection.model, [selection.reason]
        route = self.routes.get(model.descriptor.name)
        if route is not None:
            model, why = route.choose(decoded.jpeg_quality)
            reasons.append(why)
        return model, "; ".join(reasons) or None

    def _choose(self, decoded: DecodedImage, plan: SizePlan) -> Selection:
        """Model "auto": the selector's choice for this image's colour, render size and number of model passes."""
        colour = decoded.pixels[..., :-1] if decoded.has_alpha else decoded.pixels
        alpha = decoded.pixels[..., -1] if decoded.has_alpha else None
        passes = 2 if alpha is not None and float(alpha.min()) != float(alpha.max()) else 1
        lr = torch.from_numpy(np.ascontiguousarray(to_rgb(colour).transpose(2, 0, 1), dtype=np.float32))[None]
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
        report: Report,
    ) -> np.ndarray:
        """Colour (premultiplied when there is alpha) and alpha to `size`, each through `_resample` with `model`."""
        colour = pixels[..., :-1] if has_alpha else pixels
        gray = colour.shape[-1] == 1
        alpha = pixels[..., -1:] if has_alpha else None
        constant_alpha = alpha is not None and float(alpha.min()) == float(alpha.max())
        premultiply = alpha is not None and not constant_alpha
        passes = 2 if premultiply else 1
        colour_in = colour * alpha if premultiply else colour
        # premultiplied passes stay unclamped until unpremultiply: a clamp on one pass only would skew their ratio
        out = self._resample(
            to_rgb(colour_in), size, _pass_progress(progress, 0, passes), model, report, clamp=not premultiply
        )
        if alpha is None:
            grows = size[0] >= colour.shape[1] and size[1] >= colour.shape[0]
            channels = [keep_local_mean(to_rgb(colour), out) if grows and is_bilevel(colour) else out]
        elif constant_alpha:
            channels = [out, np.full((size[1], size[0], 1), alpha.flat[0], dtype=np.float32)]
        else:
            out_alpha = self._resample(
                to_rgb(alpha), size, _pass_progress(progress, 1, passes), model, report, clamp=False
            )
            channels = list(unpremultiply(to_rgb(colour), alpha, out, out_alpha.mean(axis=-1, keepdims=True)))
        channels[0] = channels[0].mean(axis=-1, keepdims=True) if gray else channels[0]
        return np.clip(np.concatenate(channels, axis=-1), 0.0, 1.0)

    def _resample(
        self,
        rgb: np.ndarray,
        size: Size,
        progress: Progress | None,
        model: LoadedModel,
        report: Report,
        clamp: bool = True,
    ) -> np.ndarray:
        """H×W×3 → size: the model up to the larger of input and target on each axis (clamped to [0, 1] unless
        `clamp` is False), then Lanczos down.

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
            out = out[0].float()
            rgb = (out.clamp_(0.0, 1.0) if clamp else out).permute(1, 2, 0).cpu().numpy()
        if grown != size:
            rgb = lanczos(rgb, size)
        return rgb


def check_backend(backend: str, model: object, device: torch.device, precision: str | None) -> None:
    """Fail before loading anything if `backend` is unknown or cannot run what was asked (onnx: CPU, fp32)."""
    if backend not in BACKENDS:
        raise EnlargeError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend == ONNX_BACKEND:
        if model == AUTO:
            raise EnlargeError(
                f"model {AUTO!r} picks among PyTorch models; name one model for the onnx backend", setting="model"
            )
        if device.type != "cpu" or precision == BF16:
            raise EnlargeError(
                "the onnx backend runs on the CPU in fp32; choose the CPU device and fp32, or the torch backend",
                setting="backend",
            )


def check_encodable(image: DecodedImage, output: Path, quality: int | None, background: Color | None) -> None:
    """Fail before any work if `image` could not be saved as `output` (format, quality, alpha without background).

    Encodes a 1×1 image of the same kind in the output's format: the writer's own rules, at no cost.
    """
    probe = DecodedImage(image.pixels[:1, :1].copy(), image.bit_depth)
    encode_image_bytes(probe, output.suffix, quality=quality, background=background)


def _pass_progress(progress: Progress | None, index: int, passes: int) -> Progress | None:
    """Report the tiles of pass `index` of `passes` as one continuous count."""
    if progress is None:
        return None
    return lambda done, total: progress(index * total + done, passes * total)
