"""The wording shared by reading and writing: one-line exception details, the corrupt-file message, notes."""

from __future__ import annotations

import re

from PIL import UnidentifiedImageError

_MAX_DETAIL_CHARS = 200
_OBJECT_REPR = re.compile(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>")  # `<_io.BytesIO object at 0x…>`: no use to a reader
_UNREADABLE_HEADER = "its header cannot be read"  # what Pillow's "cannot identify image file" means here


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
