"""`pairpilot backup` and `pairpilot restore`.

Copying pairpilot.sqlite by hand loses what is still in its write-ahead log; SQLite's online
backup API copies a consistent snapshot instead, safe while the service writes (WAL lets it go
on). A restore replaces the database only while no service holds the data directory, and keeps
the database it replaces beside it: nothing is ever lost.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bot.data_dir import exclusive_use
from bot.errors import UserInputError
from storage.db import latest_schema, read_only_uri


@dataclass(frozen=True, slots=True)
class Copied:
    path: Path
    schema: int
    size: int


def backup(database: Path, dest: Path, now: datetime) -> Copied:
    """Copy ``database`` to ``dest`` (a new file, or a directory to put a timestamped one in);
    the copy is checked before it gets its name, so a file at ``dest`` is always whole."""
    if not database.exists():
        raise UserInputError(f"no database at {database}; nothing to back up")
    target = dest / f"pairpilot-{now:%Y%m%dT%H%M%SZ}.sqlite" if dest.is_dir() else dest
    if target.exists():
        raise UserInputError(f"{target} exists already; name a new file or a directory")
    with contextlib.closing(sqlite3.connect(read_only_uri(database), uri=True)) as source:
        source.execute("PRAGMA busy_timeout = 5000")
        copied = _copy(source, target, f"back up {database} to")
    return copied


def restore(source: Path, database: Path, now: datetime) -> tuple[Copied, Path | None]:
    """Make ``source`` (a backup) the database, unless a service holds the data directory.
    Returns the copy and where the replaced database was kept (None: there was none)."""
    if not source.is_file():
        raise UserInputError(f"backup {source} does not exist")
    database.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_use(database.parent):  # DataDirBusy while the service runs
        with contextlib.closing(sqlite3.connect(read_only_uri(source), uri=True)) as backup_db:
            _check_backup(backup_db, source)
            staged = database.with_name(database.name + ".restoring")
            staged.unlink(missing_ok=True)
            copied = _copy(backup_db, staged, f"restore {source} into")
        kept = None
        if database.exists():
            kept = database.with_name(f"{database.name}.before-restore-{now:%Y%m%dT%H%M%SZ}")
            for suffix in ("-wal", "-shm", ""):  # the main file last: its WAL goes with it
                part = Path(f"{database}{suffix}")
                if part.exists():
                    part.rename(f"{kept}{suffix}")
        staged.rename(database)
        _sync_directory(database.parent)
    return Copied(database, copied.schema, copied.size), kept


def _check_backup(connection: sqlite3.Connection, path: Path) -> None:
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        schema = connection.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as error:
        raise UserInputError(f"{path} is not a SQLite database ({error})") from None
    if "pair_runs" not in tables:
        raise UserInputError(f"{path} is not a pairpilot database (no pair_runs table)")
    known = latest_schema()
    if schema > known:
        raise UserInputError(f"{path} has schema {schema}, newer than this pairpilot knows "
                             f"({known}); restore it with that newer version")  # fmt: skip


def _copy(source: sqlite3.Connection, target: Path, doing: str) -> Copied:
    """``source`` into ``target`` through a temporary file, checked, then renamed."""
    partial = target.with_name(target.name + ".partial")
    try:
        with contextlib.closing(sqlite3.connect(partial)) as copy:
            # One step: a single read transaction, so the copy is one consistent moment.
            source.backup(copy)
            verdict = copy.execute("PRAGMA integrity_check").fetchone()[0]
            schema = copy.execute("PRAGMA user_version").fetchone()[0]
        if verdict != "ok":
            raise UserInputError(f"cannot {doing} {target}: the copy fails its check: {verdict}")
        with open(partial, "rb+") as handle:
            os.fsync(handle.fileno())
        partial.rename(target)
        _sync_directory(target.parent)
    except (sqlite3.Error, OSError) as error:
        raise UserInputError(f"cannot {doing} {target}: {error}; nothing was written") from None
    finally:
        partial.unlink(missing_ok=True)
    return Copied(target, schema, target.stat().st_size)


def _sync_directory(path: Path) -> None:
    """Make a rename in ``path`` survive a power cut."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
