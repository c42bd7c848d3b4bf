"""Found by the review of the tick (session 24): on an exchange, a faulted pair's ticks
shrink its candle cache, and the strategy resumed is handed that stub for many closes.

A faulted (or held) pair is fetched ``engine.history(0)`` candles (one, with the default
risk limits: bot/trading/engine.py), and the exchange's candle source keeps, per pair, only
the last ``limit`` candles it was asked for (bot/market/live_source.py ``closed_candles``:
``joined.iloc[-limit:]``), fetching only what is newer next time. After /resume the tick asks
for the strategy's ``history`` again, but the source fetches nothing older: the strategy is
handed 2, 3, 4 ... candles, one more per close, until its window refills. All that time the
warm-up rule holds it at HOLD (an ENTER or EXIT the backtest takes is not taken; ema_cross's
history is hundreds of candles: days on 1h), then its EMAs are seeded from a truncated window
(not the backtest's). Not new with the restructure, but in the tick's candle path it reads.

The live stack: ccxt against the Binance fake (tests/doubles), real SQLite."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from bot.core.domain import to_ms
from bot.core.errors import StrategyFailed
from strategies import build_strategy
from tests.integration.test_chat_allow import MINE, confirmed
from tests.integration.test_drift import FIRST_TICK
from tests.integration.test_drift import START as DRIFT_START
from tests.rigs.gated import START, held, live_chat, user_strategies
from tests.rigs.live_rig import PAIR, funded_fake, live_stack

HOUR = timedelta(hours=1)


def closed_by(candles: pd.DataFrame, moment: datetime) -> int:
    """The candles of the fake's data closed by ``moment``: all a window can hold then."""
    return int((candles["timestamp"] + 3_600_000 <= to_ms(moment)).sum())


async def handed_at_next_close(service: Any, market: Any, moment: datetime, pair: str) -> list[int]:
    """How many candles the exchange's candle source handed for ``pair`` in a tick at
    ``moment`` (the tick's own reads of it)."""
    source: Any = service._source  # the exchange's candle source, as the tick reads it
    fetch, handed = source.closed_candles, []

    async def counted(asked: str, *args: Any, **kwargs: Any) -> pd.DataFrame:
        frame = await fetch(asked, *args, **kwargs)
        if asked == pair:
            handed.append(len(frame))
        return frame

    source.closed_candles = counted
    market.at(moment)
    await service.tick("1h")
    assert handed, "not ticked"
    return handed


async def test_a_resumed_pair_is_handed_its_whole_history_on_an_exchange(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    async with live_stack(tmp_path, fake, DRIFT_START) as (trading, market, _):
        service = trading.service
        moment = FIRST_TICK
        for _ in range(3):  # trading normally: the source holds the strategy's window
            market.at(moment)
            await service.tick("1h")
            moment += HOUR
        run = service.run_for(PAIR)
        assert run is not None
        strategy = service.strategy_of(run)
        assert strategy is not None
        wanted = trading.engine.history(strategy.history)
        paused = await service.faults.fault(  # as a tick faults a failing strategy
            run, StrategyFailed(run.strategy, PAIR, "ValueError: boom")
        )
        service.put_run(paused)
        for _ in range(3):  # faulted: its stops checked on the few candles they need
            market.at(moment)
            await service.tick("1h")
            moment += HOUR
        await trading.control.resume(PAIR)
        handed = await handed_at_next_close(service, market, moment, PAIR)
        assert handed[-1] == min(wanted, closed_by(btc_candles, moment)), (
            f"resumed, its strategy (history {strategy.history}) was handed {handed[-1]} "
            f"candle(s) of the {wanted} the tick asked for"
        )


async def test_a_held_pair_allowed_is_handed_its_whole_history_on_an_exchange(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    """The same through the live gate: a run held at start-up (its strategy unchecked) is
    primed and ticked as a quiet pair, on one candle; /allow starts it, and its first close
    hands its strategy (an ema_cross of the user's) the stub the quiet ticks left."""
    with user_strategies(tmp_path / "user_strategies"):
        async with live_chat(tmp_path, btc_candles, MINE) as (chat, market):
            service = chat.trading.service
            assert held(service)
            moment = START.replace(minute=0, second=5) + HOUR
            for _ in range(2):  # held: ticked quietly
                market.at(moment)
                await service.tick("1h")
                moment += HOUR
            await confirmed(chat, "/allow mine")
            assert held(service) == {}
            run = service.run_for("ETH/USDT")
            assert run is not None
            strategy = service.strategy_of(run)
            assert strategy is not None
            wanted = chat.trading.engine.history(strategy.history)
            handed = await handed_at_next_close(service, market, moment, "ETH/USDT")
            assert handed[-1] == min(wanted, closed_by(btc_candles, moment)), (
                f"allowed, its strategy (history {strategy.history}) was handed {handed[-1]} "
                f"candle(s) of the {wanted} the tick asked for"
            )


async def test_a_resumed_pair_decides_as_the_backtest_for_three_days_after(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    """What the stub costs: the 72 closes after a /resume on an exchange, each decision of
    the resumed ema_cross compared with its decision on the candle's whole history (what the
    backtest and a never-faulted pair decide)."""
    fake = funded_fake(btc_candles)
    async with live_stack(tmp_path, fake, DRIFT_START) as (trading, market, _):
        service = trading.service
        moment = FIRST_TICK
        market.at(moment)
        await service.tick("1h")
        moment += HOUR
        run = service.run_for(PAIR)
        assert run is not None
        paused = await service.faults.fault(
            run, StrategyFailed(run.strategy, PAIR, "ValueError: boom")
        )
        service.put_run(paused)
        for _ in range(2):
            market.at(moment)
            await service.tick("1h")
            moment += HOUR
        await trading.control.resume(PAIR)
        source: Any = service._source
        fetch, handed = source.closed_candles, []

        async def kept(*args: Any, **kwargs: Any) -> pd.DataFrame:
            frame = await fetch(*args, **kwargs)
            handed.append(frame.copy())
            return frame

        source.closed_candles = kept
        for _ in range(72):
            market.at(moment)
            await service.tick("1h")
            moment += HOUR
        judge = build_strategy("ema_cross", {})
        names = {1: "ENTER", -1: "EXIT", 0: "HOLD"}
        differ = []
        for frame in handed:
            last = int(frame["timestamp"].iloc[-1])
            whole = btc_candles[btc_candles["timestamp"] <= last].iloc[-judge.history :]
            live = int(judge.signals(frame.reset_index(drop=True)).iloc[-1])
            backtest = int(judge.signals(whole.reset_index(drop=True)).iloc[-1])
            if live != backtest:
                opened = pd.Timestamp(last, unit="ms", tz="UTC")
                differ.append(f"{opened:%m-%d %H:%M} {names[backtest]}->{names[live]}")
        assert differ == [], (
            f"{len(differ)} of {len(handed)} decisions after the /resume differ from the "
            f"backtest's (backtest->live): {differ}"
        )
