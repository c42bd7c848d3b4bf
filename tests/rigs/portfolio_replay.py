"""The live engine replaying several pairs at once: the live side of the portfolio parity.

`replay_portfolio` generalises test_parity's one-pair `live_trades`: N pair runs added in the
order given (a fresh database's `sync_pair_runs` order: the config's), one paper account
shared by all, one `ReplayDriver` stepping the clock, and the outcome read back from the
database: the round trips per pair, the refused entries per pair and reason, the orders the
paper exchange refused for want of free funds, the orders filled only in part (the volume
cap) and the equity snapshots. `replay_settings` runs the demo's own path on ``Settings``
(load_replay -> assemble_replay -> the driver), which fixes the run order, candle 0 as
history and the replay end as `pairpilot demo` has them.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from bot.app.bootstrap import PaperAccount, assemble_replay, build_paper_engine, strategy_faults
from bot.app.config import Settings
from bot.app.startup import load_replay
from bot.core.clock import FakeClock
from bot.core.domain import EquitySnapshot, RiskLimits, Trade, from_ms
from bot.core.timeframes import timeframe_delta
from bot.market.candle_files import ReplaySource
from bot.portfolio.performance import round_trips
from bot.trading.drift import TooSmall
from bot.trading.engine import Engine
from bot.trading.replay import ReplayDriver
from bot.trading.service import TradingService
from storage.db import Database, open_database
from storage.equity import SqliteEquityRepository
from storage.fills import SqliteFillRepository
from storage.pair_runs import SqlitePairRunRepository
from storage.state import SqliteStateRepository

# The coarse reasons of the vetoes table's text (guard.entry_block, engine._size_entry,
# sizing.size_entry), named as the portfolio kernel counts them (portfolio.VETO_REASONS).
VETO_REASONS = {
    "halted (": "halt",
    "daily loss limit reached": "daily",
    "cooling down after losses": "cooldown",
    "entries resting, the most allowed": "max_open",
    "under the minimum order": "min_order",
}


@dataclass(frozen=True, slots=True)
class PairPlan:
    """One pair run of the replay: its candles and what trades it."""

    pair: str
    candles: pd.DataFrame
    strategy: str
    params: dict[str, float] = field(default_factory=dict)
    capital_share: float = 1.0
    timeframe: str = "1h"


@dataclass(frozen=True, slots=True)
class LiveOutcome:
    """What the live engine did, read back from its database."""

    trades: dict[str, list[Trade]]  # pair -> its closed round trips, in time order
    vetoes: dict[str, Counter[str]]  # pair -> coarse reason -> refused entries
    rejected_funds: dict[str, int]  # pair -> orders the paper account refused (free funds)
    partial: dict[str, int]  # pair -> orders filled only in part (the volume cap)
    partial_sales: dict[str, int]  # pair -> the sales among them
    waiting: int  # max-open vetoes that counted other pairs' resting limit entries
    equity: list[EquitySnapshot]  # one per clock step at which a pair acted
    halted_at: datetime | None  # when the drawdown halt tripped, if it did
    first_tick: datetime  # the first clock step's time
    last_tick: datetime  # the last clock step's time

    def veto_count(self, reason: str) -> int:
        return sum(counts[reason] for counts in self.vetoes.values())

    def all_trades(self) -> list[Trade]:
        return [trade for trades in self.trades.values() for trade in trades]


def veto_reason(text: str) -> str:
    """The coarse reason of a vetoes row's text; an unknown text is an error, not a guess."""
    for marker, reason in VETO_REASONS.items():
        if marker in text:
            return reason
    raise ValueError(f"a veto the parity rig does not know: {text!r}")


async def replay_portfolio(
    plans: list[PairPlan],
    account: PaperAccount,
    limits: RiskLimits,
    *,
    timezone: str = "UTC",
    start: datetime | None = None,
) -> LiveOutcome:
    """The live engine on ``plans`` (runs added in this order), on one paper ``account``.

    The clock starts at ``start``, by default the earliest first open, so every pair's candle
    0 is acted on (as in test_parity; the demo starts one step later, candle 0 is history);
    the replay ends at min(last close) - step, where the demo's does.
    """
    frames = {plan.pair: plan.candles for plan in plans}
    timeframes = {plan.pair: plan.timeframe for plan in plans}
    source = ReplaySource(frames, timeframes)
    step = min(timeframe_delta(plan.timeframe) for plan in plans)
    clock = FakeClock(start or min(source.first_open(plan.pair) for plan in plans))
    end = min(source.last_close(plan.pair) for plan in plans) - step
    async with open_database(":memory:") as db:
        engine = await build_paper_engine(
            db, clock=clock, feed=source, account=account, limits=limits, timezone=timezone
        )
        repo = SqlitePairRunRepository(db)
        runs = [
            await repo.add(
                pair=plan.pair,
                strategy=plan.strategy,
                timeframe=plan.timeframe,
                params=plan.params,
                capital_share=plan.capital_share,
                now=clock.now(),
            )
            for plan in plans
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
            end=end,
            source=source,
        )
        return await _drive(db, engine, driver, clock, [plan.pair for plan in plans])


async def replay_settings(settings: Settings, db: Database) -> LiveOutcome:
    """The demo's own path on ``settings``: load_replay, assemble_replay, then the driver
    stepped until it is finished (as `pairpilot demo`, without the wall-clock pacing)."""
    trading = await assemble_replay(db, settings, load_replay(settings))
    assert trading.driver is not None
    assert isinstance(trading.clock, FakeClock)
    pairs = [pair.pair for pair in settings.pairs]
    return await _drive(db, trading.engine, trading.driver, trading.clock, pairs)


async def _drive(
    db: Database, engine: Engine, driver: ReplayDriver, clock: FakeClock, pairs: list[str]
) -> LiveOutcome:
    first: datetime | None = None
    while not driver.finished.is_set():
        before = clock.now()
        await driver.step()
        if first is None and clock.now() != before:
            first = clock.now()
    if first is None:
        raise ValueError("the replay window holds no step")
    return await read_outcome(db, engine, pairs, first, clock.now())


async def read_outcome(
    db: Database,
    engine: Engine,
    pairs: list[str],
    first: datetime,
    last: datetime,
    too_small: TooSmall | None = None,
) -> LiveOutcome:
    """What ``engine`` did on ``db`` between the clock steps ``first`` and ``last``;
    ``too_small``: a venue's dust rule (the position left under it goes with the next exit)."""
    trades: dict[str, list[Trade]] = {pair: [] for pair in pairs}
    for trade in round_trips(await SqliteFillRepository(db).all(), too_small):
        trades[trade.pair].append(trade)
    vetoes: dict[str, Counter[str]] = {pair: Counter() for pair in pairs}
    waiting = 0
    for pair, text in await db.fetch_all("SELECT pair, reason FROM vetoes ORDER BY id"):
        vetoes[pair][veto_reason(text)] += 1
        resting = re.search(r"and (\d+) entries resting", text)
        waiting += bool(resting and int(resting[1]) > 0)
    rejected = dict.fromkeys(pairs, 0)
    for (pair,) in await db.fetch_all("SELECT pair FROM orders WHERE status = 'rejected'"):
        rejected[pair] += 1
    partial, partial_sales = dict.fromkeys(pairs, 0), dict.fromkeys(pairs, 0)
    for pair, side in await db.fetch_all(
        "SELECT pair, side FROM orders WHERE status = 'expired' AND filled > 0"
    ):
        partial[pair] += 1
        partial_sales[pair] += side == "sell"
    rows = await db.fetch_all("SELECT time, equity, cash FROM equity_snapshots ORDER BY time")
    equity = [EquitySnapshot(from_ms(row[0]), row[1], row[2]) for row in rows]
    halt = await engine.guard.halted()
    halted_at = from_ms(int(halt["since"])) if halt else None
    return LiveOutcome(
        trades, vetoes, rejected, partial, partial_sales, waiting, equity, halted_at, first, last
    )
