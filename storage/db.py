"""The aiosqlite connection, its transactions and the numbered schema migrations."""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import IO, Any

import aiosqlite

LOCK_NAME = "pairpilot.lock"  # held by the running service (bot/app/data_dir_lock.py)
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class UnusableDatabase(Exception):
    """The database file cannot be used as it is (corrupt, not a database): stop, naming it."""


class SchemaTooNew(UnusableDatabase):
    """The database was written by a newer pairpilot: running on it could corrupt it."""


class Database:
    """One connection in autocommit mode; ``transaction()`` groups writes atomically.

    A task that already holds the transaction joins it, so repository methods can open one
    themselves and still compose into a larger one.
    """

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.connection = connection
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        task = asyncio.current_task()
        if self._owner is not None and self._owner is task:
            yield self.connection
            return
        async with self._lock:
            self._owner = task
            try:
                await self.connection.execute("BEGIN IMMEDIATE")
                try:
                    yield self.connection
                except BaseException:
                    await self.connection.execute("ROLLBACK")
                    raise
                await self.connection.execute("COMMIT")
            finally:
                self._owner = None

    async def execute(self, sql: str, parameters: Iterable[Any] = ()) -> int:
        """Run one write in its own (or the caller's) transaction; returns the last row id."""
        async with self.transaction() as connection:
            cursor = await connection.execute(sql, tuple(parameters))
            return cursor.lastrowid or 0

    async def fetch_all(self, sql: str, parameters: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        async with self.connection.execute(sql, tuple(parameters)) as cursor:
            return list(await cursor.fetchall())

    async def fetch_one(self, sql: str, parameters: Iterable[Any] = ()) -> aiosqlite.Row | None:
        async with self.connection.execute(sql, tuple(parameters)) as cursor:
            return await cursor.fetchone()


@asynccontextmanager
async def open_database(path: Path | str, *, service: bool = False) -> AsyncIterator[Database]:
    """Open (creating if needed) the SQLite file in WAL mode and bring its schema up to date.

    Raises SchemaTooNew, changing nothing, when a newer pairpilot wrote the file, and refuses
    to migrate under a running service unless ``service``: the caller is that service (it
    holds the data directory's lock itself)."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    async with aiosqlite.connect(path, isolation_level=None) as connection:
        connection.row_factory = aiosqlite.Row
        try:
            await refuse_newer_schema(connection, path)
            await connection.execute("PRAGMA journal_mode = WAL")
        except sqlite3.DatabaseError as error:
            if isinstance(error, sqlite3.OperationalError):  # locked, full, unreadable: as is
                raise
            raise UnusableDatabase(
                f"database {path} cannot be used: {error}; restore a backup "
                "(pairpilot restore) or move the file aside; it was left "
                "untouched"
            ) from None
        migrating = await schema_version(connection) < latest_schema()
        if str(path) != ":memory:" and migrating and not service:
            refuse_migrating_under_a_service(Path(path))
        # FULL: a committed fill survives a power cut, not only a process crash.
        await connection.execute("PRAGMA synchronous = FULL")
        await connection.execute("PRAGMA foreign_keys = ON")
        await connection.execute("PRAGMA busy_timeout = 5000")
        await migrate(connection)
        yield Database(connection)


@asynccontextmanager
async def open_read_only(path: Path) -> AsyncIterator[Database]:
    """Open an existing database for reading only: no migration, no journal-mode change, no
    write of any kind (SQLite refuses them), so another process may inspect a live file."""
    async with aiosqlite.connect(read_only_uri(path), uri=True, isolation_level=None) as connection:
        connection.row_factory = aiosqlite.Row
        await connection.execute("PRAGMA busy_timeout = 5000")
        yield Database(connection)


def refuse_migrating_under_a_service(path: Path) -> None:
    """A command of a newer pairpilot must not migrate the database under a running older
    service (it would go on with its old code on the new schema): UnusableDatabase then."""
    lock = path.parent / LOCK_NAME
    if not lock.exists():
        return
    with open(lock, "a+", encoding="utf-8") as handle:
        holder = lock_holder(handle, fcntl.LOCK_SH)
        if holder is not None:
            raise UnusableDatabase(
                f"database {path} needs migrating to schema {latest_schema()}, but the "
                f"pairpilot running on it (pid {holder}, perhaps in another container) is an "
                "older version: stop it, or run this after it restarted; nothing was changed"
            )
        fcntl.flock(handle, fcntl.LOCK_UN)


def lock_holder(handle: IO[str], mode: int) -> str | None:
    """Take the lock file's flock (``mode``) without waiting: None when taken, else the pid
    its holder wrote into it ("?" when none)."""
    try:
        fcntl.flock(handle, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        return handle.read().strip() or "?"
    return None


def read_only_uri(path: Path) -> str:
    """A ``file:`` URI opening ``path`` read-only (as_uri escapes '?' and '#' in the path).

    SQLite creates the -wal and -shm files even for a read-only open of a WAL database; when
    no -wal exists no connection has the file open (the last close removes it), so the file is
    opened as immutable: nothing is created. On a read-only file system too (nothing can
    change the file there); see ``unread_wal``."""
    uri = f"{path.absolute().as_uri()}?mode=ro"
    wal = Path(f"{path}-wal")
    if not wal.exists() or os.statvfs(path.parent).f_flag & os.ST_RDONLY:
        uri += "&immutable=1"
    return uri


def unread_wal(path: Path) -> Path | None:
    """The -wal file an immutable open of ``path`` would ignore (it has content), or None."""
    wal = Path(f"{path}-wal")
    if "immutable=1" in read_only_uri(path) and wal.exists() and wal.stat().st_size > 0:
        return wal
    return None


async def refuse_newer_schema(connection: aiosqlite.Connection, path: Path | str) -> None:
    """Raise SchemaTooNew when ``connection``'s schema is past the newest migration we ship."""
    found, known = await schema_version(connection), latest_schema()
    if found > known:
        raise SchemaTooNew(
            f"database {path} has schema version {found}, newer than this pairpilot knows "
            f"({known}): a newer pairpilot wrote it. Install that version again, or restore a "
            "backup made by this one (pairpilot restore); the file was left untouched"
        )


def latest_schema() -> int:
    """The schema version the newest shipped migration brings a database to."""
    return max((number for number, _ in migrations()), default=0)


def migrations() -> list[tuple[int, str]]:
    """The numbered migration scripts shipped in ``storage/migrations``, in order."""
    found = []
    for entry in resources.files("storage.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    return sorted(found)


async def schema_version(connection: aiosqlite.Connection) -> int:
    async with connection.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def migrate(connection: aiosqlite.Connection) -> int:
    """Apply every migration above ``PRAGMA user_version``, each in its own transaction."""
    current = await schema_version(connection)
    for number, script in migrations():
        if number <= current:
            continue
        try:
            await connection.executescript(
                f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;"
            )
        except BaseException:
            if connection.in_transaction:
                await connection.execute("ROLLBACK")
            raise
        current = number
    return current
