"""Every exception the library raises: one family, so front-ends can turn any of them into one clear line."""

from __future__ import annotations


class EnlargeError(Exception):
    """Base of every error a user can cause and fix; the message says what was wrong and what to do.

    Messages name settings in plain words and never a front-end's spelling of them (a CLI flag, a form field):
    `setting`, when given, is the library's name of the one setting that would change the outcome (`"overwrite"`,
    `"max_input_mp"`, `"width"`), so each front-end can add its own spelling of it.
    """

    def __init__(self, message: str = "", *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class InputError(EnlargeError):
    """An input file is missing, unreadable, not an image, truncated, or in an unsupported format."""


class ImageTooLargeError(InputError):
    """An input or requested output is above the configured pixel limit (decompression-bomb guard)."""


class OutputError(EnlargeError):
    """An output cannot be written: folder missing or read-only, file exists without overwrite, bad format."""

    @classmethod
    def exists(cls, path: object) -> OutputError:
        """The one message for an output that is already there and may not be replaced."""
        return cls(f"{path} already exists; allow overwriting to replace it, or choose another name", setting="overwrite")


class SizeError(EnlargeError):
    """A scale or target size is invalid (zero, negative, not finite, or over the output limit)."""


class ModelError(EnlargeError):
    """A model name is unknown, or a weights file is corrupt, foreign, or does not match its architecture."""


class ConfigError(EnlargeError):
    """A configuration file (training, batch job) is missing a field or has an invalid value."""


class DeadlineError(EnlargeError):
    """An enlargement ran past the time limit it was given and was stopped (deadline.py)."""
