"""Atomic file writes, the one way every writer (images, cards, reports, batch outputs) puts a file in place:
written to a hidden temp file on the target's filesystem, fsynced, then renamed, so a failure or a kill never
leaves a partial file under the real name.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

TEMP_TOKEN_BYTES = 8  # random hex in a temp file's name, so concurrent writers never collide
PERMISSION_ERRNOS = frozenset({errno.EACCES, errno.EPERM})


class TempFileError(OSError):
    """The temp file could not be created in its folder (no permission, no folder, full disk…)."""

    @property
    def permission_denied(self) -> bool:
        return self.errno in PERMISSION_ERRNOS


def temp_path_for(path: Path, folder: Path | None = None) -> Path:
    """A hidden, uniquely named temp file for `path`, in `folder` (default: `path`'s own folder)."""
    return (folder or path.parent) / f".{path.name}.{secrets.token_hex(TEMP_TOKEN_BYTES)}.tmp"


@contextmanager
def atomic_file(path: Path, *, overwrite: bool = True, temp_dir: Path | None = None) -> Iterator[BinaryIO]:
    """A binary stream whose bytes appear at `path` complete, when the block ends without error, or not at all.

    The temp file lives in `temp_dir` (default: beside `path`; it must be on the same filesystem) with the
    permissions of any new file (the umask applies). With `overwrite` an existing `path` is replaced; without,
    it always wins: FileExistsError. TempFileError if the temp file cannot be created; other OSErrors as raised.
    """
    path = Path(path)
    temp = temp_path_for(path, temp_dir)
    try:
        stream = temp.open("xb")  # exclusive create
    except OSError as exc:
        raise TempFileError(exc.errno, exc.strerror, str(temp.parent)) from exc
    try:
        with stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        _publish(temp, path, overwrite)
    finally:
        with suppress(OSError):
            temp.unlink(missing_ok=True)


def _publish(temp: Path, path: Path, overwrite: bool) -> None:
    """Give the finished file its name: replace freely if allowed, else link so an existing file always wins."""
    if overwrite:
        os.replace(temp, path)
        return
    try:
        os.link(temp, path)
    except FileExistsError:
        raise
    except OSError:  # a filesystem without hard links: fall back to check-then-rename
        if path.exists():
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from None
        os.replace(temp, path)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically, replacing any file there."""
    with atomic_file(path) as stream:
        stream.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    """UTF-8 text version of `atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))
