"""Live, with its paper twin: a user strategy failing while its pair holds a position pauses the
pair, alerts once, leaves its stop resting on the venue and is not asked again, by live or twin,
until /resume. The live stack (ccxt on the Binance fake, SQLite, the twin's own database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from bot.app.strategy_loading import load_strategies
from bot.core.domain import RunState, to_ms
from storage.alerts import SqliteAlertRepository
from storage.db import open_database
from strategies.registry import install
from tests.integration.test_strategy_isolation import STRATEGIES, flaky
from tests.rigs.live_rig import PAIR, funded_fake, live_stack

START = datetime(2025, 6, 27, 0, 30, tzinfo=UTC)
HOUR = timedelta(hours=1)


def close(hour: int) -> datetime:
    """Just after the close of the candle that opened at ``hour`` o'clock on the first day."""
    return datetime(2025, 6, 27, hour + 1, 0, 5, tzinfo=UTC)


async def test_live_a_failing_strategy_pauses_its_pair_and_its_stop_rests_on(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    (folder / "mine.py").write_text(STRATEGIES, encoding="utf-8")
    install(load_strategies(folder, explicit=True).registry)
    cls = flaky()
    async with live_stack(
        tmp_path,
        funded_fake(btc_candles),
        START,
        {"stop_loss": 0.05},
        strategy="flaky",
        drift={"threshold": 0.01},
    ) as (trading, market, _):
        twin = trading.service.twin
        assert twin is not None
        market.at(close(0))  # the 00:00 candle is a 6th hour: both enter
        await trading.service.tick("1h")
        assert trading.engine.portfolio.position(PAIR) is not None
        assert twin.engine.portfolio.position(PAIR) is not None
        assert await trading.engine.resting_stop(PAIR) is not None

        cls.fail_at = to_ms(datetime(2025, 6, 27, 1, tzinfo=UTC))  # the 01:00 candle on: it raises
        market.at(close(1))
        await trading.service.tick("1h")  # the service goes on (the tick returns)
        run = trading.service.run_for(PAIR)
        assert run is not None
        assert run.state is RunState.PAUSED
        calls = cls.calls
        for hour in range(2, 8):  # its exit signal (the 03:00 candle) is not asked for
            market.at(close(hour))
            await trading.service.tick("1h")
        assert cls.calls == calls
        assert trading.engine.portfolio.position(PAIR) is not None  # no exit signal
        assert await trading.engine.resting_stop(PAIR) is not None  # still protected
        assert twin.engine.portfolio.position(PAIR) is not None  # the twin held alike

        cls.fail_at = None  # fixed
        await trading.control.resume(PAIR)
        for hour in range(8, 11):  # the 09:00 candle exits
            market.at(close(hour))
            await trading.service.tick("1h")
        assert cls.calls > calls
        assert trading.engine.portfolio.position(PAIR) is None
        assert await trading.engine.resting_stop(PAIR) is None
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        alerts = await SqliteAlertRepository(db).pending(1000)
    (failed,) = [a.text for a in alerts if a.kind == "strategy_failed"]
    assert failed.startswith(f"{PAIR} paused: its strategy flaky failed: ValueError: boom\n")
