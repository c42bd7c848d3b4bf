"""Shared fixtures: real sample candles, real SQLite files, a test clock."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from bot.core.clock import FakeClock
from bot.market.candle_files import read_candle_file
from storage.db import Database, open_database
from strategies import strategy_registry
from strategies.registry import install

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "bot" / "sample_data"
SHARED_DATA = ROOT.parent / "shared" / "data"
RAM_DISK = Path("/dev/shm")
RAM_DISK_ROOM = 4 << 30  # bytes free it needs (a container's 64 MiB /dev/shm would not do)


def pytest_configure(config: pytest.Config) -> None:
    """Every test's files (tmp_path, and the TMPDIR of the processes tests start) go to RAM
    where the machine has room for them, unless TMPDIR says where (or /dev/shm is small or
    noexec). The database commits with synchronous=FULL: an fsync on this machine's disk costs
    3-6 ms, and a replay commits thousands of times (the demo: 8,155 fdatasyncs; 123 s wall
    on /tmp, 53 s on /dev/shm, on a busy disk: bench/RESULTS.md). No test proves durability
    against power loss, which is all the fsync buys: a SIGKILL (the crash soaks') leaves the
    page cache, so what a killed process wrote is read back either way."""
    if "TMPDIR" in os.environ or not RAM_DISK.is_dir() or not os.access(RAM_DISK, os.W_OK):
        return
    room = os.statvfs(RAM_DISK)
    runs_files = not room.f_flag & os.ST_NOEXEC  # test_deploy runs a script it writes there
    if runs_files and room.f_bavail * room.f_frsize >= RAM_DISK_ROOM:
        os.environ["TMPDIR"] = str(RAM_DISK)
        tempfile.tempdir = None  # gettempdir() reads TMPDIR again


@pytest.fixture(scope="session")
def btc_path() -> Path:
    return SAMPLES / "BTC_USDT-1h.csv.gz"


@pytest.fixture(scope="session")
def btc_candles(btc_path: Path) -> pd.DataFrame:
    return read_candle_file(btc_path)


@pytest.fixture(scope="session")
def eth_candles() -> pd.DataFrame:
    return read_candle_file(SAMPLES / "ETH_USDT-1h.csv.gz")


@pytest.fixture
def shared_data() -> Path:
    """The team's full real data set, beside the checkout in CI; absent in a user's clone."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is not here (it sits beside the checkout only in CI)")
    return SHARED_DATA


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 6, 21, tzinfo=UTC))


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with open_database(tmp_path / "test.sqlite") as database:
        yield database


@pytest.fixture(autouse=True)
def _strategy_registry_put_back() -> Iterator[None]:
    """Loading a config installs its strategies as the process's (strategies/registry.py):
    every test gets back the registry it started with."""
    before = strategy_registry()
    yield
    install(before)
