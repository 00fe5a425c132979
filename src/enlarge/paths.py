"""Input and output paths: which files a list of inputs (files, folders, glob patterns) stands for, and the name
each output gets.

Outputs are named `NAME_{label}.EXT` by default (`DEFAULT_NAMING`; the label is `x2.5` or `1920x1080`), in the
input's own format when it can be written and as PNG otherwise; the CLI, batch jobs and the service all name
their outputs with `output_name`.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

from enlarge.errors import OutputError
from enlarge.formats import INPUT_EXTENSIONS, output_extension
from enlarge.sizing import SizeRequest

GLOB_CHARS = "*?["  # an input spec holding one of these, and naming no existing file, is a pattern
DEFAULT_NAMING = "{stem}_{label}.{ext}"  # `ext` without its dot


def output_name(stem: str, label: str, extension: str) -> str:
    """The default output file name: `DEFAULT_NAMING` filled in (`extension` with or without its dot)."""
    return DEFAULT_NAMING.format(stem=stem, label=label, ext=extension.lstrip("."))


def images_in(folder: Path) -> list[Path]:
    """The image files (INPUT_EXTENSIONS, any case) directly inside `folder`, sorted."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in INPUT_EXTENSIONS)


def expand_inputs(specs: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders → the images directly inside, glob patterns → the files they match (sorted).

    A folder without images stays in the list as itself, and a pattern without matches as its text, so that
    `enlarge_file` reports each as a bad input while the rest of a batch goes on. Repeats are dropped.
    """
    found: list[Path] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_dir():
            images = images_in(path)
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
    """(input, output) pairs for input specs (files, folders, globs) and an optional output file or folder.

    Without `output`: `NAME_{label}.EXT` beside each input. `output` is a folder (created if missing) when it is
    one already, ends with a separator, or there is more than one input (or a folder or pattern was given); each
    image keeps its name there. OutputError if several inputs were given but `output` names an image file.
    Two inputs may land on the same output: `output_clashes` says which, so a run can skip those alone.
    """
    specs = [str(spec) for spec in specs]
    inputs = expand_inputs(specs)
    if output is None:
        return [
            (path, path.parent / output_name(path.stem, request.label, output_extension(path.suffix))) for path in inputs
        ]
    if not _is_folder_output(str(output), specs, inputs):
        return [(path, Path(output).expanduser()) for path in inputs]
    folder = Path(output).expanduser()
    if not folder.is_dir() and folder.suffix.lower() in INPUT_EXTENSIONS:
        raise OutputError(
            f"{folder} names one image file, but there are {len(inputs)} inputs; give a folder for their outputs "
            f"(e.g. {folder.with_suffix('')}{os.sep}), or one input",
            setting="output",
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot use {folder} as the output folder ({exc.strerror}); give a writable folder", setting="output"
        ) from None
    return [(path, folder / f"{path.stem}{output_extension(path.suffix)}") for path in inputs]


def output_clashes(pairs: Iterable[tuple[Path, Path]]) -> dict[Path, OutputError]:
    """For each input whose output an earlier input already takes, the error to report for it (the first keeps it)."""
    first: dict[Path, Path] = {}
    clashes = {}
    for source, target in pairs:
        if target in first:
            clashes[source] = OutputError(
                f"{source} would be written to {target}, as {first[target]} is; rename one of them"
            )
        else:
            first[target] = source
    return clashes


def _is_folder_output(output: str, specs: list[str], inputs: list[Path]) -> bool:
    many = len(inputs) > 1 or any(Path(spec).is_dir() or _is_pattern(spec) for spec in specs)
    return many or output.endswith(("/", os.sep)) or Path(output).is_dir()


def _is_pattern(text: str) -> bool:
    return any(char in text for char in GLOB_CHARS)


def check_output(input: Path, output: Path, overwrite: bool) -> None:
    """Fail before any work if `output` could not be written: the input itself, exists, or no folder."""
    if output.exists() and input.exists() and output.resolve() == input.resolve():
        raise OutputError(f"output {output} is the input file; choose another output name")
    if output.is_dir():
        raise OutputError(f"output {output} is a folder; give a file name for one input", setting="output")
    if output.exists() and not overwrite:
        raise OutputError.exists(output)
    if not output.parent.is_dir():
        raise OutputError(f"output folder {output.parent} does not exist or is not a folder; create it first")
