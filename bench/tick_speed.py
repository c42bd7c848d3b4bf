"""One tick cycle for 50 pairs in paper mode against the local exchange fake, and idle RSS.

    .venv/bin/python -m bench.tick_speed [--pairs 50] [--ticks 24] [--no-rate-limit] [--streams]

Every pair runs EMA 12/26 on 1h candles. The fake serves real candles (the bundled BTC/USDT and
ETH/USDT samples, cycled over the pairs) through unmodified ccxt on loopback, so each tick pays
for real HTTP requests, ccxt parsing, pandas-ta, the risk rules and SQLite writes. The clock is
a test clock moved one candle per tick; the wall time of each tick is measured. With
--streams, candles and prices come from the fake's websocket streams through ccxt.pro (pushed
when the clock moves, half a second before the tick, as the live 5 s delay allows), with REST
as the fallback.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.paths import SAMPLE_DATA
from bot.app.bootstrap import PaperAccount, build_paper_engine, strategy_faults
from bot.core.clock import FakeClock
from bot.core.domain import RiskLimits, from_ms
from bot.core.ports import CandleSource, Clock
from bot.exchange.ccxt_exchange import CcxtExchange
from bot.market.candle_files import read_candle_file
from bot.market.live_source import ExchangeCandleSource
from bot.market.streaming import StreamingFeed
from bot.trading.engine import Engine
from bot.trading.service import TradingService
from storage.db import Database, open_database
from storage.equity import SqliteEquityRepository
from storage.fills import SqliteFillRepository
from storage.pair_runs import SqlitePairRunRepository
from tests.doubles.fake_exchange import FakeBinance, binance_urls, serve


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def ema_service(
    db: Database, engine: Engine, source: CandleSource, clock: Clock, symbols: list[str]
) -> TradingService:
    """The service on ``engine``, each of ``symbols`` (quoted in USDT) running EMA 12/26 on 1h
    with an equal share of the capital."""
    runs = [
        await SqlitePairRunRepository(db).add(
            pair=f"{symbol}/USDT",
            strategy="ema_cross",
            timeframe="1h",
            params={},
            capital_share=1 / len(symbols),
            now=clock.now(),
        )
        for symbol in symbols
    ]
    return TradingService(
        engine=engine,
        source=source,
        clock=clock,
        runs=runs,
        equity=SqliteEquityRepository(db),
        faults=strategy_faults(db, clock),
    )


async def measure(pairs: int, ticks: int, rate_limit: bool, streams: bool) -> None:
    samples = [read_candle_file(SAMPLE_DATA / f"{name}_USDT-1h.csv.gz") for name in ("BTC", "ETH")]
    symbols = [f"P{index:02d}" for index in range(pairs)]
    start_index = 800  # both series cross twice in the next 24 candles: orders are placed
    fake = FakeBinance(now_ms=0)
    for index, symbol in enumerate(symbols):
        fake.add_candles(f"{symbol}USDT", "1h", samples[index % 2])
    clock = FakeClock(from_ms(int(samples[0]["timestamp"].iloc[start_index])))
    async with serve(fake) as base, open_database(Path(tempfile.mkdtemp()) / "t.sqlite") as db:
        config = {"urls": {"api": binance_urls(base)}, "enableRateLimit": rate_limit}
        exchange = CcxtExchange.create("binance", config)
        await exchange.load_markets()
        feed = StreamingFeed(exchange) if streams else exchange
        source = ExchangeCandleSource(feed)

        def at_step(step: int) -> None:
            moment = from_ms(int(samples[0]["timestamp"].iloc[start_index + step])) + timedelta(
                seconds=5
            )
            clock.set(moment)
            fake.now_ms = int(moment.timestamp() * 1000)
            for index, symbol in enumerate(symbols):
                fake.prices[f"{symbol}USDT"] = float(
                    samples[index % 2]["open"].iloc[start_index + step]
                )

        at_step(0)
        engine = await build_paper_engine(
            db,
            clock=clock,
            feed=source,
            account=PaperAccount(100_000.0, "USDT", 0.001, 0.0005),
            limits=RiskLimits(max_open_positions=pairs),
        )
        service = await ema_service(db, engine, source, clock, symbols)
        started = time.perf_counter()
        await service.prime()
        prime_seconds = time.perf_counter() - started
        idle = rss_mb()
        seconds = []
        for step in range(1, ticks + 1):
            at_step(step)
            if streams:
                await fake.push()
                await asyncio.sleep(0.5)  # the streams deliver before the tick, as live
            started = time.perf_counter()
            acted = await service.tick("1h")
            seconds.append(time.perf_counter() - started)
            assert acted == pairs, f"only {acted} of {pairs} pairs saw their candle"
        fills = await SqliteFillRepository(db).all()
        if isinstance(feed, StreamingFeed):
            stats = feed.stats
            await feed.close()
        await exchange.close()
    pacing = "on" if rate_limit else "off"
    print(f"pairs {pairs}, ticks {ticks}, ccxt rate limiter {pacing}, fills {len(fills)}")
    if streams:
        print(
            f"streams: {stats.candles_streamed} candles streamed, {stats.candles_fetched} "
            f"fetched over REST; prices {stats.prices_streamed} streamed, "
            f"{stats.prices_fetched} over REST"
        )
    print(f"start-up (first fetch of {pairs} x 540 candles): {prime_seconds:.2f} s")
    print(
        f"tick cycle: median {statistics.median(seconds):.3f} s, "
        f"max {max(seconds):.3f} s, min {min(seconds):.3f} s"
    )
    print(
        f"RSS after start-up (idle, {pairs} pairs running): {idle:.0f} MB; "
        f"after the ticks: {rss_mb():.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--ticks", type=int, default=24)
    parser.add_argument(
        "--no-rate-limit",
        action="store_true",
        help="turn ccxt's request pacing off, to see our own cost",
    )
    parser.add_argument("--streams", action="store_true", help="candles and prices by websocket")
    args = parser.parse_args()
    asyncio.run(measure(args.pairs, args.ticks, not args.no_rate_limit, args.streams))


if __name__ == "__main__":
    main()
