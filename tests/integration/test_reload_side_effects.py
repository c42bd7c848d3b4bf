"""Hostile review of /reload (issue 18): "a running pair keeps the code it started with until it
is restarted". A strategy file is imported into the trading process, and its import may
change what the running pairs' code does: here a user's file "speeds up" pandas-ta's EMA for
itself by assigning ``ta.ema`` (a common monkeypatch). After the admin's /reload the checked
built-in ema_cross, running on BTC/USDT, decides on the patched EMA: different signals under
an unchanged source hash, so the gate still says "passed".

The live stack (ccxt on the Binance fake, real SQLite), the chat on the Telegram emulator."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pandas_ta as ta

from tests.integration.test_review_live_gate import live_chat
from tests.review_live_fixtures import HOSTILE, load_folder
from tests.rigs.chat_rig import ADMIN
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


async def test_review_a_reloaded_file_does_not_change_what_running_pairs_decide(
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
            assert "1 new" in await chat.ask(ADMIN, "/reload")
            after = running.signals(candles)
            differ = int((before != after).sum())
            assert differ == 0, (
                f"after /reload of quick_ema.py, the running ema_cross decides otherwise on "
                f"{differ} of {len(candles)} candles ({int((before != 0).sum())} entries/exits "
                f"before, {int((after != 0).sum())} after); its source hash is unchanged"
            )
    finally:
        ta.ema = original
