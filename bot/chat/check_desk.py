"""/check STRATEGY [PAIR] [TIMEFRAME] [key=value ...]: `pairpilot strategy check` from the chat
(issue 18), on the candles /backtest reads (the service's market data), off the event loop and
behind the gate its backtests hold, the result stored by source hash as the CLI stores it.

Bad input (an unknown strategy, a parameter out of its bounds, a bad pair or timeframe, too
little data) is refused before anything is stored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Protocol

from bot.chat.one_at_a_time import OneAtATime
from bot.chat.pair_desk import malformed
from bot.chat.replies import Progress
from bot.chat.requests import normalise_pair
from bot.core.clock import SystemClock
from bot.core.daemon_threads import in_daemon_thread
from bot.core.domain import from_ms, to_ms
from bot.core.errors import UserInputError
from bot.core.key_values import key_values
from bot.core.lazy_import import import_off_loop
from bot.core.ports import CandleHistory, Clock
from bot.core.timeframes import timeframe_seconds
from bot.research.portfolio_inputs import PairEntry
from bot.trading.service import TradingService
from strategies import StrategyConfigError, build_strategy

USAGE = "usage: /check STRATEGY [PAIR] [TIMEFRAME] [key=value ...]"
CHECK_CANDLES = 2000  # the last candles a check reads, or the strategy's minimum if more
DEFAULT_TIMEFRAME = "1h"  # a pair neither running nor configured: /backtest's default


class CheckStore(Protocol):
    """Where checks are kept (storage/strategy_checks.py)."""

    async def add(
        self, created_ms: int, fingerprint: Mapping[str, Any], report: Mapping[str, Any]
    ) -> int: ...


@dataclass(frozen=True, slots=True)
class CheckLine:
    check: str  # bad output, determinism, look-ahead, warm-up, cost
    passed: bool
    detail: str  # as `pairpilot strategy check` prints it


@dataclass(frozen=True, slots=True)
class CheckView:
    strategy: str
    pair: str
    timeframe: str
    candles: int
    first: datetime  # the first candle checked (its open)
    last: datetime  # the last
    passed: bool
    failed: tuple[str, ...]  # the checks that failed
    lines: tuple[CheckLine, ...]
    seconds: float  # the whole check
    check_id: int  # its stored row
    source_hash: str  # the strategy's source, as stored


class CheckDesk:
    def __init__(
        self,
        *,
        service: TradingService,
        history: CandleHistory,
        store: CheckStore,
        clock: Clock,
        quote: str,
        pairs: Sequence[PairEntry] = (),
        backtests: OneAtATime | None = None,
        wall: Clock | None = None,
    ) -> None:
        """``clock``: the service's (a replay's: which candles are closed); ``wall``: real
        time, what a check's stored time is (the CLI's too); ``pairs``: the config's, whose
        first is the default pair; ``backtests``: the one-heavy-job gate /backtest holds."""
        self._service = service
        self._history = history
        self._store = store
        self._clock = clock
        self._quote = quote
        self._pairs = tuple(pairs)
        self._backtests = backtests or OneAtATime("backtest")
        self._wall = wall or SystemClock()

    async def check(self, arguments: Sequence[str], progress: Progress) -> CheckView:
        """STRATEGY [PAIR] [TIMEFRAME] [key=value ...]: every word checked before any work."""
        words = [a for a in arguments if "=" not in a]
        if not words:
            raise UserInputError(USAGE)
        if len(words) > 3:
            raise UserInputError(f"unexpected {words[3]!r}; parameters go as key=value")
        given = key_values([a for a in arguments if "=" in a], malformed)
        try:
            strategy = build_strategy(words[0], given)
        except StrategyConfigError as error:
            raise UserInputError(str(error)) from None
        pair, timeframe = self._where(strategy.name, words[1:])
        step = timeframe_seconds(timeframe)  # a clear error for a bad timeframe
        await import_off_loop("bot.research.strategy_check")
        from bot.research.strategy_check import check_strategy, fingerprint, minimum_candles

        wanted = max(CHECK_CANDLES, minimum_candles(strategy))
        days = max(1, math.ceil(wanted * step / 86_400))
        with self._backtests.hold(f"check {strategy.name} on {pair} {timeframe}") as running:
            # held before the first await: one heavy job at a time, in the order asked
            await progress(f"Check {running}: loading candles…")
            candles = await self._history.candles(pair, timeframe, days, self._clock.now())
            candles = candles.iloc[-wanted:].reset_index(drop=True)
            await progress(f"Check {running}: checking {len(candles):,} candles…")
            report = await in_daemon_thread(partial(check_strategy, strategy, candles))
            keys = await in_daemon_thread(partial(fingerprint, strategy, pair, timeframe, candles))
            record = report.record()
            check_id = await self._store.add(to_ms(self._wall.now()), keys, record)
        return CheckView(
            strategy.name,
            pair,
            timeframe,
            report.candles,
            from_ms(report.first_ms),
            from_ms(report.last_ms),
            report.passed,
            tuple(report.failed()),
            tuple(CheckLine(v.check, v.passed, v.detail) for v in report.verdicts),
            report.seconds,
            check_id,
            keys["source_hash"],
        )

    def _where(self, strategy: str, words: Sequence[str]) -> tuple[str, str]:
        """The pair (given, else the first running with ``strategy``, else the config's first)
        and the timeframe (given, else the pair's: running, configured, else 1h)."""
        if words:
            pair = normalise_pair(words[0], self._quote)
        else:
            running = [run.pair for run in self._service.runs() if run.strategy == strategy]
            configured = [entry.pair for entry in self._pairs]
            if not running and not configured:
                raise UserInputError(f"no pair runs or is configured: {USAGE}")
            pair = (running or configured)[0]
        if len(words) > 1:
            return pair, words[1]
        return pair, self._timeframe(pair)

    def _timeframe(self, pair: str) -> str:
        run = self._service.run_for(pair)
        if run is not None:
            return run.timeframe
        entry = next((entry for entry in self._pairs if entry.pair == pair), None)
        return DEFAULT_TIMEFRAME if entry is None else entry.timeframe
