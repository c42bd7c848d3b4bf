"""One service per data directory: the lock file held while it runs (and while a restore
replaces the database)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bot.ops.data_dir import DataDirBusy
from storage.db import LOCK_NAME, lock_holder


@contextmanager
def exclusive_use(path: Path) -> Iterator[None]:
    """Hold ``path``'s lock file while the block runs: one service per data directory, and no
    restore under a running service. The kernel drops the lock when the process dies."""
    lock = path / LOCK_NAME
    with open(lock, "a+", encoding="utf-8") as handle:
        holder = lock_holder(handle, fcntl.LOCK_EX)
        if holder is not None:
            raise DataDirBusy(
                f"data_dir {path} is in use by another pairpilot (pid {holder} "
                f"holds {lock}; the lock is live: stop that process, never "
                "delete the file)"
            )
        if os.geteuid() == 0:  # run as root (a restore): the service's user must still open it
            owner = path.stat()
            os.chown(lock, owner.st_uid, owner.st_gid)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
