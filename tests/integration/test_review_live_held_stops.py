"""Hostile review of held runs (issue 18's gate) on a venue where no stop rests on the
exchange (Coinbase: stops are checked per candle by pairpilot). A run the gate holds is not
ticked: its position's stop-loss is then checked by nobody. It happens to every open position
of an upgraded deployment (held until its strategy is checked) and after any edit of a
strategy file followed by a restart. A faulted run, by contrast, is ticked without its
strategy and keeps its stops (bot/trading/faults.py): the same should hold for a held one.

The live stack (ccxt on the Coinbase fake, real SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from bot.core.domain import to_ms
from storage.db import open_database
from tests.review_live_fixtures import load_folder
from tests.rigs.checked import record_check
from tests.rigs.gated import START, held, persisted_runs
from tests.rigs.live_rig import HOUR, PAIR, funded_fake, live_stack

STOP = 0.02
GUARDED = f"""
from typing import ClassVar

from strategies.ema_cross import EmaCross


class Guarded(EmaCross):
    name = "guarded"
    exit_defaults: ClassVar[dict[str, float]] = {{"stop_loss": {STOP}}}
"""


async def test_review_a_held_run_s_stop_loss_still_sells_on_a_venue_without_resting_stops(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    folder = tmp_path / "user_strategies"
    load_folder(folder, {"guarded.py": GUARDED})
    await persisted_runs(tmp_path, {PAIR: "guarded"})
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        await record_check(db, "guarded")
    fake = funded_fake(btc_candles, "coinbase")
    moment = START.replace(minute=0, second=5) + HOUR
    async with live_stack(tmp_path, fake, START, venue="coinbase") as (trading, market, _):
        assert not trading.engine.exchange.supports_stop_orders
        while trading.engine.portfolio.position(PAIR) is None:
            assert moment < datetime(2025, 7, 20, tzinfo=UTC), "guarded never entered"
            market.at(moment)
            await trading.service.tick("1h")
            moment += HOUR
        position = trading.engine.portfolio.position(PAIR)
        assert position is not None
        stop = position.average_price * (1 - STOP)
    source = folder / "guarded.py"
    source.write_text(source.read_text() + "\n# a comment, after its check\n")
    lows = btc_candles.set_index("timestamp")["low"]
    async with live_stack(tmp_path, fake, moment, venue="coinbase") as (trading, market, _):
        assert PAIR in held(trading.service)
        assert trading.engine.portfolio.position(PAIR) is not None
        breached = None
        for _ in range(24 * 14):
            market.at(moment)
            await trading.service.tick("1h")
            opened = to_ms(moment.replace(second=0) - HOUR)  # the candle that just closed
            if breached is None and lows.get(opened, float("inf")) < stop:
                breached = moment
            moment += HOUR
            if breached is not None and moment - breached > 3 * HOUR:
                break
        assert breached is not None, "the price never fell through the stop: pick other data"
        left = trading.engine.portfolio.position(PAIR)
        assert left is None, (
            f"held since the restart, {PAIR} still holds {left.amount:.6f} BTC bought at "
            f"{left.average_price:.2f}: the price fell through its {STOP:.0%} stop "
            f"({stop:.2f}) at {breached:%Y-%m-%d %H:%M} and nothing sold"
        )
