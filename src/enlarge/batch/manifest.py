"""The batch manifest: one SQLite row per output file, written by the driver only, committed after every change.

Rows are keyed by the output's name, so the manifest describes the files in its folder: a job run at ×2, then ×3,
then ×2 again finds its ×2 outputs still recorded. A row holds the input it was made from, the item's state (`running` from just before its work is sent out, then `done` or `failed`), the
hash of the job parameters it was made with, the SHA-256 of its input and of the output written, attempts and the
last error, and for a done item the model that made it and why it was chosen (`choice`: the default model sends
compressed JPEGs to its robust twin). Manifests written before those two columns gain them when opened. A re-run trusts a `done` row only when parameters, input and output hashes all still match, and any
row marks its output file as this job's own (to be replaced when redone, whatever the overwrite policy).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from enlarge.errors import OutputError

RUNNING, DONE, FAILED = "running", "done", "failed"
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    output TEXT PRIMARY KEY,       -- output file name inside the output folder
    input TEXT NOT NULL,           -- absolute input path
    state TEXT NOT NULL,           -- running | done | failed
    params TEXT NOT NULL,          -- hash of the job parameters
    input_sha256 TEXT,
    output_sha256 TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    notes TEXT,                    -- JSON list of remarks from the reader and writer
    updated REAL NOT NULL,         -- seconds since the epoch
    model TEXT,                    -- the model that made the output (or lanczos / copy)
    choice TEXT                    -- why that model was chosen, when one was
)
"""
_ADDED_COLUMNS = {"model": "TEXT", "choice": "TEXT"}  # added after the first manifests: ALTER TABLE adds them
T = TypeVar("T")
_COLUMNS = ("output", "input", "state", "params", "input_sha256", "output_sha256", "attempts", "error", "model", "choice")


@dataclass(frozen=True)
class Record:
    """One row of the manifest."""

    output: str
    input: str
    state: str
    params: str
    input_sha256: str | None
    output_sha256: str | None
    attempts: int
    error: str | None
    model: str | None = None
    choice: str | None = None


class Manifest:
    """The manifest of one output folder; every method commits before it returns."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self._path = path

    @classmethod
    def open(cls, path: Path) -> Manifest:
        """Open (creating if needed) the manifest at `path` for writing."""
        try:
            db = sqlite3.connect(path)
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise OutputError(f"manifest {path} was written by a newer enlarge; upgrade, or move it aside")
            with db:
                db.execute(_SCHEMA)
                present = _table_columns(db)
                for column, kind in _ADDED_COLUMNS.items():
                    if column not in present:
                        db.execute(f"ALTER TABLE items ADD COLUMN {column} {kind}")
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise _unreadable(path, exc) from None
        return cls(db, path)

    @staticmethod
    def read(path: Path) -> dict[str, Record]:
        """The records of the manifest at `path`, read-only (for a dry run); empty if there is none yet."""
        if not path.is_file():
            return {}
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                return _records(db)
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise _unreadable(path, exc) from None

    def records(self) -> dict[str, Record]:
        """Every row, by output name."""
        return self._guarded(lambda: _records(self._db))

    def start(self, output: str, input: str, params: str, input_sha256: str) -> None:
        """Mark an item `running` (its output may appear at any moment from now on) and count the attempt."""
        self._write(
            "INSERT INTO items (output, input, state, params, input_sha256, attempts, updated) "
            "VALUES (?, ?, ?, ?, ?, 1, ?) ON CONFLICT(output) DO UPDATE SET input = excluded.input, "
            "state = excluded.state, params = excluded.params, input_sha256 = excluded.input_sha256, "
            "output_sha256 = NULL, error = NULL, notes = NULL, model = NULL, choice = NULL, "
            "attempts = attempts + 1, updated = excluded.updated",
            (output, input, RUNNING, params, input_sha256, time.time()),
        )

    def finish(
        self, output: str, output_sha256: str, notes: list[str], model: str | None = None, choice: str | None = None
    ) -> None:
        """Mark a started item `done` with the hash of the output now in place, the model that made it and why."""
        self._write(
            "UPDATE items SET state = ?, output_sha256 = ?, notes = ?, model = ?, choice = ?, updated = ? "
            "WHERE output = ?",
            (DONE, output_sha256, json.dumps(notes), model, choice, time.time(), output),
        )

    def fail(self, output: str, input: str, params: str, error: str) -> None:
        """Mark an item `failed` with its reason (it may never have started: an unreadable input)."""
        self._write(
            "INSERT INTO items (output, input, state, params, error, updated) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(output) DO UPDATE SET input = excluded.input, state = excluded.state, "
            "params = excluded.params, error = excluded.error, updated = excluded.updated",
            (output, input, FAILED, params, error, time.time()),
        )

    def close(self) -> None:
        self._db.close()

    def _write(self, sql: str, values: tuple[object, ...]) -> None:
        def execute() -> None:
            with self._db:
                self._db.execute(sql, values)

        self._guarded(execute)

    def _guarded(self, action: Callable[[], T]) -> T:
        """Run `action`, turning a database error into a one-line OutputError."""
        try:
            return action()
        except sqlite3.Error as exc:
            raise _unreadable(self._path, exc) from None


def _table_columns(db: sqlite3.Connection) -> set[str]:
    return {row[1] for row in db.execute("PRAGMA table_info(items)")}


def _records(db: sqlite3.Connection) -> dict[str, Record]:
    """Every row; a column an older manifest lacks (read-only, not yet upgraded) reads as NULL."""
    present = _table_columns(db)
    columns = ", ".join(c if c in present else f"NULL AS {c}" for c in _COLUMNS)
    rows = db.execute(f"SELECT {columns} FROM items").fetchall()
    return {row[0]: Record(*row) for row in rows}


def _unreadable(path: Path, exc: sqlite3.Error) -> OutputError:
    return OutputError(f"manifest {path} cannot be used ({exc}); move it aside to start the job afresh")
