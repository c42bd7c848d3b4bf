"""The paper twin's copy beside a backup (``b.twin.sqlite`` beside ``b.sqlite``).

A twin copy is marked as the twin's books (``storage.twin_mark``), so a restore never takes
it for the live database, and stamped with the SHA-256 of the database copy it was taken
with (a ``backup_of`` table, dropped again when it is restored), so a restore never puts one
backup's twin books beside another backup's live books. The database copy itself is left
exactly as SQLite's backup made it.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from pathlib import Path

from bot.core.errors import UserInputError
from storage.db import read_only_uri
from storage.twin_mark import TWIN_APPLICATION_ID

_TWIN = ".twin"


def twin_copy(copy: Path) -> Path:
    """Where the paper twin's books are copied beside the copy ``copy`` of the database
    (``b.sqlite``: ``b.twin.sqlite``)."""
    return copy.with_name(f"{copy.stem}{_TWIN}{copy.suffix}")


def digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def stamp(twin_partial: Path, database_copy: Path) -> None:
    """Mark the twin's copy ``twin_partial`` and stamp it with ``database_copy``'s digest."""
    with contextlib.closing(sqlite3.connect(twin_partial, isolation_level=None)) as copy:
        copy.execute(f"PRAGMA application_id = {TWIN_APPLICATION_ID}")
        copy.execute("BEGIN")
        copy.execute("DROP TABLE IF EXISTS backup_of")
        copy.execute("CREATE TABLE backup_of (database_sha256 TEXT NOT NULL)")
        copy.execute("INSERT INTO backup_of VALUES (?)", (digest(database_copy),))
        copy.execute("COMMIT")


def unstamp(staged_twin: Path) -> None:
    """Drop the stamp from a twin copy about to become the twin's books."""
    with contextlib.closing(sqlite3.connect(staged_twin, isolation_level=None)) as books:
        books.execute("DROP TABLE IF EXISTS backup_of")


def not_its_own(source_twin: Path, source: Path) -> str | None:
    """Why the twin copy ``source_twin`` is not the one taken with the database copy
    ``source`` (None: it is)."""
    try:
        with contextlib.closing(sqlite3.connect(read_only_uri(source_twin), uri=True)) as copy:
            rows = copy.execute("SELECT database_sha256 FROM backup_of").fetchall()
    except sqlite3.DatabaseError:  # no stamp (a copy from before stamps), or no database
        return "it does not say which backup it belongs to"
    if [row[0] for row in rows] != [digest(source)]:
        return f"it was taken with another backup than {source.name}"
    return None


def is_twin_copy(source: Path, application_id: int) -> Path | None:
    """The database copy whose twin copy ``source`` is, or ``source`` itself when only its
    mark tells (None: ``source`` is no twin copy). A copy from before the mark is told by
    its name beside its database copy."""
    database_copy = source.with_name(source.stem.removesuffix(_TWIN) + source.suffix)
    if source.stem.endswith(_TWIN) and database_copy.is_file():
        return database_copy
    return source if application_id == TWIN_APPLICATION_ID else None


def replaceable(twin_target: Path) -> bool:
    """Whether a file at ``twin_target`` (the twin copy's place of a new backup, whose
    database copy is not there) may be replaced: an orphan twin copy is, an earlier
    backup's whose database copy was removed (a rotation: ``rm b.sqlite; pairpilot backup
    b.sqlite``); anything else that is not a pairpilot database is not touched."""
    if not twin_target.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(read_only_uri(twin_target), uri=True)) as copy:
            tables = {row[0] for row in copy.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError:
        tables = set()
    if "pair_runs" not in tables:
        raise UserInputError(
            f"{twin_target} exists already and is no paper twin's copy; name a new file or "
            "a directory"
        )
    return True
