"""Portfolio backtest speed and memory: 10 pairs x a year of 1m candles (5.26M candles).

    .venv/bin/python -m bench.portfolio_speed [--runs 1] [--live-candles 300]

The whole `pairpilot backtest --config FILE --json` process is timed with /usr/bin/time (wall
seconds, peak RSS). The shared data has 1m candles of two pairs only (BTC, ETH, 130,708 each),
so the ten pairs are SYNTHESISED from them: each is the real BTC or ETH year (bench.series,
the real minutes chained end to end) started at a different point of it, prices rescaled so
the series stays continuous. Their candles are real shapes and returns, not real other coins.
The same portfolio replayed through the live engine (TradingService, the paper exchange, a
SQLite file in memory) runs on the first ``--live-candles`` candles of each pair; its time
per candle is extrapolated to the year. Freqtrade's figure is the one recorded for one pair.
The live replay's trades are compared with the kernel's on the same window.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from bench.backtest_speed import CACHE, PAIRPILOT, timed
from bench.paths import SHARED_DATA
from bench.series import YEAR_OF_MINUTES, build_year
from bot.app.config import Settings, load_settings
from bot.core.domain import Trade
from bot.market.candle_files import read_candle_file
from bot.research.portfolio import run_portfolio

BASES = ("BTC", "ETH", "SOL", "XRP", "ADA", "DOGE", "BNB", "LTC", "DOT", "LINK")
FREQTRADE_ONE_PAIR = 38.0  # seconds for 525,600 candles, recorded (bench/RESULTS.md)
PARAMS = "{ stop_loss = 0.01, take_profit = 0.02 }"


def synthetic_pairs(folder: Path) -> dict[str, Path]:
    """Ten 1m years: BTC's or ETH's real year, each started at another point of it."""
    years = {
        base: read_candle_file(
            build_year(
                SHARED_DATA / f"{base}_USDT-1m.csv.gz", CACHE / "year" / f"{base}_USDT-1m.csv.gz"
            )
        )
        for base in ("BTC", "ETH")
    }
    files = {}
    folder.mkdir(parents=True, exist_ok=True)
    for k, base in enumerate(BASES):
        path = folder / f"{base}_USDT-1m.csv"
        files[f"{base}/USDT"] = path
        if path.exists():
            continue
        year = years["BTC" if k % 2 == 0 else "ETH"]
        cut = (k // 2) * (YEAR_OF_MINUTES // 5)
        head, tail = year.iloc[cut:], year.iloc[:cut].copy()
        if len(tail):
            scale = head["close"].iloc[-1] / tail["open"].iloc[0]
            for column in ("open", "high", "low", "close"):
                tail[column] = tail[column] * scale
        series = pd.concat([head, tail], ignore_index=True)
        series["timestamp"] = year["timestamp"].to_numpy()
        series.to_csv(path, index=False, float_format="%.8g")
    return files


def write_config(folder: Path, files: dict[str, Path]) -> Path:
    replay = "".join(f'"{pair}" = "{path}"\n' for pair, path in files.items())
    pairs = "".join(
        f'\n[[pairs]]\npair = "{pair}"\nstrategy = "ema_cross"\ntimeframe = "1m"\n'
        f"params = {PARAMS}\ncapital_share = {1 / len(files)}\n"
        for pair in files
    )
    path = folder / "portfolio.toml"
    path.write_text(
        '[market_data]\nsource = "replay"\n[market_data.replay_files]\n' + replay + pairs,
        encoding="utf-8",
    )
    return path


async def live_replay(
    settings: Settings, frames: dict[str, pd.DataFrame]
) -> tuple[float, list[Trade]]:
    """The live engine replaying ``frames`` as the demo does; (seconds, its trades)."""
    from bot.app.bootstrap import PaperAccount, build_paper_engine, strategy_faults
    from bot.core.clock import FakeClock
    from bot.core.domain import RiskLimits
    from bot.core.timeframes import timeframe_delta
    from bot.market.candle_files import ReplaySource
    from bot.portfolio.performance import round_trips
    from bot.trading.replay import ReplayDriver
    from bot.trading.service import TradingService
    from storage.db import open_database
    from storage.equity import SqliteEquityRepository
    from storage.fills import SqliteFillRepository
    from storage.pair_runs import SqlitePairRunRepository
    from storage.state import SqliteStateRepository

    step = timeframe_delta("1m")
    source = ReplaySource(frames, dict.fromkeys(frames, "1m"))
    start = min(source.first_open(pair) for pair in frames) + step
    clock = FakeClock(start)
    paper = settings.paper
    async with open_database(":memory:") as db:
        engine = await build_paper_engine(
            db,
            clock=clock,
            feed=source,
            account=PaperAccount(
                paper.balance, "USDT", paper.fee, paper.slippage, paper.max_volume_share
            ),
            limits=RiskLimits(**settings.risk.model_dump()),
        )
        runs = [
            await SqlitePairRunRepository(db).add(
                pair=entry.pair,
                strategy=entry.strategy,
                timeframe=entry.timeframe,
                params=dict(entry.params),
                capital_share=entry.capital_share,
                now=clock.now(),
            )
            for entry in settings.pairs
        ]
        service = TradingService(
            engine=engine,
            source=source,
            equity=SqliteEquityRepository(db),
            clock=clock,
            runs=runs,
            faults=strategy_faults(db, clock),
        )
        driver = ReplayDriver(
            clock=clock,
            service=service,
            state=SqliteStateRepository(db),
            step=step,
            end=min(source.last_close(pair) for pair in frames) - step,
            source=source,
        )
        started = time.perf_counter()
        while not driver.finished.is_set():
            await driver.step()
        seconds = time.perf_counter() - started
        return seconds, round_trips(await SqliteFillRepository(db).all())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--live-candles", type=int, default=300)
    args = parser.parse_args()
    folder = CACHE / "portfolio"
    files = synthetic_pairs(folder)
    config = write_config(folder, files)
    wall, peak, out = timed([PAIRPILOT, "backtest", "--config", str(config), "--json"], args.runs)
    document = json.loads(out)
    candles = len(files) * YEAR_OF_MINUTES
    refused = sum(sum(pair["refused"].values()) for pair in document["pairs"])
    print(f"== {len(files)} pairs x {YEAR_OF_MINUTES:,} 1m candles = {candles:,} (synthetic)")
    print(f"pairpilot backtest --config (whole process)  {wall:6.2f} s  {peak:6.0f} MB peak")
    # The same trades before and after a change give the same digest (the JSON's trade list).
    digest = hashlib.sha256(json.dumps(document["trades"]).encode()).hexdigest()[:16]
    print(f"  trades {len(document['trades']):,} (digest {digest}), entries refused {refused:,}")
    user, system = cpu_seconds([PAIRPILOT, "backtest", "--config", str(config), "--json"])
    print(f"  CPU of one more run: user {user:.2f} s, system {system:.2f} s (steady under load)")
    # One pair's year in the same run: how loaded the machine is (1.3-2.1 s on a quiet one).
    one, one_peak, _ = timed(
        [PAIRPILOT, "backtest", "--data", str(files["BTC/USDT"]), "--timeframe", "1m", "--json"],
        args.runs,
    )
    print(f"one pair's year, pairpilot backtest --data:   {one:6.2f} s  {one_peak:6.0f} MB peak")
    settings = load_settings(config, None)
    window = {
        pair: read_candle_file(path).iloc[: args.live_candles] for pair, path in files.items()
    }
    seconds, live = asyncio.run(live_replay(settings, window))
    acted = len(files) * (args.live_candles - 2)
    per_candle = seconds / acted
    print(
        f"live engine replay, {acted:,} pair-candles: {seconds:.1f} s = "
        f"{per_candle * 1e3:.2f} ms/candle -> {per_candle * candles / 3600:.1f} h for the year "
        f"(extrapolated) = {per_candle * candles / wall:,.0f} x ours"
    )
    per_pair = FREQTRADE_ONE_PAIR * len(files)
    print(
        f"freqtrade, recorded for one pair (525,600 candles): {FREQTRADE_ONE_PAIR:.0f} s; x "
        f"{len(files)} pairs ~ {per_pair:.0f} s = {per_pair / wall:.0f} x ours"
    )
    kernel = [t for t in run_portfolio(settings, window).trades() if t.exit_reason != "open"]
    same = len(kernel) == len(live) and all(
        (a.pair, a.entry_time, a.exit_time) == (b.pair, b.entry_time, b.exit_time)
        and np.isclose(a.pnl, b.pnl, rtol=1e-9, atol=1e-9)
        for a, b in zip(sorted(live, key=_key), sorted(kernel, key=_key), strict=False)
    )
    print(f"live and kernel trades on that window: {len(live)} and {len(kernel)}, same: {same}")


def cpu_seconds(command: list[str]) -> tuple[float, float]:
    """User and system CPU seconds of one run of ``command``: unlike wall time, they hardly move
    with the machine's load (its other processes), so they compare runs of a busy day."""
    with tempfile.NamedTemporaryFile("r") as report:
        subprocess.run(
            ["/usr/bin/time", "-o", report.name, "-f", "%U %S", *command],
            capture_output=True,
            check=True,
        )
        user, system = report.read().split()[-2:]
    return float(user), float(system)


def _key(trade: Trade) -> tuple[datetime, str]:
    return (trade.entry_time, trade.pair)


if __name__ == "__main__":
    main()
