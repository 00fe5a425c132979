"""Every exception the library raises: one family, so front-ends can turn any of them into one clear line."""

from __future__ import annotations


class EnlargeError(Exception):
    """Base of every error a user can cause and fix; the message says what was wrong and what to do."""


class InputError(EnlargeError):
    """An input file is missing, unreadable, not an image, truncated, or in an unsupported format."""


class ImageTooLargeError(InputError):
    """An input or requested output is above the configured pixel limit (decompression-bomb guard)."""


class OutputError(EnlargeError):
    """An output cannot be written: folder missing or read-only, file exists without overwrite, bad format."""


class SizeError(EnlargeError):
    """A scale or target size is invalid (zero, negative, not finite, or over the output limit)."""


class ModelError(EnlargeError):
    """A model name is unknown, or a weights file is corrupt, foreign, or does not match its architecture."""


class ConfigError(EnlargeError):
    """A configuration file (training, batch job) is missing a field or has an invalid value."""


class DeadlineError(EnlargeError):
    """An enlargement ran past the time limit it was given and was stopped (deadline.py)."""
