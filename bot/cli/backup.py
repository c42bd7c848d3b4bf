"""`pairpilot backup` and `pairpilot restore`: the database, and the paper twin's books.

Copying pairpilot.sqlite by hand loses what is still in its write-ahead log; SQLite's online
backup API copies a consistent snapshot instead, safe while the service writes (WAL lets it go
on). A restore replaces the database only while no service holds the data directory, and keeps
the database it replaces beside it: nothing is ever lost.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bot.app.data_dir_lock import exclusive_use
from bot.cli.twin_copies import is_twin_copy, not_its_own, replaceable, stamp, twin_copy, unstamp
from bot.core.errors import UserInputError
from bot.ops.data_dir import MIN_FREE_BYTES, DataDirBusy, free_bytes
from storage.db import latest_schema, read_only_uri, unread_wal


@dataclass(frozen=True, slots=True)
class Copied:
    path: Path
    schema: int
    size: int


@dataclass(frozen=True, slots=True)
class Backup:
    copied: Copied
    twin: Copied | None  # the twin's books' copy (None: no twin, or left out: see notes)
    notes: tuple[str, ...]  # for the operator: a twin copy left out, an orphan replaced


def backup(database: Path, dest: str, now: datetime, twin: Path) -> Backup:
    """Copy ``database`` to ``dest`` (a new file, or a directory to put a timestamped one in;
    a trailing '/' says it must be one), and the paper twin's books ``twin`` beside it where
    there are any (``twin_copy``); each copy is checked before it gets its name, so a file at
    ``dest`` is always whole. The twin only watches: books of it that cannot be copied
    (corrupt: the service runs without its monitor then) are left out, said in the notes,
    and never stop the live books' copy."""
    if not database.exists():
        raise UserInputError(f"no database at {database}; nothing to back up")
    where = Path(dest)
    if dest.endswith("/") and not where.is_dir():
        raise UserInputError(f"directory {where} does not exist; create it first")
    target = where / f"pairpilot-{now:%Y%m%dT%H%M%SZ}.sqlite" if where.is_dir() else where
    if target.exists():
        raise UserInputError(f"{target} exists already; name a new file or a directory")
    twin_target, notes = twin_copy(target), list[str]()
    orphan = replaceable(twin_target) if twin.exists() else twin_target.exists()
    _refuse_unread_wal(database)
    _check_room([database, twin] if twin.exists() else [database], target)
    twin_partial = _twin_snapshot(twin, twin_target, notes) if twin.exists() else None
    try:
        copied = _online_copy(database, target)
    except BaseException:
        if twin_partial is not None:
            twin_partial.unlink(missing_ok=True)  # no twin copy without its database's
        raise
    twin_copied = None if twin_partial is None else _seal(twin_partial, copied, notes)
    if orphan and twin_copied is not None:
        notes.append(
            f"{twin_target}, an earlier backup's twin copy without its database copy, was replaced"
        )
    elif orphan:
        notes.append(
            f"{twin_target} (not this backup's) was left as it was: a restore does not take it"
        )
    return Backup(copied, twin_copied, tuple(notes))


def _seal(twin_partial: Path, copied: Copied, notes: list[str]) -> Copied | None:
    """The twin's copy stamped with the database copy ``copied`` and named beside it."""
    try:
        stamp(twin_partial, copied.path)
        return _publish(twin_partial, twin_copy(copied.path))
    except (sqlite3.Error, OSError) as error:
        twin_partial.unlink(missing_ok=True)
        notes.append(f"the paper twin's books were left out of the backup: {error}")
        return None


def _twin_snapshot(twin: Path, twin_target: Path, notes: list[str]) -> Path | None:
    """The twin's books, copied and checked but not yet named (they are stamped with the
    database copy first); None, said in ``notes``, when they cannot be copied. Taken before
    the live books: the twin books each tick after them, so its copy never holds a trade the
    live copy lacks (a live trade alone is shown by /drift, not measured)."""
    partial = twin_target.with_name(twin_target.name + ".partial")
    try:
        _refuse_unread_wal(twin)
        with contextlib.closing(sqlite3.connect(read_only_uri(twin), uri=True)) as source:
            source.execute("PRAGMA busy_timeout = 5000")
            _snapshot(source, partial, f"back up {twin} to {twin_target}")
    except (UserInputError, sqlite3.Error, OSError) as error:  # unreadable, locked, ...
        partial.unlink(missing_ok=True)
        notes.append(
            f"the paper twin's books were left out of the backup ({error}); the live "
            "books are backed up"
        )
        return None
    return partial


def _refuse_unread_wal(source: Path) -> None:
    wal = unread_wal(source)
    if wal is not None:  # on a read-only file system SQLite cannot merge it in for us
        raise UserInputError(
            f"{wal} holds changes not yet in {source}, and the file system "
            f"is read-only: copy both files as they are (cp {source} {wal} "
            "DEST/)"
        )


def _online_copy(database: Path, target: Path) -> Copied:
    with contextlib.closing(sqlite3.connect(read_only_uri(database), uri=True)) as source:
        source.execute("PRAGMA busy_timeout = 5000")
        return _copy(source, target, f"back up {database} to")


def _check_room(databases: list[Path], target: Path) -> None:
    """The copies on the data directory's own file system must leave the service its
    ``MIN_FREE_BYTES`` (below it new entries stop); elsewhere they must fit."""
    parts = [part for path in databases for part in (path, Path(f"{path}-wal"))]
    size = sum(part.stat().st_size for part in parts if part.exists())
    free = free_bytes(target.parent)
    shared = target.parent.stat().st_dev == databases[0].parent.stat().st_dev
    needed = size + (MIN_FREE_BYTES if shared else 0)
    if free < needed:
        floor = f" and leave the service its {MIN_FREE_BYTES // 2**20} MiB" if shared else ""
        raise UserInputError(
            f"{target.parent} has {free / 2**20:.1f} MiB free; the backup needs "
            f"{size / 2**20:.1f} MiB{floor}: put backups on another disk or "
            "remove old ones; nothing was written"
        )


@dataclass(frozen=True, slots=True)
class Restored:
    copied: Copied
    kept: Path | None  # where the replaced database was kept (None: there was none)
    twin: Copied | None  # the twin's books restored (None: the backup has none)
    twin_kept: Path | None  # where the twin's books it replaced were kept
    twin_left: str | None  # why the twin copy beside the backup was not restored


def restore(source: Path, database: Path, now: datetime, twin: Path) -> Restored:
    """Make ``source`` (a backup) the database, and its twin's copy (``twin_copy``) the paper
    twin's books ``twin``, unless a service holds the data directory. Twin books the backup
    has none of (or a twin copy not taken with ``source``) are set aside all the same: they
    would not match the restored live books (the twin starts anew). Everything replaced is
    kept beside, renamed."""
    if not source.is_file():
        raise UserInputError(f"backup {source} does not exist")
    database.parent.mkdir(parents=True, exist_ok=True)
    source_twin = twin_copy(source)
    left = not_its_own(source_twin, source) if source_twin.is_file() else None
    with exclusive_use(database.parent):  # DataDirBusy while the service runs
        _refuse_if_open(database)
        _refuse_if_open(twin)
        copied = _stage(source, database, twin=False)
        try:
            twin_copied = (
                _stage(source_twin, twin, twin=True)
                if source_twin.is_file() and left is None
                else None
            )
        except BaseException:
            copied.path.unlink(missing_ok=True)
            raise
        kept = _replace(copied.path, database, now)
        twin_kept = _replace(None if twin_copied is None else twin_copied.path, twin, now)
    restored_twin = (
        None if twin_copied is None else Copied(twin, twin_copied.schema, twin_copied.size)
    )
    twin_left = None if left is None else f"{source_twin} was not restored: {left}"
    restored = Copied(database, copied.schema, copied.size)
    return Restored(restored, kept, restored_twin, twin_kept, twin_left)


def _stage(source: Path, database: Path, *, twin: bool) -> Copied:
    """The backup ``source`` (``twin``: a twin copy), checked, copied beside ``database``
    (not yet in its place)."""
    with contextlib.closing(sqlite3.connect(read_only_uri(source), uri=True)) as backup_db:
        _check_backup(backup_db, source, twin=twin)
        staged = database.with_name(database.name + ".restoring")
        staged.unlink(missing_ok=True)
        copied = _copy(backup_db, staged, f"restore {source} into")
    if twin:
        unstamp(staged)
    _same_owner(staged, database if database.exists() else database.parent)
    return copied


def _replace(staged: Path | None, database: Path, now: datetime) -> Path | None:
    """Put ``staged`` in ``database``'s place (None: leave the place empty); returns where
    what was there is kept (None: nothing was)."""
    kept = database.with_name(f"{database.name}.before-restore-{now:%Y%m%dT%H%M%SZ}")
    # A -wal left without its database (moved aside by hand after a crash) would be
    # replayed into the restored file by the next open: it goes aside too, always.
    parts = [Path(f"{database}{suffix}") for suffix in ("-wal", "-shm", "")]
    moved = [part for part in parts if part.exists()]
    for part in moved:  # the main file last: its WAL goes with it
        part.rename(f"{kept}{part.name.removeprefix(database.name)}")
    if staged is not None:
        staged.rename(database)
    _sync_directory(database.parent)
    return kept if moved else None


def _refuse_if_open(database: Path) -> None:
    """The lock file can be deleted by mistake; SQLite still knows whether a process has the
    database open: an exclusive lock is refused then."""
    if not database.exists():
        return
    try:
        with contextlib.closing(sqlite3.connect(database, timeout=0, isolation_level=None)) as db:
            db.execute("PRAGMA locking_mode = EXCLUSIVE")
            db.execute("BEGIN EXCLUSIVE")
            db.execute("ROLLBACK")
    except sqlite3.OperationalError as error:
        raise DataDirBusy(
            f"{database} is open in another process ({error}): a pairpilot is "
            "running on it; stop it first"
        ) from None
    except sqlite3.DatabaseError:  # not a database at all (the reason to restore): no user
        return


def _same_owner(path: Path, like: Path) -> None:
    """Give ``path`` the owner and mode of ``like``: a restore run as root must not leave a
    database the service's user cannot write."""
    wanted = like.stat()
    if os.geteuid() == 0:
        os.chown(path, wanted.st_uid, wanted.st_gid)
    if like.is_file():
        path.chmod(stat.S_IMODE(wanted.st_mode))


def _check_backup(connection: sqlite3.Connection, path: Path, *, twin: bool) -> None:
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        schema = connection.execute("PRAGMA user_version").fetchone()[0]
        application_id = connection.execute("PRAGMA application_id").fetchone()[0]
    except sqlite3.DatabaseError as error:
        raise UserInputError(f"{path} is not a SQLite database ({error})") from None
    if "pair_runs" not in tables:
        raise UserInputError(f"{path} is not a pairpilot database (no pair_runs table)")
    database_copy = None if twin else is_twin_copy(path, application_id)
    if database_copy is not None:
        instead = "" if database_copy == path else f"; restore {database_copy}, it brings it"
        raise UserInputError(
            f"{path} holds the paper twin's books, not the live ones: as the database the "
            f"service would take the twin's paper positions for real ones{instead}; nothing "
            "was changed"
        )
    known = latest_schema()
    if schema > known:
        raise UserInputError(
            f"{path} has schema {schema}, newer than this pairpilot knows "
            f"({known}); restore it with that newer version"
        )


def _copy(source: sqlite3.Connection, target: Path, doing: str) -> Copied:
    """``source`` into ``target`` through a temporary file, checked, then renamed."""
    partial = target.with_name(target.name + ".partial")
    _snapshot(source, partial, f"{doing} {target}")
    try:
        return _publish(partial, target)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise UserInputError(f"cannot {doing} {target}: {error}; nothing was written") from None


def _snapshot(source: sqlite3.Connection, partial: Path, doing: str) -> None:
    """``source`` copied into the new file ``partial`` and checked; nothing left on failure."""
    try:
        with contextlib.closing(sqlite3.connect(partial)) as copy:
            # One step: a single read transaction, so the copy is one consistent moment.
            source.backup(copy)
            verdict = copy.execute("PRAGMA integrity_check").fetchone()[0]
        if verdict != "ok":
            raise UserInputError(f"cannot {doing}: the copy fails its check: {verdict}")
    except BaseException as error:
        partial.unlink(missing_ok=True)
        Path(f"{partial}-journal").unlink(missing_ok=True)  # left by a copy that failed
        if isinstance(error, sqlite3.Error | OSError):
            raise UserInputError(f"cannot {doing}: {error}; nothing was written") from None
        raise


def _publish(partial: Path, target: Path) -> Copied:
    """The checked copy ``partial`` made durable and named ``target``."""
    with contextlib.closing(sqlite3.connect(read_only_uri(partial), uri=True)) as copy:
        schema = copy.execute("PRAGMA user_version").fetchone()[0]
    with open(partial, "rb+") as handle:
        os.fsync(handle.fileno())
    partial.rename(target)
    _sync_directory(target.parent)
    return Copied(target, schema, target.stat().st_size)


def _sync_directory(path: Path) -> None:
    """Make a rename in ``path`` survive a power cut."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
