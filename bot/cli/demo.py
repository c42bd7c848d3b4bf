"""`pairpilot demo`: the real service, offline, on bundled real candles, in a few seconds."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np

from bot.app.config import Settings
from bot.app.secret_values import Secrets
from bot.app.serve import run_service
from bot.charts.render import equity_chart_png
from bot.core.domain import EquitySnapshot, Fill
from bot.portfolio.performance import Metrics, measure, round_trips
from storage.db import open_database
from storage.equity import SqliteEquityRepository
from storage.fills import SqliteFillRepository

SAMPLE_FILES = {"BTC/USDT": "BTC_USDT-1h.csv.gz", "ETH/USDT": "ETH_USDT-1h.csv.gz"}
# 1h candles at 2,000,000 simulated seconds per real second: a step every 1.8 ms, which is
# faster than a tick, so the replay runs as fast as the engine goes.
DEMO_SPEED = 2_000_000.0


def sample_file(name: str) -> Path:
    return Path(str(resources.files("bot.sample_data").joinpath(name)))


def demo_settings(output: Path) -> Settings:
    return Settings.model_validate(
        {
            "data_dir": output,
            "market_data": {
                "source": "replay",
                "replay_files": {pair: sample_file(name) for pair, name in SAMPLE_FILES.items()},
                "replay_speed": DEMO_SPEED,
            },
            "pairs": [
                {
                    "pair": pair,
                    "strategy": "ema_cross",
                    "timeframe": "1h",
                    "params": {"fast": 12, "slow": 26},
                    "capital_share": 0.5,
                }
                for pair in SAMPLE_FILES
            ],
        }
    )


def run_demo(output: Path, write: Callable[[str], object] = print) -> Metrics:
    """Replay the sample through the service, then print a summary and write the chart."""
    started = time.perf_counter()
    settings = demo_settings(output)
    for stale in output.glob("pairpilot.sqlite*"):  # the demo's own scratch database
        stale.unlink()
    write(
        "pairpilot demo: paper trading BTC/USDT and ETH/USDT with EMA 12/26 on 1h candles,\n"
        "replaying 2,184 real Binance candles per pair (2025-06-21 .. 2025-09-19) through the\n"
        "real scheduler, engine and SQLite storage. Notifications print here (no Telegram).\n"
    )
    fills, snapshots = asyncio.run(_replay(settings, write))
    equity = np.array([snapshot.equity for snapshot in snapshots])
    trades = round_trips(fills)
    summary = measure(
        times=np.array([snapshot.time.timestamp() for snapshot in snapshots]),
        equity=equity,
        trade_pnl=np.array([trade.pnl for trade in trades]),
        trade_seconds=np.array([trade.holding_seconds for trade in trades]),
        fees=sum(fill.fee for fill in fills),
        start_equity=settings.paper.balance,
        buy_and_hold_return=math.nan,
    )
    chart = output / "equity.png"
    title = "pairpilot demo: paper equity (USDT)"
    chart.write_bytes(equity_chart_png([s.time for s in snapshots], list(equity), title))
    write(format_summary(summary, settings.quote))
    write(f"  equity chart:   {chart}")
    write(f"  database:       {settings.database_path}")
    write(f"  took {time.perf_counter() - started:.1f} s")
    return summary


async def _replay(
    settings: Settings, write: Callable[[str], object]
) -> tuple[list[Fill], list[EquitySnapshot]]:
    await run_service(settings, Secrets(), stop=asyncio.Event(), write=write)
    async with open_database(settings.database_path) as db:
        return await SqliteFillRepository(db).all(), await SqliteEquityRepository(db).between()


def format_summary(summary: Metrics, quote: str) -> str:
    return "\n".join(
        [
            "",
            "Summary",
            f"  trades closed:  {summary.trades} ({summary.wins} won, "
            f"win rate {summary.win_rate:.0%})",
            f"  PnL:            {summary.pnl:+,.2f} {quote} ({summary.total_return:+.2%})",
            f"  max drawdown:   {summary.max_drawdown:.2%}",
            f"  final equity:   {summary.end_equity:,.2f} {quote} "
            f"(started with {summary.start_equity:,.2f})",
            f"  fees paid:      {summary.fees:,.2f} {quote}",
        ]
    )
