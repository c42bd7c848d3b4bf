"""/sweep portfolio STRATEGY [DAYS] NAME=LOW:HIGH:STEP ...: each parameter set applied to every
configured pair running STRATEGY and scored on the whole portfolio (bot.research.portfolio_sweep,
as `pairpilot sweep --portfolio` does), on the chat's recent candles (as /backtest portfolio
reads them), under the limits /risk set left; each set runs off the loop."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from bot.chat.one_at_a_time import OneAtATime
from bot.chat.replies import Progress, in_tenths
from bot.chat.requests import MAX_BACKTEST_DAYS, whole_number
from bot.chat.sweep_words import SPACE_USAGE, sweep_spec, sweep_words
from bot.chat.term_words import USAGE as TERM_WORDS
from bot.core.daemon_threads import in_daemon_thread
from bot.core.domain import RiskLimits
from bot.core.errors import UserInputError
from bot.core.lazy_import import import_off_loop
from bot.core.ports import CandleHistory, Clock, SweepStore
from bot.research.account_terms import research_terms

if TYPE_CHECKING:
    import pandas as pd

    from bot.chat.receipt_desk import ReceiptDesk
    from bot.core.domain import SweepRow
    from bot.research.portfolio_inputs import PortfolioConfig
    from bot.research.sweep import SweepSpec

PORTFOLIO_USAGE = f"usage: /sweep portfolio STRATEGY [DAYS] {SPACE_USAGE}\n{TERM_WORDS}"


@dataclass(frozen=True, slots=True)
class PortfolioSwept:
    """A portfolio sweep stored: what SweepDesk's reply is made of."""

    spec: SweepSpec
    sweep_id: int
    rows: list[SweepRow]
    scope: str  # the pairs swept, those kept as configured, the candles
    terms: tuple[str, ...]  # the values simulated, each pair's capital share
    receipt: str | None  # its receipt's id, where receipts are kept


class PortfolioSweepDesk:
    """Runs portfolio sweeps for SweepDesk, under its one-at-a-time gate."""

    def __init__(
        self,
        *,
        config: PortfolioConfig,
        history: CandleHistory,
        store: SweepStore,
        clock: Clock,
        limits: Callable[[], RiskLimits],
        receipts: ReceiptDesk | None = None,
    ) -> None:
        self._config = config
        self._history = history
        self._store = store
        self._clock = clock
        self._limits = limits  # as /risk set left them, read when asked
        self._receipts = receipts

    async def run(
        self, arguments: Sequence[str], progress: Progress, gate: OneAtATime
    ) -> PortfolioSwept:
        """``STRATEGY [DAYS] NAME=VALUES ... [options] [terms]`` (after the word
        ``portfolio``): every word checked, and the space counted, before ``gate`` is held
        or any candle read."""
        await import_off_loop("bot.research.portfolio_sweep")  # numba: loaded on first use
        from bot.research.portfolio_sweep import (
            portfolio_sets,
            portfolio_sweep,
            store_portfolio_sweep,
            swept_pairs,
        )
        from bot.research.sweep import PORTFOLIO

        words = [a for a in arguments if "=" not in a]
        if not 1 <= len(words) <= 2:
            raise UserInputError(PORTFOLIO_USAGE)
        config = self._config
        if not config.pairs:
            raise UserInputError("no pairs are configured ([[pairs]] in the config)")
        strategy = words[0]
        swept = swept_pairs(config, strategy)
        days = whole_number("DAYS", words[1], 7, MAX_BACKTEST_DAYS) if len(words) > 1 else 90
        asked = sweep_words(strategy, [a for a in arguments if "=" in a])
        limits = self._limits()
        terms = research_terms(config, None, asked.overrides, flag="", limits=limits)
        spec, count = await sweep_spec(
            asked, {PORTFOLIO: terms}, lambda spec: portfolio_sets(spec, config)[0]
        )
        timeframe = config.pairs[0].timeframe
        with gate.hold(
            f"portfolio {strategy} {timeframe} {days}d, {count} combinations"
        ) as running:
            now = self._clock.now()
            candles: dict[str, pd.DataFrame] = {}
            for entry in config.pairs:
                await progress(f"Sweep {running}: loading {entry.pair} candles…")
                candles[entry.pair] = await self._history.candles(
                    entry.pair, entry.timeframe, days, now
                )
            await progress(f"Sweep {running}: running the first set…")
            sweep = await in_daemon_thread(
                partial(
                    portfolio_sweep, spec, config, candles, overrides=asked.overrides, limits=limits
                )
            )  # every check, and the first set, before anything is stored
            sweep_id, rows = await store_portfolio_sweep(
                self._store,
                sweep,
                clock=self._clock,
                on_set=in_tenths(progress, f"Sweep {running}"),
            )
            receipt = None
            if self._receipts is not None:
                done = (sweep_id, rows)
                now = self._clock.now()
                receipt = await self._receipts.keep_portfolio_sweep(sweep, candles, done, days, now)
        shares = {
            e.pair: research_terms(config, e.pair, asked.overrides, flag="").capital_share
            for e in config.pairs
        }
        kept = [pair for pair in shares if pair not in swept]
        scope = f"{strategy} swept on {', '.join(swept)} over {days} days of {timeframe} candles"
        if kept:
            scope += (
                f"; {', '.join(kept)} "
                + ("keeps its" if len(kept) == 1 else "keep their")
                + " configured parameters"
            )
        if sweep.skipped is not None:
            scope += f"; {sweep.skipped}"
        return PortfolioSwept(spec, sweep_id, rows, scope, tuple(terms.statement(shares)), receipt)
