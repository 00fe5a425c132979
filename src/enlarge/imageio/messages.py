"""The wording shared by reading and writing: one-line exception details, the corrupt-file message, notes."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import UnidentifiedImageError

_MAX_DETAIL_CHARS = 200
_OBJECT_REPR = re.compile(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>")  # `<_io.BytesIO object at 0x…>`: no use to a reader
_UNREADABLE_HEADER = "its header cannot be read"  # what Pillow's "cannot identify image file" means here
_LOGGERS_LOCK = threading.RLock()  # loggers are process-wide; a Pillow read may nest a tifffile one


def corrupt_message(name: str, exc: Exception) -> str:
    """The message for a file a decoder could not read."""
    return f"{name} is truncated or corrupt ({detail(exc)}); re-download or re-export it"


def detail(exc: Exception) -> str:
    """An exception as one short line without object reprs, for the middle of our own message."""
    if isinstance(exc, UnidentifiedImageError):  # its text is only "cannot identify image file <the stream>"
        return _UNREADABLE_HEADER
    text = " ".join(_OBJECT_REPR.sub("", str(exc)).split()) or type(exc).__name__
    return text[:_MAX_DETAIL_CHARS]


def add_note(notes: list[str], note: str) -> None:
    """Append `note` unless it is already there: each remark is made once."""
    if note not in notes:
        notes.append(note)


class _Collector(logging.Handler):
    """Keeps the messages of the records it is given."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def decoder_logs(logger_name: str) -> Iterator[list[str]]:
    """What a decoder's logger (and its children) log at WARNING or above, collected into the yielded list.

    Pillow and tifffile log about the damaged files they meet (`More samples per pixel than can be decoded`, a bad
    TIFF tag); with no logging set up Python prints those on stderr beside our own one line. While this runs they
    reach neither stderr nor the root logger.
    """
    logger = logging.getLogger(logger_name)
    collector = _Collector()
    with _LOGGERS_LOCK:
        propagate = logger.propagate
        logger.addHandler(collector)
        logger.propagate = False
        try:
            yield collector.messages
        finally:
            logger.removeHandler(collector)
            logger.propagate = propagate
