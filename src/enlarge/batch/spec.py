"""The batch job spec: input → model → output, plus how to run it; from a YAML file, flags, or both.

A job file has four sections (see `examples/job.yaml` and `docs/batch.md`):

- `input`: exactly one of `folder` (its images, not recursive), `glob` (`**` recurses) or `list` (a text file,
  one path per line, `#` comments); `max_input_mp`;
- `model`: `name` (registered name or weights file), exactly one of `scale`, `size` (`WxH`, shaped by `fit`),
  `width` / `height`; `adaptive` (the big model only where an image has detail: a model with a little path and
  an adaptive calibration), `backend` (torch only), `tile`, `precision`, `max_output_mp`;
- `output`: `folder`, `naming` (placeholders below), `format`, `quality`, `background`, `overwrite`
  (skip | overwrite | error, for files this job did not write), `write_by` (driver | worker);
- `run`: `engine` (local | ray), `address` (ray), `workers` (0: automatic), `threads` (per worker), `retries`,
  `item_timeout_s` (an item still running after it fails with that reason; none: no limit).

Paths in a job file are relative to the file's folder; paths given as flags are relative to the current folder.
Flags override the file field by field. Every problem is one ConfigError line naming the field.
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from enlarge.catalogue import is_registered
from enlarge.errors import ConfigError, EnlargeError
from enlarge.formats import FORMAT_ALIASES, output_extension, usual_extension
from enlarge.imageio import parse_color
from enlarge.models.specs import DEFAULT_MODEL
from enlarge.paths import DEFAULT_NAMING
from enlarge.pixels import Color
from enlarge.sizing import (
    DEFAULT_FIT,
    DEFAULT_MAX_INPUT_MP,
    DEFAULT_MAX_OUTPUT_MP,
    FITS,
    SizeRequest,
    format_scale,
    parse_scale,
    parse_size,
)
from enlarge.upscaler import PRECISIONS
from enlarge.validation import STRICT_SETTINGS, validate

SECTIONS = ("input", "model", "output", "run")
INPUT_SOURCES = ("folder", "glob", "list")
SIZE_FIELDS = ("scale", "size", "width", "height")
OVERWRITE_POLICIES = ("skip", "overwrite", "error")
WRITERS = ("driver", "worker")  # who writes output files: the driver (bytes come back) or the workers (shared FS)
ENGINES = ("local", "ray")
BACKENDS = ("torch",)  # the only runtime the Upscaler has today
NAMING_FIELDS = ("stem", "name", "ext", "label", "scale", "model")
# output.format: a format by any of its names (lower case) → the extension its files get, without the dot
FORMAT_EXTENSIONS = {name.lower(): usual_extension(fmt).lstrip(".") for name, fmt in FORMAT_ALIASES.items()}
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
    "item_timeout": ("run", "item_timeout_s"),
}
PATH_FIELDS = {("input", "folder"), ("input", "glob"), ("input", "list"), ("output", "folder")}
EXCLUSIVE_GROUPS = {"input": INPUT_SOURCES, "model": SIZE_FIELDS}  # a flag from a group replaces the file's


Count = Annotated[int, Field(ge=1)]
PositiveNumber = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Section(BaseModel):
    """A section of the job: strict types, no unknown fields, and a null field taken as left out."""

    model_config = STRICT_SETTINGS

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


class InputSpec(_Section):
    """Where the images come from: exactly one of `folder`, `glob` or `list`."""

    folder: str | None = Field(None, description="a folder of images (not recursive)")
    glob: str | None = Field(None, description="a glob pattern; ** recurses")
    list: str | None = Field(None, description="a text file, one path per line, # comments")
    max_input_mp: PositiveNumber = Field(DEFAULT_MAX_INPUT_MP, description="refuse inputs above this many megapixels")

    @model_validator(mode="after")
    def _one_source(self) -> InputSpec:
        if sum(value is not None for value in (self.folder, self.glob, self.list)) != 1:
            raise ValueError("give exactly one of folder, glob or list")
        return self

    @property
    def kind(self) -> str:
        """Which of INPUT_SOURCES (folder, glob, list) the images come from."""
        return next(kind for kind in INPUT_SOURCES if getattr(self, kind) is not None)

    @property
    def location(self) -> str:
        return getattr(self, self.kind)


class ModelSpec(_Section):
    """Which model, and the output size it is asked for: exactly one of `scale`, `size`, `width` / `height`."""

    name: str | None = Field(
        None, description="a registered model name or a weights file; default: the default model, which sends "
        "compressed JPEGs to the robust twin its card names (a named model serves every input)",
    )
    scale: int | float | str | None = Field(None, description="scale factor such as 2.5")
    size: str | None = Field(None, description="WIDTHxHEIGHT such as 1920x1080, shaped by fit")
    width: Count | None = None
    height: Count | None = None
    fit: Literal[FITS] = DEFAULT_FIT
    adaptive: bool = Field(False, description="the big model only where an image has detail")
    backend: Literal[BACKENDS] = BACKENDS[0]
    tile: Count | None = Field(None, description="tile size in input pixels (default: automatic)")
    precision: Literal[PRECISIONS] | None = None
    max_output_mp: PositiveNumber = DEFAULT_MAX_OUTPUT_MP
    _request: SizeRequest = PrivateAttr()

    @model_validator(mode="after")
    def _plan_request(self) -> ModelSpec:
        try:
            self._request = SizeRequest(
                scale=parse_scale(str(self.scale)) if self.scale is not None else None,
                size=parse_size(self.size) if self.size is not None else None,
                width=self.width,
                height=self.height,
                fit=self.fit,
                max_output_mp=self.max_output_mp,
            )
        except EnlargeError as exc:
            raise ValueError(str(exc)) from None
        return self

    @property
    def request(self) -> SizeRequest:
        return self._request


class OutputSpec(_Section):
    """Where and how outputs are written."""

    folder: Annotated[Path, Field(strict=False, description="the output folder")]
    naming: str = Field(DEFAULT_NAMING, description="file name pattern; placeholders " + ", ".join(NAMING_FIELDS))
    format: str | None = Field(None, description="output format (default: the input's): " + ", ".join(FORMAT_EXTENSIONS))
    quality: Count | None = Field(None, description="JPEG/WebP quality (1-100)")
    background: str | None = Field(None, description="a colour such as white or #ffffff to flatten transparency")
    overwrite: Literal[OVERWRITE_POLICIES] = Field(OVERWRITE_POLICIES[0], description="for files this job did not write")
    write_by: Literal[WRITERS] = WRITERS[0]
    _color: Color | None = PrivateAttr(None)

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str | None) -> str | None:
        if value is not None and value.lower() not in FORMAT_EXTENSIONS:
            raise ValueError(f"must be one of {', '.join(FORMAT_EXTENSIONS)}, got {value!r}")
        return value.lower() if value is not None else None

    @model_validator(mode="after")
    def _parse_background(self) -> OutputSpec:
        try:
            self._color = parse_color(self.background) if self.background is not None else None
        except EnlargeError as exc:
            raise ValueError(f"background: {exc}") from None
        return self

    @property
    def color(self) -> Color | None:
        """`background` as 0-255 RGB."""
        return self._color


class RunSpec(_Section):
    """How the work is spread: engine, cluster address, worker count, threads per worker, retries, item time limit."""

    engine: Literal[ENGINES] = ENGINES[0]
    address: str | None = Field(None, description="a Ray address such as auto or HOST:6379 (ray engine)")
    workers: Annotated[int, Field(ge=0)] = Field(AUTO_WORKERS, description="0: automatic")
    threads: Count = Field(DEFAULT_THREADS, description="threads per worker")
    retries: Annotated[int, Field(ge=0)] = DEFAULT_RETRIES
    item_timeout_s: PositiveNumber | None = Field(
        None, description="seconds one item may run; past it the item fails, the job goes on (none: no limit)"
    )

    @model_validator(mode="after")
    def _address_needs_ray(self) -> RunSpec:
        if self.address is not None and self.engine != "ray":
            raise ValueError("address is for the ray engine; choose engine ray or remove the address")
        return self


def _no_required_sections(schema: dict[str, Any]) -> None:
    """A job file may leave out any section: flags can give its fields instead."""
    schema.pop("required", None)


class JobSpec(_Section):
    """A validated batch job: the four sections, each of which a file may leave to flags (or to defaults)."""

    model_config = ConfigDict(**STRICT_SETTINGS, json_schema_extra=_no_required_sections)

    input: InputSpec
    model: ModelSpec
    output: OutputSpec
    run: RunSpec

    @model_validator(mode="before")
    @classmethod
    def _sections(cls, data: Any) -> Any:
        """A section left out (or null) is an empty one, so its own defaults and checks apply."""
        if not isinstance(data, dict):
            return data
        return {**data, **{section: data.get(section) or {} for section in SECTIONS}}

    @model_validator(mode="after")
    def _naming(self) -> JobSpec:
        try:
            _check_naming(self)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

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
            "background": self.output.color,
        }

    def output_name(self, source: Path) -> str:
        """The output file name of input `source`, from the naming pattern."""
        return self.output.naming.format(**_naming_values(self, source))


def job_schema() -> dict[str, Any]:
    """The JSON schema of a job file (YAML or JSON)."""
    return JobSpec.model_json_schema()


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
    return validate(JobSpec, data, source)


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
    return is_name and not is_registered(value) and (base / Path(value).expanduser()).exists()


def _naming_values(job: JobSpec, source: Path) -> dict[str, str]:
    request = job.model.request
    fmt = job.output.format
    own = output_extension(source.suffix)
    return {
        "stem": source.stem,
        "name": source.name,
        "ext": FORMAT_EXTENSIONS[fmt] if fmt is not None else own.lstrip("."),
        "label": request.label,
        "scale": format_scale(request.scale) if request.scale is not None else "",
        "model": Path(job.model.name or DEFAULT_MODEL).stem,
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
