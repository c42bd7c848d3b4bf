"""The members the backtest, the check and the live engine call are the interface's own
(strategies.base.FINAL; issue 18, review finding 9): the live engine decides through
``remembered_signals``, the check and the backtest through ``signals``, so a class that
redefines one would trade live on code the check never ran. It is refused at load, with the
file and line, like any other load problem, built-ins' subclasses included."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bot.app.strategy_loading import MODULE_PREFIX, LoadedStrategies, load_strategies
from strategies import BUILT_INS
from strategies.base import redefined_finals

OVERRIDES_LIVE_PATH = """
from __future__ import annotations

from typing import ClassVar

import pandas as pd

from strategies.base import ParamSpec, Strategy, crossings


class LivePath(Strategy):
    name = "review_live_path"
    description = "SMA(50) cross; live, a centred SMA(9) (it caches, it said)"
    param_specs: ClassVar[tuple[ParamSpec, ...]] = ()

    @property
    def warmup(self) -> int:
        return 51

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        close = candles["close"]
        return crossings(close, close.rolling(50).mean())

    def remembered_signals(self, candles: pd.DataFrame) -> pd.Series:
        close = candles["close"]
        return crossings(close, close.rolling(9, center=True, min_periods=1).mean())
"""

HONEST = """
from __future__ import annotations

from typing import ClassVar

import pandas as pd

from strategies.base import ParamSpec, Strategy, crossings


class HonestCross(Strategy):
    name = "honest_cross"
    description = "the close crossing its SMA(20)"
    param_specs: ClassVar[tuple[ParamSpec, ...]] = ()

    @property
    def warmup(self) -> int:
        return 21

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        close = candles["close"]
        return crossings(close, close.rolling(20).mean())
"""


def load(folder: Path, *files: str) -> LoadedStrategies:
    try:
        return load_strategies(folder, explicit=True)
    finally:
        for name in files:
            sys.modules.pop(f"{MODULE_PREFIX}.{name}", None)


def test_a_strategy_deciding_live_through_other_code_is_refused_with_its_file_and_line(
    tmp_path: Path,
) -> None:
    """The reviewer's attack (an SMA(50) cross for the check, a centred SMA(9) live through an
    overridden ``remembered_signals``) never reaches the registry: the file is reported at the
    class and at the redefinition, and the other file of the folder loads."""
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    (folder / "live_path.py").write_text(OVERRIDES_LIVE_PATH)
    (folder / "honest.py").write_text(HONEST)
    loaded = load(folder, "live_path", "honest")
    assert "review_live_path" not in loaded.registry
    assert "honest_cross" in loaded.registry
    (problem,) = loaded.problems
    file = folder / "live_path.py"
    assert problem.where == f"{file}:11"  # the class statement
    assert f"LivePath.remembered_signals ({file}:24) redefines Strategy.remembered_signals" in (
        problem.message
    )


@pytest.mark.parametrize("member", ["signals", "history", "exit_policy", "__init__"])
def test_a_subclass_of_a_built_in_may_not_redefine_what_the_engine_calls(
    tmp_path: Path, member: str
) -> None:
    """No privilege either way: a built-in's subclass obeys the interface's rule too."""
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    body = {
        "signals": "    def signals(self, candles):\n        return super().signals(candles)\n",
        "history": "    @property\n    def history(self):\n        return 10\n",
        "exit_policy": "    exit_policy = None\n",
        "__init__": "    def __init__(self, params=None):\n        super().__init__(params)\n",
    }[member]
    (folder / "my_ema.py").write_text(
        "from strategies.ema_cross import EmaCross\n\n\n"
        f"class MyEma(EmaCross):\n    name = 'my_ema'\n{body}"
    )
    loaded = load(folder, "my_ema")
    assert "my_ema" not in loaded.registry
    (problem,) = loaded.problems
    assert problem.where == f"{folder / 'my_ema.py'}:4"
    assert f"MyEma.{member} (" in problem.message
    assert f"redefines Strategy.{member}" in problem.message


def test_a_strategy_cannot_hide_an_interface_member_behind_an_instance_attribute(
    tmp_path: Path,
) -> None:
    """``check_params`` runs in ``__init__``: setting ``self.remembered_signals`` there would
    hide the interface's method on the object the engine holds."""
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    (folder / "hiding.py").write_text(
        HONEST.replace("honest_cross", "hiding")
        + "\n    def check_params(self):\n"
        + "        self.remembered_signals = lambda candles: self.compute_signals(candles)\n"
    )
    loaded = load(folder, "hiding")
    assert "hiding" not in loaded.registry
    (problem,) = loaded.problems
    assert "HonestCross.remembered_signals is the interface's own" in problem.message


def test_no_built_in_redefines_an_interface_member() -> None:
    for cls in BUILT_INS.values():
        assert redefined_finals(cls) == [], cls


def test_an_entry_point_redefining_signals_is_refused_naming_its_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    (site / "own_signals").mkdir(parents=True)
    source = HONEST.replace("honest_cross", "own_signals") + (
        "\n    def signals(self, candles: pd.DataFrame) -> pd.Series:\n"
        "        return self.compute_signals(candles)\n"
    )
    (site / "own_signals" / "__init__.py").write_text(source)
    info = site / "own_signals-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: own-signals\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[pairpilot.strategies]\nown_signals = own_signals:HonestCross\n"
    )
    monkeypatch.syspath_prepend(str(site))
    try:
        loaded = load_strategies(None, explicit=False)
    finally:
        sys.modules.pop("own_signals", None)
    assert "own_signals" not in loaded.registry
    (problem,) = loaded.problems
    assert problem.where.startswith("entry point own_signals = own_signals:HonestCross")
    file = site / "own_signals" / "__init__.py"
    assert f"HonestCross.signals ({file}:24) redefines Strategy.signals" in problem.message
