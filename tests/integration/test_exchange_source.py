"""The service on exchange candles: closed candles only, fetched incrementally, gaps reported."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from bot.alerts.outbox import AlertOutbox, OnceAlerts
from bot.app.bootstrap import PaperAccount, build_paper_engine, strategy_faults
from bot.app.config import Settings
from bot.app.secret_values import Secrets
from bot.app.serve import run_service
from bot.core.clock import FakeClock
from bot.core.domain import RiskLimits, from_ms
from bot.core.errors import ConfigError
from bot.exchange.ccxt_exchange import CcxtExchange
from bot.market.live_source import ExchangeCandleSource
from bot.ops.scheduler import candle_close_trigger
from bot.trading.service import TradingService
from storage.alerts import SqliteAlertRepository
from storage.db import Database
from storage.equity import SqliteEquityRepository
from storage.fills import SqliteFillRepository
from storage.pair_runs import SqlitePairRunRepository
from storage.state import SqliteStateRepository
from tests.doubles.fake_exchange import FakeBinance, binance_urls, serve

PAIR = "BTC/USDT"
HOUR = timedelta(hours=1)


def open_time(candles: pd.DataFrame, index: int) -> datetime:
    return from_ms(int(candles["timestamp"].iloc[index]))


async def connected(base: str) -> CcxtExchange:
    exchange = CcxtExchange.create(
        "binance", {"urls": {"api": binance_urls(base)}}, attempts=2, backoff=0.01
    )
    await exchange.load_markets()
    return exchange


async def test_only_closed_candles_fetched_once_each_and_gaps_reported(
    btc_candles: pd.DataFrame,
) -> None:
    holed = pd.concat([btc_candles.iloc[:700], btc_candles.iloc[703:]], ignore_index=True)
    fake = FakeBinance(now_ms=0)
    fake.add_candles("BTCUSDT", "1h", holed)
    gaps: list[str] = []
    async with serve(fake) as base:
        exchange = await connected(base)
        try:

            async def on_gap(pair: str, text: str) -> None:
                gaps.append(text)

            source = ExchangeCandleSource(exchange, on_gap=on_gap)
            now = open_time(btc_candles, 600) + timedelta(minutes=30)  # candle 600 is forming
            fake.now_ms = int(now.timestamp() * 1000)
            first = await source.closed_candles(PAIR, now, 100, "1h")
            assert len(first) == 100
            assert first["timestamp"].iloc[-1] == btc_candles["timestamp"].iloc[599]
            later = now + 10 * HOUR
            fake.now_ms = int(later.timestamp() * 1000)
            requests_before = len(fake.requests)
            second = await source.closed_candles(PAIR, later, 100, "1h")
            assert second["timestamp"].iloc[-1] == btc_candles["timestamp"].iloc[609]
            new_requests = fake.requests[requests_before:]
            assert [int(q["startTime"]) for _, q in new_requests] == [
                int(btc_candles["timestamp"].iloc[600])
            ]
            assert gaps == []
            past_gap = open_time(btc_candles, 720) + timedelta(minutes=1)
            fake.now_ms = int(past_gap.timestamp() * 1000)
            third = await source.closed_candles(PAIR, past_gap, 100, "1h")
            assert len(gaps) == 1
            assert "3 candle(s) missing" in gaps[0]
            assert (third["timestamp"].diff().dropna() > 3_600_000).sum() == 1  # not filled
        finally:
            await exchange.close()


async def test_the_service_never_trades_on_a_signal_from_before_it_started(
    db: Database,
    btc_candles: pd.DataFrame,
) -> None:
    fake = FakeBinance(now_ms=0)
    fake.add_candles("BTCUSDT", "1h", btc_candles)
    # The EMA 12/26 entry on 2025-06-23 08:00 closed at 09:00: start the service at 09:30.
    start = datetime(2025, 6, 23, 9, 30, tzinfo=UTC)
    clock = FakeClock(start)
    async with serve(fake) as base:
        exchange = await connected(base)
        try:
            source = ExchangeCandleSource(exchange)

            def at(moment: datetime) -> None:
                clock.set(moment)
                fake.now_ms = int(moment.timestamp() * 1000)
                forming = btc_candles[btc_candles["timestamp"] <= fake.now_ms].iloc[-1]
                fake.prices["BTCUSDT"] = float(forming["open"])

            at(start)
            engine = await build_paper_engine(
                db,
                clock=clock,
                feed=source,
                account=PaperAccount(1000.0, "USDT", 0.001, 0.0),
                limits=RiskLimits(),
            )
            run = await SqlitePairRunRepository(db).add(
                pair=PAIR,
                strategy="ema_cross",
                timeframe="1h",
                params={},
                capital_share=1.0,
                now=start,
            )
            service = TradingService(
                engine=engine,
                source=source,
                clock=clock,
                runs=[run],
                equity=SqliteEquityRepository(db),
                faults=strategy_faults(db, clock),
            )
            await service.prime()
            assert await service.tick("1h") == 0  # the 09:00 close was already seen
            assert engine.portfolio.positions() == []
            moment = datetime(2025, 6, 23, 10, 0, 5, tzinfo=UTC)
            while moment < datetime(2025, 6, 28, tzinfo=UTC):
                at(moment)
                await service.tick("1h")
                moment += HOUR
            fills = await SqliteFillRepository(db).all()
            assert fills, "the service traded on candles that closed while it ran"
            assert all(fill.time >= datetime(2025, 6, 23, 10, tzinfo=UTC) for fill in fills)
        finally:
            await exchange.close()


def test_ticks_fire_a_little_after_each_candle_close() -> None:
    trigger = candle_close_trigger(3600, 5.0)
    after = datetime(2025, 7, 1, 12, 17, tzinfo=UTC)
    fire = trigger.get_next_fire_time(None, after)
    assert fire == datetime(2025, 7, 1, 13, 0, 5, tzinfo=UTC)
    four_hours = candle_close_trigger(4 * 3600, 5.0).get_next_fire_time(None, after)
    assert four_hours == datetime(2025, 7, 1, 16, 0, 5, tzinfo=UTC)


def exchange_settings(tmp_path: Path, base: str, pair: str) -> Settings:
    return Settings.model_validate(
        {
            "data_dir": tmp_path,
            "exchange": {"name": "binance", "ccxt_config": {"urls": {"api": binance_urls(base)}}},
            "market_data": {"source": "exchange"},
            "pairs": [{"pair": pair, "capital_share": 0.5}],
        }
    )


async def test_run_on_exchange_candles_starts_primes_and_stops(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = FakeBinance(now_ms=int(btc_candles["timestamp"].iloc[-1]) + 60_000)
    fake.add_candles("BTCUSDT", "1h", btc_candles)
    lines: list[str] = []
    async with serve(fake) as base:
        stop = asyncio.Event()
        service = asyncio.create_task(
            run_service(
                exchange_settings(tmp_path, base, PAIR), Secrets(), stop=stop, write=lines.append
            )
        )
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.wait_for(service, timeout=5)
        assert any("pairpilot started: paper mode on binance, BTC/USDT" in line for line in lines)
        assert any("pairpilot stopped" in line for line in lines)
        with pytest.raises(ConfigError, match="pairs: DOGE/USDT is not listed on binance"):
            await run_service(
                exchange_settings(tmp_path, base, "DOGE/USDT"), Secrets(), stop=asyncio.Event()
            )


async def test_a_gap_is_alerted_once_not_again_after_each_restart(
    db: Database, clock: FakeClock
) -> None:
    alerts = SqliteAlertRepository(db)
    for _ in range(2):  # the second service start finds the same hole
        gaps = OnceAlerts(
            AlertOutbox(alerts, clock), SqliteStateRepository(db), clock, "candle_gap"
        )
        await gaps.push("BTC/USDT: 3 candle(s) missing between 09:00 and 11:00 UTC")
        await gaps.push("BTC/USDT: 3 candle(s) missing between 09:00 and 11:00 UTC")
    await gaps.push("ETH/USDT: 1 candle(s) missing at 10:00 UTC")
    assert [alert.text[:8] for alert in await alerts.pending()] == ["BTC/USDT", "ETH/USDT"]
