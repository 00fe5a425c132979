"""The batch job spec: input → model → output, plus how to run it; from a YAML file, flags, or both.

A job file has four sections (see `examples/job.yaml` and `docs/batch.md`):

- `input`: exactly one of `folder` (its images, not recursive), `glob` (`**` recurses) or `list` (a text file,
  one path per line, `#` comments); `max_input_mp`;
- `model`: `name` (registered name or weights file), exactly one of `scale`, `size` (`WxH`, shaped by `fit`),
  `width` / `height`; `adaptive` (the big model only where an image has detail: a model with a little path and
  an adaptive calibration), `backend` (torch only), `tile`, `precision`, `max_output_mp`;
- `output`: `folder`, `naming` (placeholders below), `format`, `quality`, `background`, `overwrite`
  (skip | overwrite | error, for files this job did not write), `write_by` (driver | worker);
- `run`: `engine` (local | ray), `address` (ray), `workers` (0: automatic), `threads` (per worker), `retries`.

Paths in a job file are relative to the file's folder; paths given as flags are relative to the current folder.
Flags override the file field by field. Every problem is one ConfigError line naming the field.
"""

from __future__ import annotations

import math
import os
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from enlarge.engine.render import PRECISIONS
from enlarge.errors import ConfigError, EnlargeError
from enlarge.imageio import SUPPORTED_OUTPUT_EXTENSIONS, parse_color
from enlarge.models.registry import SPECS
from enlarge.sizing import DEFAULT_FIT, DEFAULT_MAX_OUTPUT_MP, FITS, SizeRequest, format_scale, parse_scale, parse_size
from enlarge.upscaler import DEFAULT_MAX_INPUT_MP, DEFAULT_MODEL, FALLBACK_OUTPUT_EXTENSION, Color

SECTIONS = ("input", "model", "output", "run")
INPUT_SOURCES = ("folder", "glob", "list")
SIZE_FIELDS = ("scale", "size", "width", "height")
OVERWRITE_POLICIES = ("skip", "overwrite", "error")
WRITERS = ("driver", "worker")  # who writes output files: the driver (bytes come back) or the workers (shared FS)
ENGINES = ("local", "ray")
BACKENDS = ("torch",)  # the only runtime the Upscaler has today
DEFAULT_NAMING = "{stem}_{label}.{ext}"
NAMING_FIELDS = ("stem", "name", "ext", "label", "scale", "model")
FORMAT_EXTENSIONS = {"png": "png", "jpeg": "jpg", "jpg": "jpg", "webp": "webp", "tiff": "tif", "tif": "tif"}
AUTO_WORKERS = 0
DEFAULT_THREADS = 1  # per worker: many images in parallel beat one image on many threads, and it matches engines
DEFAULT_RETRIES = 2
FLAG_SOURCE = "command line"
# flag (argparse dest) → (section, field); `input` is special: a folder or a pattern
FLAG_FIELDS = {
    "input_list": ("input", "list"),
    "max_input_mp": ("input", "max_input_mp"),
    "model": ("model", "name"),
    "scale": ("model", "scale"),
    "size": ("model", "size"),
    "width": ("model", "width"),
    "height": ("model", "height"),
    "fit": ("model", "fit"),
    "adaptive": ("model", "adaptive"),
    "backend": ("model", "backend"),
    "tile": ("model", "tile"),
    "precision": ("model", "precision"),
    "max_output_mp": ("model", "max_output_mp"),
    "output": ("output", "folder"),
    "naming": ("output", "naming"),
    "format": ("output", "format"),
    "quality": ("output", "quality"),
    "background": ("output", "background"),
    "overwrite": ("output", "overwrite"),
    "write_by": ("output", "write_by"),
    "engine": ("run", "engine"),
    "address": ("run", "address"),
    "workers": ("run", "workers"),
    "threads": ("run", "threads"),
    "retries": ("run", "retries"),
}
PATH_FIELDS = {("input", "folder"), ("input", "glob"), ("input", "list"), ("output", "folder")}
EXCLUSIVE_GROUPS = {"input": INPUT_SOURCES, "model": SIZE_FIELDS}  # a flag from a group replaces the file's


@dataclass(frozen=True)
class InputSpec:
    """Where the images come from: `kind` is one of INPUT_SOURCES (folder, glob, list), `location` its value."""

    kind: str
    location: str
    max_input_mp: float


@dataclass(frozen=True)
class ModelSpec:
    """Which model, and the output size it is asked for."""

    name: str
    request: SizeRequest
    adaptive: bool
    backend: str
    tile: int | None
    precision: str | None


@dataclass(frozen=True)
class OutputSpec:
    """Where and how outputs are written."""

    folder: Path
    naming: str
    format: str | None
    quality: int | None
    background: Color | None
    overwrite: str
    write_by: str


@dataclass(frozen=True)
class RunSpec:
    """How the work is spread: engine, cluster address, worker count, threads per worker, retries."""

    engine: str
    address: str | None
    workers: int
    threads: int
    retries: int


@dataclass(frozen=True)
class JobSpec:
    """A validated batch job."""

    input: InputSpec
    model: ModelSpec
    output: OutputSpec
    run: RunSpec

    def parameters(self) -> dict[str, Any]:
        """The settings that decide an output's bytes (the model's own identity is added by the runner)."""
        request = self.model.request
        return {
            "scale": request.scale,
            "size": request.size,
            "width": request.width,
            "height": request.height,
            "fit": request.fit,
            "adaptive": self.model.adaptive,
            "backend": self.model.backend,
            "tile": self.model.tile,
            "quality": self.output.quality,
            "background": self.output.background,
        }

    def output_name(self, source: Path) -> str:
        """The output file name of input `source`, from the naming pattern."""
        return self.output.naming.format(**_naming_values(self, source))


def load_job(path: Path | None, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> JobSpec:
    """Read a job file (optional) and apply flag overrides on top; ConfigError for anything invalid."""
    data: dict[str, Any] = {}
    source = FLAG_SOURCE
    if path is not None:
        source = str(path)
        data = _read_yaml(Path(path))
        _absolutize(data, Path(path).resolve().parent)
    for section, fields in (overrides or {}).items():
        given = data.get(section)
        merged = dict(given) if isinstance(given, dict) else {}
        if any(key in fields for key in EXCLUSIVE_GROUPS.get(section, ())):
            merged = {k: v for k, v in merged.items() if k not in EXCLUSIVE_GROUPS[section]}
        merged.update(fields)
        data[section] = merged
    try:
        return _build(data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def flag_overrides(flags: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Job fields from command-line flags (argparse dests; None means not given); paths made absolute."""
    overrides: dict[str, dict[str, Any]] = {}
    for dest, value in flags.items():
        if value is None:
            continue
        if dest == "input":
            field = "folder" if Path(value).expanduser().is_dir() else "glob"
            section, value = "input", os.path.abspath(os.path.expanduser(value))
        elif dest in FLAG_FIELDS:
            section, field = FLAG_FIELDS[dest]
            if (section, field) in PATH_FIELDS or _is_model_file(section, field, value, Path.cwd()):
                value = os.path.abspath(os.path.expanduser(value))
        else:
            continue
        overrides.setdefault(section, {})[field] = value
    return overrides


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"job file {path} not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"job file {path} is unreadable or not YAML: {' '.join(str(exc).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a job file is a mapping with sections {', '.join(SECTIONS)}")
    return data


def _absolutize(data: dict[str, Any], base: Path) -> None:
    """Make a job file's paths (and a model given as a path) relative to the file's folder."""
    for section in SECTIONS:
        fields = data.get(section)
        if not isinstance(fields, dict):
            continue
        for key, value in fields.items():
            if isinstance(value, str) and ((section, key) in PATH_FIELDS or _is_model_file(section, key, value, base)):
                fields[key] = str(base / Path(value).expanduser())


def _is_model_file(section: str, key: str, value: Any, base: Path) -> bool:
    """Whether `value` names the model by an existing weights file (relative to `base`), not by a registered name."""
    is_name = section == "model" and key == "name" and isinstance(value, str)
    return is_name and value not in SPECS and (base / Path(value).expanduser()).exists()


class _Fields:
    """One section of the spec, read field by field with type checks; whatever is left over is unknown."""

    def __init__(self, data: Any, section: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{section} must be a mapping of fields, got {data!r}")
        self.section = section
        self._data = dict(data)
        self._known: list[str] = []

    def get(self, key: str, kinds: tuple[type, ...], what: str, default: Any = None) -> Any:
        """The value of `key` (or `default` when absent or null), checked to be one of `kinds`."""
        self._known.append(key)
        value = self._data.pop(key, None)
        if value is None:
            return default
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise ConfigError(f"{self.where(key)} must be {what}, got {value!r}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get(key, (str,), "a string", default)
        if value not in choices:
            raise ConfigError(f"{self.where(key)} must be one of {', '.join(choices)}, got {value!r}")
        return value

    def optional_count(self, key: str, minimum: int) -> int | None:
        """A whole number of at least `minimum`, or None when absent."""
        value = self.get(key, (int,), "a whole number")
        if value is not None and value < minimum:
            raise ConfigError(f"{self.where(key)} must be at least {minimum}, got {value}")
        return value

    def count(self, key: str, minimum: int, default: int) -> int:
        """A whole number of at least `minimum`, `default` when absent."""
        value = self.optional_count(key, minimum)
        return default if value is None else value

    def number(self, key: str, default: float) -> float:
        value = float(self.get(key, (int, float), "a number", default))
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{self.where(key)} must be a positive number, got {value:g}")
        return value

    def where(self, key: str) -> str:
        return f"{self.section}.{key}"

    def finish(self) -> None:
        if self._data:
            unknown = ", ".join(self.where(str(k)) for k in self._data)
            raise ConfigError(f"unknown field(s) {unknown}; known: {', '.join(self._known)}")


def _build(data: dict[str, Any]) -> JobSpec:
    unknown = [str(key) for key in data if key not in SECTIONS]
    if unknown:
        raise ConfigError(f"unknown section(s) {', '.join(unknown)}; a job has {', '.join(SECTIONS)}")
    job = JobSpec(
        input=_input(_Fields(data.get("input"), "input")),
        model=_model(_Fields(data.get("model"), "model")),
        output=_output(_Fields(data.get("output"), "output")),
        run=_run(_Fields(data.get("run"), "run")),
    )
    _check_naming(job)
    return job


def _input(fields: _Fields) -> InputSpec:
    given = {kind: fields.get(kind, (str,), "a path") for kind in INPUT_SOURCES}
    max_input_mp = fields.number("max_input_mp", DEFAULT_MAX_INPUT_MP)
    fields.finish()
    sources = [(kind, location) for kind, location in given.items() if location is not None]
    if len(sources) != 1:
        raise ConfigError("input: give exactly one of folder, glob or list (or --input / --input-list)")
    (kind, location), = sources
    return InputSpec(kind=kind, location=location, max_input_mp=max_input_mp)


def _model(fields: _Fields) -> ModelSpec:
    name = fields.get("name", (str,), "a model name or weights path", DEFAULT_MODEL)
    scale = fields.get("scale", (int, float, str), "a number such as 2.5")
    size = fields.get("size", (str,), "WIDTHxHEIGHT such as 1920x1080")
    width = fields.optional_count("width", 1)
    height = fields.optional_count("height", 1)
    fit = fields.choice("fit", FITS, DEFAULT_FIT)
    adaptive = fields.get("adaptive", (bool,), "true or false", False)
    backend = fields.get("backend", (str,), "a string", BACKENDS[0])
    tile = fields.optional_count("tile", 1)
    precision = fields.get("precision", (str,), "a string")
    max_output_mp = fields.number("max_output_mp", DEFAULT_MAX_OUTPUT_MP)
    fields.finish()
    if backend not in BACKENDS:
        raise ConfigError(f"model.backend {backend} is not supported by batch yet; use {', '.join(BACKENDS)}")
    if precision is not None and precision not in PRECISIONS:
        raise ConfigError(f"model.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    try:
        request = SizeRequest(
            scale=parse_scale(str(scale)) if scale is not None else None,
            size=parse_size(size) if size is not None else None,
            width=width,
            height=height,
            fit=fit,
            max_output_mp=max_output_mp,
        )
    except EnlargeError as exc:
        raise ConfigError(f"model: {exc}") from None
    return ModelSpec(
        name=name, request=request, adaptive=adaptive, backend=backend, tile=tile, precision=precision
    )


def _output(fields: _Fields) -> OutputSpec:
    folder = fields.get("folder", (str,), "a folder path")
    naming = fields.get("naming", (str,), "a file name pattern", DEFAULT_NAMING)
    fmt = fields.get("format", (str,), "an image format")
    quality = fields.optional_count("quality", 1)
    background = fields.get("background", (str,), "a colour such as white or #ffffff")
    overwrite = fields.choice("overwrite", OVERWRITE_POLICIES, OVERWRITE_POLICIES[0])
    write_by = fields.choice("write_by", WRITERS, WRITERS[0])
    fields.finish()
    if folder is None:
        raise ConfigError("output.folder is missing (or --output DIR)")
    if fmt is not None and fmt.lower() not in FORMAT_EXTENSIONS:
        raise ConfigError(f"output.format must be one of {', '.join(FORMAT_EXTENSIONS)}, got {fmt!r}")
    try:
        color = parse_color(background) if background is not None else None
    except EnlargeError as exc:
        raise ConfigError(f"output.background: {exc}") from None
    return OutputSpec(
        folder=Path(folder),
        naming=naming,
        format=fmt.lower() if fmt is not None else None,
        quality=quality,
        background=color,
        overwrite=overwrite,
        write_by=write_by,
    )


def _run(fields: _Fields) -> RunSpec:
    engine = fields.choice("engine", ENGINES, ENGINES[0])
    address = fields.get("address", (str,), "a Ray address such as auto or HOST:6379")
    workers = fields.count("workers", 0, AUTO_WORKERS)
    threads = fields.count("threads", 1, DEFAULT_THREADS)
    retries = fields.count("retries", 0, DEFAULT_RETRIES)
    fields.finish()
    if address is not None and engine != "ray":
        raise ConfigError("run.address is for the ray engine; add --engine ray or remove the address")
    return RunSpec(engine=engine, address=address, workers=workers, threads=threads, retries=retries)


def _naming_values(job: JobSpec, source: Path) -> dict[str, str]:
    request = job.model.request
    fmt = job.output.format
    own = source.suffix if source.suffix.lower() in SUPPORTED_OUTPUT_EXTENSIONS else FALLBACK_OUTPUT_EXTENSION
    return {
        "stem": source.stem,
        "name": source.name,
        "ext": FORMAT_EXTENSIONS[fmt] if fmt is not None else own.lstrip("."),
        "label": request.label,
        "scale": format_scale(request.scale) if request.scale is not None else "",
        "model": Path(job.model.name).stem,
    }


def _check_naming(job: JobSpec) -> None:
    """The pattern uses known placeholders and gives a plain file name whose extension matches the format."""
    naming = job.output.naming
    try:
        used = {name for _, name, _, _ in string.Formatter().parse(naming) if name is not None}
    except ValueError:
        raise ConfigError(f"output.naming {naming!r} is not a valid pattern; e.g. {DEFAULT_NAMING}") from None
    unknown = used - set(NAMING_FIELDS)
    if unknown:
        raise ConfigError(f"output.naming has unknown placeholder(s) {_braced(sorted(unknown))}; "
                          f"use {_braced(NAMING_FIELDS)}")
    try:
        sample = job.output_name(Path("image.png"))
    except (ValueError, IndexError, KeyError, AttributeError):  # a format spec or attribute the values lack
        raise ConfigError(f"output.naming {naming!r} is not a valid pattern; e.g. {DEFAULT_NAMING}") from None
    if "scale" in used and job.model.request.scale is None:
        raise ConfigError("output.naming uses {scale} but the job asks for a size; use {label}")
    if Path(sample).name != sample or sample.startswith("."):
        raise ConfigError(f"output.naming must give a plain file name, not a path or hidden file: {naming!r}")
    kind = FORMAT_EXTENSIONS.get(Path(sample).suffix.lower().lstrip("."))
    if kind is None:
        raise ConfigError(f"output.naming {naming!r} does not end in an image extension; end it with .{{ext}}")
    fmt = job.output.format
    if fmt is not None and kind != FORMAT_EXTENSIONS[fmt]:
        raise ConfigError(f"output.naming {naming!r} gives .{kind} files but output.format is {fmt}")


def _braced(names: Iterable[str]) -> str:
    return ", ".join("{" + name + "}" for name in names)
