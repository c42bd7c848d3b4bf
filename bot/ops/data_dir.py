"""Is the data directory usable: there, writable, on a writable file system, with room left?

Checked without writing anything (``pairpilot health`` promises not to), by the service at
start-up (it refuses to start on a bad one, naming the path) and every half minute while it
runs (it stops new entries before SQLite runs out of room for the exits).
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from bot.core.errors import BotError, ConfigError

# Below this the service stops opening positions: what is left is for managing the open ones
# (an exit writes a few KiB: order, fill, position, alert) and for SQLite's WAL checkpoints.
MIN_FREE_BYTES = 64 * 1024 * 1024
# Below this the service does not even start (SQLite could not open and write its log); in
# between it starts with new entries off, managing the open positions and saying so.
START_MIN_FREE_BYTES = 4 * 1024 * 1024
# What the service writes in the data directory (Settings.database_path is the first, the
# lock file storage.db's LOCK_NAME, held by bot/app/data_dir_lock.py).
FILES = ("pairpilot.sqlite", "pairpilot.sqlite-wal", "pairpilot.sqlite-shm", "pairpilot.lock")


class DataDirBusy(BotError):
    """Another pairpilot process holds the data directory."""


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged process may still write on ``path``'s file system."""
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


def problem(path: Path, min_free: int = MIN_FREE_BYTES) -> str | None:
    """What is wrong with ``path`` as the data directory (naming it), or None."""
    if not path.exists():
        return f"data_dir {path} does not exist"
    if not path.is_dir():
        return f"data_dir {path} is not a directory"
    try:
        info = os.statvfs(path)
    except OSError as error:
        return f"data_dir {path} cannot be inspected: {error.strerror}"
    if info.f_flag & os.ST_RDONLY:
        return f"data_dir {path} is on a read-only file system"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"data_dir {path} is not writable by this user (uid {os.getuid()})"
    for name in FILES:
        file = path / name
        if file.exists() and not os.access(file, os.R_OK | os.W_OK):
            return (
                f"{file} is not writable by this user (uid {os.getuid()}); chown it to the "
                "user pairpilot runs as"
            )
    free = info.f_bavail * info.f_frsize
    if free < min_free:
        return (
            f"data_dir {path} has {free / 2**20:,.1f} MiB free; pairpilot needs at least "
            f"{min_free / 2**20:,.0f} MiB"
        )
    return None


def prepare(path: Path, min_free: int = START_MIN_FREE_BYTES) -> None:
    """Create ``path`` if missing and check it; raises ConfigError naming it when unusable."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"data_dir {path} cannot be created: {error.strerror}") from None
    found = problem(path, min_free)
    if found:
        raise ConfigError(found + "; nothing was written")


def is_storage_error(error: BaseException) -> bool:
    """Whether ``error`` says the disk is full or the file system refuses writes."""
    if isinstance(error, OSError):
        return error.errno in {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES}
    if isinstance(error, sqlite3.OperationalError):
        text = str(error).lower()
        return any(
            words in text for words in ("disk is full", "readonly database", "disk i/o error")
        )
    return False
