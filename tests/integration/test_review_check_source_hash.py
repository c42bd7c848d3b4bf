"""Review of the strategy check's source hash (issue 18): the hash a stored check is kept under
and a live gate compares must change whenever the code that decides changes. At main 12bf92b
it does not for code a strategy imports (the docs send shared code to a package), and it is
read from the file on disk when asked, not from the code loaded.

Each test is a user's session: real files, a real SQLite database, `pairpilot` in a process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from bot.app.strategy_loading import load_strategies
from bot.research.receipts import source_hash
from tests.integration.test_cli import SAMPLE
from tests.review_check_fixtures import PlainCross
from tests.strategy_fixtures import NextClose

ROOT = Path(__file__).resolve().parents[2]

HELPER_CLEAN = """
import pandas as pd


def trend_line(close: pd.Series) -> pd.Series:
    return close.rolling(10).mean()
"""
# the edit: a centred window, four candles of the future in every value
HELPER_PEEKING = HELPER_CLEAN.replace(".rolling(10)", ".rolling(9, center=True)")

USING_HELPER = """
from __future__ import annotations

from typing import ClassVar

import pandas as pd

from review_lines import trend_line
from strategies.base import ParamSpec, Strategy, crossings


class HelperTrend(Strategy):
    name = "helper_trend"
    description = "the close crossing a line from the user's helper package"
    param_specs: ClassVar[tuple[ParamSpec, ...]] = ()

    @property
    def warmup(self) -> int:
        return 11

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        return crossings(candles["close"], trend_line(candles["close"]))
"""

TREND = """
from __future__ import annotations

from typing import ClassVar

import pandas as pd

from strategies.base import ParamSpec, Strategy, crossings


class EditedTrend(Strategy):
    name = "edited_trend"
    description = "the close crossing its SMA(10)"
    param_specs: ClassVar[tuple[ParamSpec, ...]] = ()

    @property
    def warmup(self) -> int:
        return 11

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        close = candles["close"]
        return crossings(close, close.rolling(10).mean())
"""
TREND_PEEKING = TREND.replace("close.rolling(10).mean()", "close.rolling(9, center=True).mean()")
# The editor saves the peeking version while the check runs (a year of 1h candles: up to 10 s
# per the benchmark; here the first run of compute_signals stands in for the moment).
TREND_SAVED_DURING_CHECK = TREND.replace(
    "        close = candles[",
    "        Path(__file__).write_text(PEEKING)\n        close = candles[",
).replace(
    "import pandas as pd\n",
    f"import pandas as pd\nfrom pathlib import Path\nPEEKING = {TREND_PEEKING!r}\n",
    1,
)


def pairpilot(*args: str, cwd: Path, pythonpath: tuple[Path, ...] = ()) -> str:
    """``pairpilot ARGS`` in a process, as a user runs it; its output (it must exit 0 or 1)."""
    path = os.pathsep.join(str(p) for p in (ROOT, *pythonpath))
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONPATH": path},
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    return done.stdout


def status(listing: str, name: str) -> str:
    (line,) = [line for line in listing.splitlines() if line.startswith(f"{name} ")]
    return line.split("  check: ")[1]


def test_editing_a_helper_package_the_strategy_imports_voids_its_check(tmp_path: Path) -> None:
    """docs/strategies.md: a strategy file "may import installed packages, but not other files
    of the folder (put shared code in a package)". The package's code decides as much as the
    file's, yet only the file (and strategies/base.py) is hashed: the edit that makes the
    strategy peek leaves the stored pass standing."""
    library = tmp_path / "lib" / "review_lines"
    library.mkdir(parents=True)
    (library / "__init__.py").write_text(HELPER_CLEAN)
    (tmp_path / "user_strategies").mkdir()
    (tmp_path / "user_strategies" / "helper_trend.py").write_text(USING_HELPER)
    lib = (tmp_path / "lib",)

    checked = pairpilot(
        "strategy", "check", "helper_trend", "--data", str(SAMPLE), cwd=tmp_path, pythonpath=lib
    )
    assert "verdict: passed" in checked, checked

    (library / "__init__.py").write_text(HELPER_PEEKING)
    elsewhere = tmp_path / "elsewhere"  # its own database: this one's must stay as it was
    shutil.copytree(tmp_path / "user_strategies", elsewhere / "user_strategies")
    now = pairpilot(
        "strategy", "check", "helper_trend", "--data", str(SAMPLE), cwd=elsewhere, pythonpath=lib
    )
    assert "verdict: FAILED (look-ahead)" in now, "the edited helper peeks"
    listing = pairpilot("strategy", "list", cwd=tmp_path, pythonpath=lib)
    assert status(listing, "helper_trend") == "changed since its check", listing


def test_the_hash_names_the_code_loaded_not_the_file_on_disk_now(tmp_path: Path) -> None:
    """``source_hash`` reads the class's file (by ``sys.modules[cls.__module__]``) when asked.
    Loaded, then edited on disk (or loaded again: the newer module replaces it in
    sys.modules), the class already loaded hashes as the new file: a service that keeps a
    pair's code until restart, asked about that code, answers for code it is not running."""
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    file = folder / "edited_trend.py"
    file.write_text(TREND_PEEKING)
    try:
        running = load_strategies(folder, explicit=True).registry["edited_trend"]
        when_loaded = source_hash(running)

        file.write_text(TREND)
        edited = load_strategies(folder, explicit=True).registry["edited_trend"]
        assert source_hash(edited) != when_loaded
        assert source_hash(running) == when_loaded, "the peeking class hashes as the clean file"
    finally:
        sys.modules.pop("pairpilot_user_strategies.edited_trend", None)


def test_a_file_saved_while_its_check_runs_is_not_what_the_pass_is_stored_for(
    tmp_path: Path,
) -> None:
    """The check runs the code it loaded, then hashes the file as it is on disk after the
    run: an edit saved during the check (here: the peeking version, saved at the check's first
    run) is stored as passed without ever being run. The next check of it fails."""
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    (folder / "edited_trend.py").write_text(TREND_SAVED_DURING_CHECK)

    first = pairpilot("strategy", "check", "edited_trend", "--data", str(SAMPLE), cwd=tmp_path)
    assert (folder / "edited_trend.py").read_text() == TREND_PEEKING
    listing = pairpilot("strategy", "list", cwd=tmp_path)
    assert status(listing, "edited_trend") == "changed since its check", (first, listing)


def test_a_class_claiming_the_interface_module_does_not_hash_as_the_interface() -> None:
    """``source_hash`` stops at the first class of the MRO whose ``__module__`` is
    strategies.base, after hashing that module. The folder loader refuses a class whose
    ``__module__`` is not its file's, but the entry-point loader takes any Strategy subclass:
    one that claims ``__module__ = "strategies.base"`` hashes as base.py alone, so every
    version of its package, peeking or not, shares one hash and one stored pass."""
    honest = type("Honest", (PlainCross,), {"__module__": "strategies.base"})
    peeking = type("Peeking", (NextClose,), {"__module__": "strategies.base"})
    assert source_hash(honest) != source_hash(peeking)
