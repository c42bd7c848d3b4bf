"""Research receipts from chat: /backtest keeps one, /rerun reads its candles again, /compare
puts two side by side (typed views; the run and its chart are ResearchDesk's)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from bot.chat.replies import Progress
from bot.core.daemon_threads import in_daemon_thread
from bot.core.domain import from_ms
from bot.core.errors import DataError, NotFound, UserInputError
from bot.core.lazy_import import import_off_loop
from bot.core.ports import CandleHistory, ReceiptStore
from bot.core.timeframes import timeframe_seconds
from bot.research.receipts import (
    PORTFOLIO,
    PORTFOLIO_SWEEP,
    Receipt,
    SeriesPrint,
    backtest_receipt,
    checked_id,
)

if TYPE_CHECKING:
    import pandas as pd

    from bot.core.domain import SweepRow
    from bot.research.account_terms import ResearchTerms
    from bot.research.backtest import BacktestResult
    from bot.research.portfolio import PortfolioResult
    from bot.research.portfolio_inputs import PortfolioConfig
    from bot.research.portfolio_sweep import PortfolioSweep
    from bot.research.sweep import Series, SweepSpec

COMPARE_USAGE = "usage: /compare ID ID (each backtest and sweep reply names its receipt)"
FIGURES = ("trades", "pnl", "win_rate", "max_drawdown", "fees")
PORTFOLIOS = (PORTFOLIO, PORTFOLIO_SWEEP)


@dataclass(frozen=True, slots=True)
class ReceiptColumn:
    """One receipt's side of a /compare."""

    id: str
    kind: str  # backtest or sweep
    strategy: str
    data: str  # "BTC/USDT 1h 2025-07-01 00:00 .. 2025-08-19 23:00", a line per series
    figures: Mapping[str, float | None]  # FIGURES; a sweep's: its best result's


@dataclass(frozen=True, slots=True)
class SweepRerunView:
    """/rerun of a sweep's receipt: whether every set came out the same, and the ranked table
    as `pairpilot sweep` prints it."""

    matched: bool
    verdict: str
    table: str


@dataclass(frozen=True, slots=True)
class CompareView:
    first: ReceiptColumn
    second: ReceiptColumn
    params: tuple[tuple[str, str, str], ...]  # name, first's, second's: only those that differ
    terms: tuple[tuple[str, str, str], ...]
    # The fingerprints that differ (candles per series, strategy source, backtest code,
    # version), shortened: why equal words can give other figures.
    prints: tuple[tuple[str, str, str], ...]

    @property
    def same_candles(self) -> bool:
        return not any(name.startswith("candles") for name, _, _ in self.prints)


class ReceiptDesk:
    def __init__(self, *, store: ReceiptStore, history: CandleHistory, exchange: str) -> None:
        self._store = store
        self._history = history
        self._exchange = exchange

    async def keep(
        self,
        result: BacktestResult,
        terms: ResearchTerms,
        days: int,
        now: datetime,
        monte_carlo: Mapping[str, Any] | None = None,
    ) -> str:
        """Store the receipt of a /backtest that succeeded (with its Monte Carlo figures, when
        asked for: its rerun draws them again); its id."""
        receipt = backtest_receipt(result, terms, self._source(days), now, monte_carlo)
        await self._store.add(receipt.record())
        return receipt.id

    async def keep_sweep(
        self,
        spec: SweepSpec,
        series: Series,
        done: tuple[int, list[SweepRow]],
        days: int,
        now: datetime,
    ) -> str:
        """Store the receipt of a /sweep (its id and rows ``done``) that ran on ``series``."""
        from bot.research.sweep_receipts import sweep_receipt

        receipt = sweep_receipt(spec, [series], [self._source(days)], *done, now)
        await self._store.add(receipt.record())
        return receipt.id

    async def keep_portfolio(
        self,
        result: PortfolioResult,
        config: PortfolioConfig,
        candles: Mapping[str, pd.DataFrame],
        days: int,
        now: datetime,
    ) -> str:
        """Store the receipt of a /backtest portfolio that succeeded on ``candles``; its id."""
        from bot.research.portfolio_receipts import portfolio_receipt

        sources = {pair: self._source(days) for pair in candles}
        receipt = portfolio_receipt(result, config, candles, sources, (None, None), now)
        await self._store.add(receipt.record())
        return receipt.id

    async def keep_portfolio_sweep(
        self,
        sweep: PortfolioSweep,
        candles: Mapping[str, pd.DataFrame],
        done: tuple[int, list[SweepRow]],
        days: int,
        now: datetime,
    ) -> str:
        """Store the receipt of a /sweep portfolio (its id and rows ``done``) that ran on
        ``candles``, each pair's last ``days``; its id."""
        from bot.research.portfolio_receipts import portfolio_sweep_receipt

        sources = {pair: self._source(days) for pair in candles}
        receipt = portfolio_sweep_receipt(sweep, candles, sources, done, now)
        await self._store.add(receipt.record())
        return receipt.id

    def _source(self, days: int) -> dict[str, Any]:
        return {"kind": "chat", "exchange": self._exchange, "days": days}

    async def receipt(self, text: str) -> Receipt:
        receipt_id = checked_id(text)
        record = await self._store.get(receipt_id)
        if record is None:
            raise NotFound(f"no receipt {receipt_id}")
        return Receipt.from_record(record)

    async def candles(self, receipt: Receipt, series: SeriesPrint) -> pd.DataFrame | None:
        """The candles of ``series``' span (one of ``receipt``'s), as this chat reads candles
        (a replay's files, or the exchange's through the candle store), None when there are
        none; a file's receipt is refused."""
        if series.source.get("kind") == "file":
            raise UserInputError(
                f"receipt {receipt.id} ran on the candle file {series.source['path']}: "
                f"rerun it with pairpilot backtest --rerun {receipt.id}"
            )
        step_ms = timeframe_seconds(series.timeframe) * 1000
        last_close = series.last_ms + step_ms
        days = math.ceil((last_close - series.first_ms) / 86_400_000) + 1
        try:
            return await self._history.candles(
                series.pair, series.timeframe, days, from_ms(last_close)
            )
        except DataError:  # none there (any more)
            return None

    async def frames(self, receipt: Receipt, progress: Progress) -> dict[str, pd.DataFrame | None]:
        """Each series' candles of ``receipt``'s spans, by pair, as ``candles`` reads them."""
        from bot.research.rerun import window

        frames: dict[str, pd.DataFrame | None] = {}
        for series in receipt.series:
            await progress(f"Rerun of receipt {receipt.id}: loading {series.pair} candles…")
            read = await self.candles(receipt, series)
            frames[series.pair] = None if read is None else window(series, read)
        return frames

    async def rerun_sweep(self, receipt: Receipt, progress: Progress) -> SweepRerunView:
        """A single-pair sweep's receipt: every set run again off the loop, in one thread."""
        await import_off_loop("bot.research.sweep_rerun")  # numba: loaded on first use
        from bot.research.sweep_report import report
        from bot.research.sweep_rerun import rerun_sweep, sweep_rerunnable

        sweep_rerunnable(receipt)
        frames = await self.frames(receipt, progress)
        await progress(f"Rerun of receipt {receipt.id}: every set of the sweep…")
        done = await in_daemon_thread(partial(rerun_sweep, receipt, list(frames.values())))
        table = report(done.spec, done.rows, done.series)
        return SweepRerunView(done.matched, done.verdict(), table)

    async def compare(self, arguments: Sequence[str]) -> CompareView:
        if len(arguments) != 2:
            raise UserInputError(COMPARE_USAGE)
        first, second = [await self.receipt(text) for text in arguments]
        if (first.kind in PORTFOLIOS) != (second.kind in PORTFOLIOS):
            raise UserInputError(
                f"/compare {first.id} {second.id}: {_kind(first)} and {_kind(second)}: their "
                "figures are of different accounts; compare two portfolios, or two single pairs"
            )
        return CompareView(
            _column(first),
            _column(second),
            _differing(_params(first), _params(second)),
            _differing(_terms(first), _terms(second)),
            _differing(_prints(first), _prints(second)),
        )


def _kind(receipt: Receipt) -> str:
    """``receipt`` in words: "k3m9xq is a portfolio backtest", "... a BTC/USDT backtest"."""
    if receipt.kind in PORTFOLIOS:
        return f"{receipt.id} is a {receipt.kind}"
    return f"{receipt.id} is a {receipt.series[0].pair} {receipt.kind}"


def _column(receipt: Receipt) -> ReceiptColumn:
    data = "\n".join(f"{s.pair} {s.timeframe} {s.span()}" for s in receipt.series)
    figures = {name: receipt.result.get(name) for name in FIGURES}
    return ReceiptColumn(receipt.id, receipt.kind, receipt.strategy, data, figures)


def _params(receipt: Receipt) -> dict[str, Any]:
    """A single pair's parameters; a portfolio's by pair (``BTC/USDT fast``), with each pair's
    strategy, and a sweep's space."""
    if receipt.kind not in PORTFOLIOS:
        return dict(receipt.params)
    params = {key: value for key, value in receipt.params.items() if key != "pairs"}
    for pair in receipt.params["pairs"]:
        params[f"{pair['pair']} strategy"] = pair["strategy"]
        params.update({f"{pair['pair']} {k}": v for k, v in pair["params"].items()})
    return params


def _terms(receipt: Receipt) -> dict[str, Any]:
    """The terms, flat; a portfolio's: the account's and each pair's capital share."""
    if receipt.kind not in PORTFOLIOS:
        return _flat(receipt.terms)
    shares = {
        f"{pair} capital_share": terms["capital_share"]
        for pair, terms in receipt.terms["by_pair"].items()
    }
    account = {k: v for k, v in _flat(receipt.terms["account"]).items() if k != "capital_share"}
    return {**account, **shares}


def _prints(receipt: Receipt) -> dict[str, Any]:
    """What a receipt's figures rest on beyond its words: each series' candles (by hash), the
    strategy's source, the backtest code and pairpilot's version (hashes cut to 8 characters:
    enough to tell them apart on a phone)."""
    prints: dict[str, Any] = {
        f"candles {s.pair} {s.timeframe}": s.candle_hash[:8] for s in receipt.series
    }
    prints["strategy source"] = receipt.source_hash[:8]
    prints["backtest code"] = receipt.code[:8] if receipt.code else None
    prints["version"] = receipt.version
    return prints


def _flat(terms: Mapping[str, Any]) -> dict[str, Any]:
    """The terms with the limits one level up (``limits.max_drawdown``); ``given`` left out."""
    flat = {name: value for name, value in terms.items() if name not in ("limits", "given")}
    flat.update({f"limits.{k}": v for k, v in terms.get("limits", {}).items()})
    return flat


def _differing(
    first: Mapping[str, Any], second: Mapping[str, Any]
) -> tuple[tuple[str, str, str], ...]:
    return tuple(
        (name, _text(first.get(name)), _text(second.get(name)))
        for name in sorted(set(first) | set(second))
        if first.get(name) != second.get(name)
    )


def _text(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)
