"""Pack a config's training images into one tar small enough to travel (to a GPU machine that has only the repo).

Images keep their relative paths, so unpacking into a folder and pointing `data_root` at it gives the same
`train_dirs` and `val_list`. JPEGs travel as their original bytes (they are already lossy, and re-encoding would
change their pixels); lossless files are re-encoded as JPEG at `REENCODE_QUALITY` without chroma subsampling only
when the originals do not fit. If the pack still exceeds its budget, the validation images go first and the
training images follow smallest first (the most images per byte) until the budget is spent.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from enlarge.errors import ConfigError
from enlarge.fileutil import atomic_write_bytes
from enlarge.imagefolders import find_images
from enlarge.training.config import TrainConfig

MEGABYTE = 1_000_000
DEFAULT_BUDGET_MB = 38.0  # under the 40 MB a GPU session's repo copy leaves room for
REENCODE_QUALITY = 95
KEPT_SUFFIXES = (".jpg", ".jpeg")


def _tar_bytes(size: int) -> int:
    """What a member of `size` bytes takes in a tar: a header block and its data padded to whole blocks."""
    blocks = -(-size // tarfile.BLOCKSIZE)
    return tarfile.BLOCKSIZE * (1 + blocks)


@dataclass(frozen=True)
class PackResult:
    """What went into the pack."""

    path: Path
    images: int
    left_out: int
    reencoded: int
    bytes: int


def _encoded(path: Path, reencode: bool) -> bytes:
    if not reencode or path.suffix.lower() in KEPT_SUFFIXES:
        return path.read_bytes()
    with Image.open(path) as image:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=REENCODE_QUALITY, subsampling=0)
    return buffer.getvalue()


def pack_training_data(config: TrainConfig, output: Path, budget_mb: float = DEFAULT_BUDGET_MB) -> PackResult:
    """Write the training and validation images of `config` into the tar `output` within `budget_mb`."""
    root = config.data.root
    files: list[Path] = []
    for name in config.data.train_dirs:
        folder = root / name
        if not folder.is_dir():
            raise ConfigError(f"training folder {folder} not found")
        files.extend(find_images(folder))
    held_out = {(root / item).resolve() for item in config.data.val_list}
    budget = budget_mb * MEGABYTE - tarfile.RECORDSIZE  # the closing blocks, padded to a whole record
    reencode = sum(p.stat().st_size for p in files) > budget
    payload = {p: _encoded(p, reencode) for p in files}
    order = sorted(files, key=lambda p: (p.resolve() not in held_out, len(payload[p]), str(p)))
    chosen, used = [], 0
    for path in order:
        size = _tar_bytes(len(payload[path]))
        if used + size > budget:
            if path.resolve() in held_out:
                raise ConfigError(f"the validation images alone exceed the pack budget of {budget_mb:g} MB")
            continue
        chosen.append(path)
        used += size
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(chosen):
            data = payload[path]
            # a re-encoded file keeps its name, so val_list still matches; readers go by content, not suffix
            info = tarfile.TarInfo(path.relative_to(root).as_posix())
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    atomic_write_bytes(Path(output), buffer.getvalue())
    reencoded = sum(1 for p in chosen if reencode and p.suffix.lower() not in KEPT_SUFFIXES)
    return PackResult(Path(output), len(chosen), len(files) - len(chosen), reencoded, len(buffer.getvalue()))


def unpack_training_data(pack: Path, folder: Path) -> None:
    """Extract a pack made by `pack_training_data` into `folder` (plain files only, no paths outside it)."""
    try:
        with tarfile.open(pack) as tar:
            tar.extractall(folder, filter="data")
    except (OSError, tarfile.TarError) as exc:
        raise ConfigError(f"training pack {pack} is unreadable: {exc}") from None
