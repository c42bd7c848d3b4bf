"""A strategy's source hash names the code loaded (issue 18; review findings 4, 5 and 11): the
hash a stored check is kept under, that the live gate compares and a receipt's rerun checks. It
covers the helper modules a strategy imports, it is taken from the bytes the loader compiled
(not the file on disk when asked), and a class cannot borrow another module's hash.

Real files in tmp folders through the real loader; `pairpilot` in a process where a user's
session is the point, with a real SQLite database.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

import pytest

from bot.app.strategy_loading import MODULE_PREFIX, load_strategies
from bot.research.receipts import source_hash
from bot.research.strategy_source import covered
from strategies.registry import StrategyRegistry
from tests.integration.test_user_strategies import pairpilot
from tests.review_check_fixtures import PlainCross
from tests.rigs.sample_head import sample_head
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


def output(*args: str, cwd: Path, lib: Path | None = None) -> str:
    """``pairpilot ARGS`` in a process, as a user runs it, with ``lib`` on its path; its output
    (it must exit 0 or 1)."""
    done = pairpilot(*args, cwd=cwd, path=lib)
    assert done.returncode in (0, 1), done.stderr
    return done.stdout


def user_folder(cwd: Path, files: dict[str, str]) -> Path:
    """``cwd``/user_strategies holding ``files`` (name: source), the folder the loader reads."""
    folder = cwd / "user_strategies"
    folder.mkdir()
    for name, source in files.items():
        (folder / name).write_text(source)
    return folder


def distribution(
    site: Path, package: str, modules: dict[str, str], version: str, entry_point: str = ""
) -> Path:
    """``site`` holding ``package`` (``modules``: file name, source) and its dist-info as pip
    leaves them; ``entry_point``: its ``pairpilot.strategies`` line, if any. The package."""
    (site / package).mkdir(parents=True)
    for name, source in modules.items():
        (site / package / name).write_text(source)
    info = site / f"{package}-{version}.dist-info"
    info.mkdir()
    name = package.replace("_", "-")
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    if entry_point:
        (info / "entry_points.txt").write_text(f"[pairpilot.strategies]\n{entry_point}\n")
    return site / package


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
    user_folder(tmp_path, {"helper_trend.py": USING_HELPER})
    lib = tmp_path / "lib"
    head = str(sample_head(tmp_path / "candles"))

    checked = output("strategy", "check", "helper_trend", "--data", head, cwd=tmp_path, lib=lib)
    assert "verdict: passed" in checked, checked
    listing = output("strategy", "list", cwd=tmp_path, lib=lib)
    assert status(listing, "helper_trend").startswith("passed "), listing  # another process

    (library / "__init__.py").write_text(HELPER_PEEKING)
    elsewhere = tmp_path / "elsewhere"  # its own database: this one's must stay as it was
    shutil.copytree(tmp_path / "user_strategies", elsewhere / "user_strategies")
    now = output("strategy", "check", "helper_trend", "--data", head, cwd=elsewhere, lib=lib)
    assert "verdict: FAILED (look-ahead)" in now, "the edited helper peeks"
    listing = output("strategy", "list", cwd=tmp_path, lib=lib)
    assert status(listing, "helper_trend") == "changed since its check", listing


def test_the_hash_names_the_code_loaded_not_the_file_on_disk_now(tmp_path: Path) -> None:
    """``source_hash`` reads the class's file (by ``sys.modules[cls.__module__]``) when asked.
    Loaded, then edited on disk (or loaded again: the newer module replaces it in
    sys.modules), the class already loaded hashes as the new file: a service that keeps a
    pair's code until restart, asked about that code, answers for code it is not running."""
    folder = user_folder(tmp_path, {"edited_trend.py": TREND_PEEKING})
    file = folder / "edited_trend.py"
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
    folder = user_folder(tmp_path, {"edited_trend.py": TREND_SAVED_DURING_CHECK})
    head = str(sample_head(tmp_path / "candles"))

    first = output("strategy", "check", "edited_trend", "--data", head, cwd=tmp_path)
    assert (folder / "edited_trend.py").read_text() == TREND_PEEKING
    listing = output("strategy", "list", cwd=tmp_path)
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


SHARED_INIT = """
from shared_lines.impl import smooth


def trend_line(close):
    return smooth(close, 10)
"""
SHARED_IMPL = """
def smooth(close, length):
    return close.rolling(length).mean()
"""
# two files using the helper package: one by a function, one by the module
BY_FUNCTION = USING_HELPER.replace("review_lines import", "shared_lines import")
BY_MODULE = (
    USING_HELPER.replace("from review_lines import trend_line", "import shared_lines")
    .replace("trend_line(candles", "shared_lines.trend_line(candles")
    .replace("helper_trend", "second_trend")
    .replace("class HelperTrend", "class SecondTrend")
)


def loaded_from(folder: Path | None, *modules: str) -> StrategyRegistry:
    """What the loader finds (in ``folder``: None, the entry points alone), then ``modules``
    forgotten, as a new process would not have them."""
    try:
        return load_strategies(folder, explicit=folder is not None).registry
    finally:
        for name in modules:
            sys.modules.pop(name, None)


def test_every_strategy_using_a_helper_package_covers_it_whichever_imported_it_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The helper and the module it imports count for both files, not only for the one whose
    import loaded them; the standard library and pairpilot's dependencies (pandas) do not."""
    lib = tmp_path / "lib"
    (lib / "shared_lines").mkdir(parents=True)
    (lib / "shared_lines" / "__init__.py").write_text(SHARED_INIT)
    (lib / "shared_lines" / "impl.py").write_text(SHARED_IMPL)
    folder = user_folder(tmp_path, {"a_first.py": BY_FUNCTION, "b_second.py": BY_MODULE})
    monkeypatch.syspath_prepend(str(lib))
    helpers = ("shared_lines", "shared_lines.impl")
    files = (f"{MODULE_PREFIX}.a_first", f"{MODULE_PREFIX}.b_second")
    registry = loaded_from(folder, *helpers, *files)
    assert covered(registry["helper_trend"]) == (files[0], *helpers, "strategies.base")
    assert covered(registry["second_trend"]) == (files[1], *helpers, "strategies.base")

    (lib / "shared_lines" / "impl.py").write_text(SHARED_IMPL.replace("rolling", "ewm"))
    edited = loaded_from(folder, *helpers, *files)
    for name in ("helper_trend", "second_trend"):
        assert source_hash(edited[name]) != source_hash(registry[name]), name


INSTALLED = "import pandas as pd\n\n\ndef trend_line(close):\n    return close.rolling(10).mean()\n"


def test_an_installed_distribution_pairpilot_does_not_depend_on_counts_by_name_and_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A third-party package installed beside pairpilot (not in its lock) is named by its
    distribution and version: its bytes are the installer's, not the trader's to edit."""
    site = tmp_path / "site-packages"
    package = distribution(site, "review_lines", {"__init__.py": INSTALLED}, "2.1")
    folder = user_folder(tmp_path, {"helper_trend.py": USING_HELPER})
    monkeypatch.syspath_prepend(str(site))
    modules = ("review_lines", f"{MODULE_PREFIX}.helper_trend")
    before = loaded_from(folder, *modules)["helper_trend"]
    assert "review_lines" in covered(before)
    (package / "__init__.py").write_text(INSTALLED + "# a comment\n")
    after = loaded_from(folder, *modules)["helper_trend"]
    assert source_hash(after) == source_hash(before)


CLAIMING = """
from tests.review_check_fixtures import PlainCross


class Claimer(PlainCross):
    __module__ = "strategies.base"
    name = "claimer"
"""


def test_a_class_claiming_another_module_is_refused_from_a_file_and_an_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    point = "claimer = claimer_pkg:Claimer"
    distribution(site, "claimer_pkg", {"__init__.py": CLAIMING}, "1.0", point)
    folder = user_folder(tmp_path, {"claiming.py": CLAIMING.replace('"claimer"', '"claiming"')})
    monkeypatch.syspath_prepend(str(site))
    try:
        loaded = load_strategies(folder, explicit=True)
    finally:
        sys.modules.pop("claimer_pkg", None)
        sys.modules.pop(f"{MODULE_PREFIX}.claiming", None)
    assert "claimer" not in loaded.registry
    assert "claiming" not in loaded.registry
    point, file = loaded.problems
    claims = "class Claimer claims __module__ = 'strategies.base', a module that does not define it"
    assert point.where.startswith("entry point claimer = claimer_pkg:Claimer (distribution")
    assert claims in point.message
    assert file.where == str(folder / "claiming.py")
    assert claims in file.message


PACKAGE_INIT = (
    USING_HELPER.replace("review_lines import", "packed_trend.lines import")
    .replace("helper_trend", "packed_trend")
    .replace("class HelperTrend", "class PackedTrend")
    .replace("a line from the user's helper package", "a line from its own package's module")
)


def test_an_entry_point_package_is_hashed_by_the_bytes_of_its_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A distribution of user strategies (pip install -e keeps its files editable, its version
    unchanged): each module of it the strategy uses counts by its bytes."""
    site = tmp_path / "site-packages"
    files = {"__init__.py": PACKAGE_INIT, "lines.py": INSTALLED}
    point = "packed_trend = packed_trend:PackedTrend"
    package = distribution(site, "packed_trend", files, "1.0", point)
    monkeypatch.syspath_prepend(str(site))
    modules = ("packed_trend", "packed_trend.lines")
    before = loaded_from(None, *modules)["packed_trend"]
    assert covered(before) == ("packed_trend", "packed_trend.lines", "strategies.base")
    (package / "lines.py").write_text(INSTALLED.replace("rolling", "ewm"))
    after = loaded_from(None, *modules)["packed_trend"]
    assert source_hash(after) != source_hash(before)


def test_a_distribution_imported_before_the_load_or_by_it_gives_one_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep's worker process imports a helper distribution (and what it imports in turn)
    while loading the strategy file; the service had it imported already: one hash."""
    site = tmp_path / "site-packages"
    files = {"__init__.py": "from review_lines.inner import *\n", "inner.py": INSTALLED}
    distribution(site, "review_lines", files, "2.1")
    folder = user_folder(tmp_path, {"helper_trend.py": USING_HELPER})
    monkeypatch.syspath_prepend(str(site))
    modules = ("review_lines", "review_lines.inner", f"{MODULE_PREFIX}.helper_trend")
    imported_by_the_load = loaded_from(folder, *modules)["helper_trend"]
    try:
        importlib.import_module("review_lines")
        imported_before = loaded_from(folder, *modules)["helper_trend"]
    finally:
        sys.modules.pop("review_lines", None)
    assert covered(imported_by_the_load) == covered(imported_before)
    assert source_hash(imported_by_the_load) == source_hash(imported_before)
