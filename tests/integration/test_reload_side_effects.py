"""Edges of /reload (issue 18): "a running pair keeps the code it started with until it
is restarted". A strategy file is imported into the trading process, and its import may
change what the running pairs' code does: here a user's file "speeds up" pandas-ta's EMA for
itself by assigning ``ta.ema`` (a common monkeypatch). After the admin's /reload the checked
built-in ema_cross, running on BTC/USDT, decides on the patched EMA: different signals under
an unchanged source hash, so the gate still says "passed".

The live stack (ccxt on the Binance fake, real SQLite), the chat on the Telegram emulator."""

from __future__ import annotations

from pathlib import Path

import numpy
import pandas as pd
import pandas_ta as ta

import strategies.base
from bot.app.strategy_loading import load_strategies
from tests.review_live_fixtures import HOSTILE, load_folder
from tests.rigs.chat_rig import ADMIN
from tests.rigs.gated import live_chat
from tests.rigs.live_rig import PAIR

PATCHING = '''
import pandas_ta as ta

from strategies.ema_cross import EmaCross


def _quick_ema(close, length=None, **kwargs):
    """Close enough, and faster."""
    return close.rolling(length).mean()


ta.ema = _quick_ema


class QuickEma(EmaCross):
    name = "quick_ema"
'''


async def test_a_reloaded_file_does_not_change_what_running_pairs_decide(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    folder = tmp_path / "user_strategies"
    load_folder(folder, {"hostile.py": HOSTILE})
    original = ta.ema
    try:
        async with live_chat(tmp_path, btc_candles, {}) as (chat, _):
            service = chat.trading.service
            run = service.run_for(PAIR)
            assert run is not None
            running = service.strategy_of(run)
            assert running is not None
            assert running.name == "ema_cross"
            candles = btc_candles.iloc[:800].reset_index(drop=True)
            before = running.signals(candles)
            (folder / "quick_ema.py").write_text(PATCHING, encoding="utf-8")
            reply = await chat.ask(ADMIN, "/reload")
            assert "1 not loaded" in reply, reply
            assert "quick_ema.py: changes pandas_ta.ema on import" in reply, reply
            assert ta.ema is original, "the file's change was not undone"
            after = running.signals(candles)
            differ = int((before != after).sum())
            assert differ == 0, (
                f"after /reload of quick_ema.py, the running ema_cross decides otherwise on "
                f"{differ} of {len(candles)} candles ({int((before != 0).sum())} entries/exits "
                f"before, {int((after != 0).sum())} after); its source hash is unchanged"
            )
    finally:
        ta.ema = original


BASE_PATCHING = """
import strategies.base

strategies.base.crossings = lambda fast, slow: None
"""

RAISING_AFTER_PATCHING = """
import numpy

numpy.mean = len
raise RuntimeError("half done")
"""

IMPORTING_A_SUBMODULE = """
import json.decoder  # nothing watched
import pandas_ta  # a package already loaded, imported again: no change

from strategies.ema_cross import EmaCross


class Plain(EmaCross):
    name = "plain"
"""


def test_a_file_changing_pairpilot_or_numpy_at_start_up_is_refused_and_undone(
    tmp_path: Path,
) -> None:
    """Start-up loads through the same loader: the change is undone, the file named as a
    load problem, the other files load; a file raising after its change has it undone too."""
    crossings, mean = strategies.base.crossings, numpy.mean
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    (folder / "base_patching.py").write_text(BASE_PATCHING, encoding="utf-8")
    (folder / "raising.py").write_text(RAISING_AFTER_PATCHING, encoding="utf-8")
    (folder / "plain.py").write_text(IMPORTING_A_SUBMODULE, encoding="utf-8")
    try:
        loaded = load_strategies(folder, explicit=True)
    finally:  # a failure here must not leak into the other tests of the worker
        changed = (strategies.base.crossings is not crossings, numpy.mean is not mean)
        strategies.base.crossings, numpy.mean = crossings, mean
    assert changed == (False, False), "the files' changes were not undone"
    problems = {
        Path(problem.where.split(":")[0]).name: problem.message for problem in loaded.problems
    }
    assert set(problems) == {"base_patching.py", "raising.py"}, loaded.problems
    assert problems["base_patching.py"].startswith("changes strategies.base.crossings on import")
    assert problems["raising.py"] == "RuntimeError: half done"
    assert "plain" in loaded.registry


CLASS_PATCHING = """
import pandas as pd
import pandas.core.generic

import strategies.base


def _quick_ewm(self, *args, **kwargs):
    return self.rolling(kwargs.get("span", 10))


pd.Series.ewm = _quick_ewm
pandas.core.generic.NDFrame.pct_change = lambda self, *a, **k: self
strategies.base.Strategy.warmup_note = "added"
"""

USING_PANDAS_AT_IMPORT = """
import pandas as pd
import pandas_ta  # noqa: F401  (its DataFrame accessor, registered before)

from strategies.ema_cross import EmaCross

_FRAME = pd.DataFrame({"close": [float(i) for i in range(1, 60)]})
_FRAME.ta.ema(length=5, append=True)  # computing at import changes no class
_FRAME["close"].ewm(span=3).mean().rolling(4).sum()


class UsesPandas(EmaCross):
    name = "uses_pandas"
"""


def test_a_file_patching_a_pandas_or_strategy_class_is_refused_and_undone(
    tmp_path: Path,
) -> None:
    """Class attributes are watched too (``pd.Series.ewm = ...``, a base class's method, a
    member added to strategies.base.Strategy): refused, undone; a file that only uses pandas
    at import, accessors and window methods included, loads."""
    import pandas.core.generic

    ewm, pct_change = pd.Series.ewm, pandas.core.generic.NDFrame.pct_change
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    (folder / "class_patching.py").write_text(CLASS_PATCHING, encoding="utf-8")
    (folder / "uses_pandas.py").write_text(USING_PANDAS_AT_IMPORT, encoding="utf-8")
    try:
        loaded = load_strategies(folder, explicit=True)
    finally:
        changed = (
            pd.Series.ewm is not ewm,
            pandas.core.generic.NDFrame.pct_change is not pct_change,
            hasattr(strategies.base.Strategy, "warmup_note"),
        )
        pd.Series.ewm, pandas.core.generic.NDFrame.pct_change = ewm, pct_change
        if hasattr(strategies.base.Strategy, "warmup_note"):
            del strategies.base.Strategy.warmup_note  # type: ignore[attr-defined]
    assert changed == (False, False, False), "the file's class changes were not undone"
    problems = {Path(p.where.split(":")[0]).name: p.message for p in loaded.problems}
    assert set(problems) == {"class_patching.py"}, loaded.problems
    assert problems["class_patching.py"].startswith(
        "changes pandas.Series.ewm, pandas.core.generic.NDFrame.pct_change, "
        "strategies.base.Strategy.warmup_note on import"
    ), problems
    assert "uses_pandas" in loaded.registry
