"""Short versions of the soaks in bench/: the same code, fewer ticks, every invariant checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bot.alerts.outbox import AlertDispatcher
from bot.app.config import Settings
from tests.doubles.exchange_chaos import KINDS, run_fault_soak
from tests.rigs.chat_rig import USERS, chat_stack
from tests.soaks.crash_soak import run_crash_soak

OUTAGE_AT = 59  # minutes into the replay: EMA 3/7 trades 4 times in the next 10


async def test_exchange_fault_soak_keeps_the_books_equal_to_the_exchange(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    # On the realistic fake: every order in two trades, fees taken in the coin received
    # (Binance's defaults). Seed 6 meets every class of fault in 400 ticks, partial fills too.
    report = await run_fault_soak(
        tmp_path, btc_candles, ticks=400, rate=0.2, seed=6, split=(0.4, 0.6), fee_asset="received"
    )
    print(report)
    assert report.problems == []  # a position unprotected for one tick unexplained included
    assert set(report.injected) == set(KINDS)  # every class of fault was met
    assert report.faults >= 0.15 * report.requests
    assert report.exchange_trades >= 2 * 10  # every order in two trades
    # The right alerts: each refusal once; dust (what the fees in the coin leave) said once;
    # an outage when it starts and when it ends.
    assert report.alerts.get("order_rejected", 0) == report.injected["rejected"]
    assert report.alerts.get("dust", 0) == 1
    assert report.alerts.get("exchange_error", 0) % 2 == 0


async def test_crash_soak_loses_nothing_and_never_orders_twice(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    """On Binance's defaults (each order filled in two trades, fees from the coin bought); the
    other venues' fakes: test_venue_soaks. Each kill comes 15 to 21 ticks after a restart (the
    service's ticks, however slow the machine): the first after the service's first buy (its
    7th tick), so a restart finds a position and its stop; the second after its first sell
    (28th) and next buy (34th); the third 15 to 21 ticks later
    (`python -m bench.crash_soak`: 200 kills)."""
    report = await run_crash_soak(
        tmp_path,
        btc_candles,
        kills=3,
        seed=3,
        split=(0.4, 0.6),
        fee_asset="received",
        dwell=(15.0, 21.0),
    )
    print(report)
    assert report.violations == []
    assert report.kills == 3
    assert report.exchange_orders >= 2  # it traded between the kills
    assert report.alerts_delivered >= 1


async def test_a_telegram_outage_holds_alerts_back_but_never_trading_nor_their_order(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    """The Bot API unreachable for 10 simulated minutes while trades happen. Real prices, one
    candle a minute (the bundled hourly candles relabelled), so trades fall inside the outage."""
    minutes = btc_candles.assign(
        timestamp=btc_candles["timestamp"].iloc[0] + 60_000 * np.arange(len(btc_candles))
    )
    path = tmp_path / "BTC_USDT-1m.csv"
    minutes.to_csv(path, index=False)
    config = Settings.model_validate(
        {
            "data_dir": tmp_path,
            "risk": {"max_position_fraction": 1.0},
            "market_data": {"source": "replay", "replay_files": {"BTC/USDT": path}},
            "pairs": [
                {
                    "pair": "BTC/USDT",
                    "timeframe": "1m",
                    "capital_share": 1.0,
                    "params": {"fast": 3, "slow": 7},
                }
            ],
        }
    )
    async with chat_stack(tmp_path, config) as chat:
        trading, emulator = chat.trading, chat.emulator
        dispatcher = AlertDispatcher(chat.alerts, chat.frontend.sink, trading.clock)
        for _ in range(OUTAGE_AT):
            await trading.driver.step()
            await dispatcher.drain()
        seen = {user: len(emulator.to(user)) for user in USERS}
        emulator.is_down = True
        for minute in range(10):
            await trading.driver.step()
            if minute == 6:  # the risk manager halts meanwhile: the most urgent alert
                await trading.engine.guard.halt("drawdown 15% from the peak", trading.clock.now())
            assert await dispatcher.drain() == 0  # queued, not lost; trading did not wait
        held = await chat.alerts.pending()  # most urgent first, oldest first within a priority
        assert held[0].kind == "risk_halt"
        assert sum(alert.kind == "trade" for alert in held) >= 2  # trading went on
        emulator.is_down = False
        while await dispatcher.drain():
            pass
        assert await chat.alerts.pending() == []
        for user in USERS:
            got = [message.text for message in emulator.to(user)[seen[user] :]]
            assert [
                text.split(") ", 1)[1] if text.startswith("(late by") else text for text in got
            ] == [alert.text for alert in held]  # order; none twice
            assert got[0].startswith("(late by 3 min) Trading halted")
