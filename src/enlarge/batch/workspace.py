"""The hidden `.enlarge/` folder inside a batch output folder: manifest, lock and temp files, and atomic writes.

```
OUTPUT/
  a_x2.png ...             finished outputs only
  .enlarge/manifest.sqlite what each item's state is (see manifest.py)
  .enlarge/lock            held by the run using this folder, so two runs cannot mix their files
  .enlarge/tmp/            outputs being written; renamed into place when complete, emptied when a run starts
```

Temp files live in the hidden folder, on the output's filesystem, so `os.replace` publishes a complete file in one
step and a killed run leaves nothing half-written beside the outputs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from enlarge.batch.manifest import Manifest
from enlarge.errors import OutputError
from enlarge.fileutil import TempFileError, atomic_file

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so runs on one output folder are not guarded against each other
    fcntl = None  # type: ignore[assignment]

STATE_DIR = ".enlarge"
TMP_DIR = "tmp"
MANIFEST_FILE = "manifest.sqlite"
LOCK_FILE = "lock"
HASH_CHUNK = 1 << 20
FILE_MODE = 0o666  # before the umask, as for any new file


def state_dir(folder: Path) -> Path:
    return Path(folder) / STATE_DIR


def manifest_path(folder: Path) -> Path:
    return state_dir(folder) / MANIFEST_FILE


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in chunks; OSError if it cannot be read."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_output(path: Path, data: bytes, tmp: Path) -> None:
    """Write `data` to a temp file in `tmp`, fsync it, then rename it over `path`: complete or absent."""
    try:
        with atomic_file(path, temp_dir=tmp) as stream:
            stream.write(data)
    except TempFileError as exc:
        raise OutputError(
            f"cannot create a file in {tmp}: {exc.strerror or exc}; with write_by: worker every node must "
            "see the output folder at the same path"
        ) from None
    except OSError as exc:
        raise OutputError(f"could not write {path}: {exc.strerror or exc}; check free space and permissions") from None


@dataclass(frozen=True)
class Workspace:
    """An output folder held by this run: where temp files go, and its manifest."""

    folder: Path
    tmp: Path
    manifest: Manifest


@contextmanager
def open_workspace(folder: Path) -> Iterator[Workspace]:
    """Hold `folder` for one run: hidden folder made, locked, a killed run's temp files removed, manifest open."""
    folder = Path(folder)
    tmp = state_dir(folder) / TMP_DIR
    try:
        tmp.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot use {folder} as the output folder ({exc.strerror}); give a writable folder") from None
    lock = _take_lock(folder)
    try:
        for stale in tmp.iterdir():  # never published, so safe to drop
            stale.unlink(missing_ok=True)
        manifest = Manifest.open(manifest_path(folder))
        try:
            yield Workspace(folder, tmp, manifest)
        finally:
            manifest.close()
    finally:
        if lock is not None:
            os.close(lock)  # closing the descriptor releases the lock


def _take_lock(folder: Path) -> int | None:
    """An exclusive lock on the folder's lock file (None where the platform has no advisory locks)."""
    if fcntl is None:
        return None
    lock = os.open(state_dir(folder) / LOCK_FILE, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        raise OutputError(
            f"another batch run is writing to {folder}; wait for it to end or choose another output folder"
        ) from None
    return lock
