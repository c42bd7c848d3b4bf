"""A user strategy (tests/strategy_fixtures.py's ``UserTrend``) loaded as a trader loads one:
from a strategies folder, and from an installed package's ``pairpilot.strategies`` entry point
(a real dist-info on sys.path read by the real importlib.metadata), both through
bot/app/strategy_loading.py's ``load_strategies``. The parity and research tests run what this
loads, never the fixture class itself."""

from __future__ import annotations

import sys
from pathlib import Path

from bot.app.strategy_loading import LoadedStrategies, load_strategies
from tests.strategy_fixtures import UserTrend, user_strategy_source

NAME = UserTrend.name
PACKAGE = "pp_user_trend"  # the installed package's module
LOADS = ("folder", "entry point")


def write_folder(folder: Path) -> Path:
    """``folder`` holding the user strategy's file, as `pairpilot strategy new` leaves one."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{NAME}.py").write_text(user_strategy_source(), encoding="utf-8")
    return folder


def install_package(site: Path) -> Path:
    """``site`` holding the package and its dist-info, as pip would leave them."""
    (site / PACKAGE).mkdir(parents=True)
    (site / PACKAGE / "__init__.py").write_text(user_strategy_source(), encoding="utf-8")
    info = site / f"{PACKAGE}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {PACKAGE.replace('_', '-')}\nVersion: 1.0\n",
        encoding="utf-8",
    )
    (info / "entry_points.txt").write_text(
        f"[pairpilot.strategies]\n{NAME} = {PACKAGE}:{UserTrend.__name__}\n", encoding="utf-8"
    )
    return site


def load_user(how: str, root: Path) -> LoadedStrategies:
    """The built-ins and the user strategy loaded ``how`` ("folder", "entry point"); files go
    under ``root``. For an entry point the package stays imported (``sys.modules``) so that
    its source hash can be read; ``forget`` drops it."""
    if how == "folder":
        loaded = load_strategies(write_folder(root / "user_strategies"), explicit=True)
        expected = "file"
    else:
        site = install_package(root / "site")
        sys.path.insert(0, str(site))
        try:
            loaded = load_strategies(None, explicit=False)
        finally:
            sys.path.remove(str(site))
        expected = "entry point"
    assert not loaded.problems, loaded.problems
    assert loaded.registry.origin(NAME).kind == expected
    assert loaded.registry[NAME] is not UserTrend  # the loaded copy, not the fixture
    return loaded


def forget() -> None:
    """Drop the imported user modules, so a later load imports them afresh."""
    sys.modules.pop(PACKAGE, None)
    sys.modules.pop(f"pairpilot_user_strategies.{NAME}", None)
