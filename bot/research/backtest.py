"""Backtests: a strategy's signals over a candle series, traded by the numba kernel.

The kernel applies the live engine's rules (risk sizing, next-open fills, fee and slippage,
protective exits); the parity tests run the live service on the same candles and require the
same trades.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from bot.core.domain import RiskLimits, Trade, from_ms
from bot.core.errors import DataError
from bot.core.timeframes import timeframe_seconds
from bot.portfolio.performance import Metrics, measure
from bot.research.account_terms import ResearchTerms
from bot.research.kernel_inputs import KernelClock, KernelCosts, KernelExits
from bot.research.kernel_trades import EXIT_REASONS
from bot.research.simulation import KernelResult, simulate
from bot.risk.fills import bought_at, held_return, sold_at
from strategies import Strategy

OHLC = ("open", "high", "low", "close")


@dataclass(frozen=True, slots=True)
class BacktestSetup:
    """What the kernel runs on. Research paths build it with ``setup_for`` from the config's
    terms; the defaults are a neutral account for tests that pin the kernel itself."""

    pair: str
    timeframe: str
    balance: float = 1000.0
    fee_rate: float = 0.001
    slippage: float = 0.0
    limits: RiskLimits = RiskLimits()
    timezone: str = "UTC"  # where a day starts, for the daily loss limit
    # The venue holds stop orders, as Binance, Bybit, OKX and Kraken do live: stops fill at
    # their level inside the candle. Off: checked per candle and sold at the next open (paper).
    resting_stops: bool = False
    # A buy's fee is taken from the coins bought (Binance's default, OKX and Bybit spot): the
    # entry spends its budget on coins, held net of the fee (``KernelCosts.fee_in_coin``).
    fee_in_coin: bool = False
    # An order fills at most this share of its fill candle's volume, as on the paper account
    # (``paper.max_volume_share``); 0: no cap. A sale's rest is sold at the next close.
    volume_share: float = 0.0
    # The pair's share of the account's equity an entry is sized on (its [[pairs]]
    # ``capital_share``, as the live engine sizes a run); 1: the whole account.
    capital_share: float = 1.0
    # Candles before this one only warm the indicators up: no signal acts on them, and the
    # metrics (buy and hold included) start here. A walk-forward window's preceding candles.
    trade_from: int = 0


def setup_for(
    pair: str, timeframe: str, terms: ResearchTerms, trade_from: int = 0
) -> BacktestSetup:
    """A backtest of ``pair`` on ``terms``: the account, its limits, the pair's capital share
    and the volume cap, every value from the one source (``research_terms``)."""
    return BacktestSetup(
        pair=pair,
        timeframe=timeframe,
        balance=terms.balance,
        fee_rate=terms.fee_rate,
        slippage=terms.slippage,
        limits=terms.limits,
        timezone=terms.timezone,
        resting_stops=terms.resting_stops,
        fee_in_coin=terms.fee_in_coin,
        volume_share=terms.volume_share,
        capital_share=terms.capital_share,
        trade_from=trade_from,
    )


@dataclass(frozen=True, slots=True)
class BacktestResult:
    setup: BacktestSetup
    strategy: Strategy
    candles: pd.DataFrame
    close_ms: NDArray[np.int64]  # each candle's close time, ms
    equity: NDArray[np.float64]  # marked at each candle's close
    stop_line: NDArray[np.float64]  # protective stop in force during each candle, NaN when none
    table: TradeTable
    ambiguous_exits: int  # candles that reached both stop and target: resolved as the stop
    vetoes: int  # entry signals the risk rules refused
    halted_at: datetime | None  # when the drawdown limit halted entries for good
    metrics: Metrics


def enough_candles(strategy: Strategy, count: int, series: str) -> None:
    """Refuse a series too short for ``strategy``'s warm-up and one candle to trade on."""
    if count < strategy.ready_after + 1:
        raise DataError(
            f"{strategy.name} needs at least {strategy.ready_after + 1} candles "
            f"(warmup {strategy.ready_after} plus one to trade on); {series} has {count}"
        )


def run_backtest(candles: pd.DataFrame, strategy: Strategy, setup: BacktestSetup) -> BacktestResult:
    """Trade ``strategy`` over validated ``candles``; nothing is written anywhere."""
    if not 0 <= setup.trade_from < len(candles):
        raise DataError(f"trading from candle {setup.trade_from}: the series has {len(candles)}")
    enough_candles(strategy, len(candles), "the series")
    policy = strategy.exit_policy
    atr = strategy.atr(candles) if policy.atr_stop else pd.Series(np.nan, index=candles.index)
    step_ms = timeframe_seconds(setup.timeframe) * 1000
    open_ms = candles["timestamp"].to_numpy(dtype=np.int64)
    close_ms = open_ms + step_ms
    prices: dict[str, NDArray[np.float64]] = {
        column: candles[column].to_numpy(dtype=np.float64) for column in (*OHLC, "volume")
    }
    codes: NDArray[np.integer[Any]] = strategy.signals(candles).to_numpy()
    if setup.trade_from:
        codes = np.where(np.arange(len(codes)) < setup.trade_from, 0, codes).astype(np.int8)
    result = simulate(
        prices,
        codes,
        atr.to_numpy(dtype=np.float64),
        KernelClock(
            close_ms,
            np.append(open_ms[1:], close_ms[-1]),
            local_days(close_ms, setup.timezone),
            step_ms,
        ),
        KernelCosts(
            setup.balance,
            setup.fee_rate,
            setup.slippage,
            setup.capital_share,
            setup.limits,
            setup.fee_in_coin,
            setup.volume_share,
        ),
        KernelExits(
            policy.stop_loss,
            policy.take_profit,
            policy.trailing_stop,
            policy.atr_stop,
            policy.entry_offset,
            setup.resting_stops,
        ),
    )
    table = TradeTable.from_kernel(result, setup.pair)
    return BacktestResult(
        setup=setup,
        strategy=strategy,
        candles=candles,
        close_ms=close_ms,
        equity=result.equity,
        stop_line=result.stop_line,
        table=table,
        ambiguous_exits=int(result.ambiguous.sum()),
        vetoes=result.vetoes,
        halted_at=from_ms(int(close_ms[result.halted_at])) if result.halted_at >= 0 else None,
        metrics=measure(
            times=close_ms[setup.trade_from :] / 1000,
            equity=result.equity[setup.trade_from :],
            trade_pnl=table.pnl,
            trade_seconds=(table.exit_ms - table.entry_ms) / 1000,
            fees=result.fees,
            start_equity=setup.balance,
            buy_and_hold_return=buy_and_hold(
                prices, max(strategy.ready_after, setup.trade_from + 1), setup
            ),
        ),
    )


def buy_and_hold(prices: dict[str, NDArray[np.float64]], first: int, setup: BacktestSetup) -> float:
    """Holding all in, comparable with the strategy: bought at the first open the strategy
    could have bought at (candle ``first``, after its warm-up) and sold at the last close, both
    with the same fee and slippage."""
    bought = bought_at(float(prices["open"][min(first, len(prices["open"]) - 1)]), setup.slippage)
    sold = sold_at(float(prices["close"][-1]), setup.slippage)
    return float(held_return(bought, sold, setup.fee_rate))


def local_days(close_ms: NDArray[np.int64], timezone: str) -> NDArray[np.int64]:
    """The calendar day (days since 1970-01-01, in ``timezone``) of each close time."""
    local = pd.to_datetime(close_ms, unit="ms", utc=True).tz_convert(timezone).tz_localize(None)
    return local.to_numpy().astype("datetime64[D]").astype(np.int64)


@dataclass(frozen=True, slots=True)
class TradeTable:
    """Trades as columns; ``Trade`` objects are made only for the rows asked for. The last row
    is the position still open at the end when ``still_open`` (exit reason "open"), marked at
    the last close with the costs of selling it there."""

    pair: str
    entry_ms: NDArray[np.int64]
    exit_ms: NDArray[np.int64]
    entry_price: NDArray[np.float64]
    exit_price: NDArray[np.float64]
    amount: NDArray[np.float64]
    fee: NDArray[np.float64]
    pnl: NDArray[np.float64]
    reason: NDArray[np.int8]
    still_open: bool = False

    @classmethod
    def from_kernel(cls, result: KernelResult, pair: str) -> TradeTable:
        amount = result.amount
        fee = result.entry_fee + result.exit_fee
        return cls(
            pair=pair,
            entry_ms=result.entry_ms,
            exit_ms=result.exit_ms,
            entry_price=result.entry_price,
            exit_price=result.exit_price,
            amount=amount,
            fee=fee,
            pnl=amount * result.exit_price - amount * result.entry_price - fee,
            reason=result.exit_reason,
            still_open=result.still_open,
        )

    def __len__(self) -> int:
        return len(self.pnl)

    @property
    def closed(self) -> int:
        """How many rows are closed trades (all but the open one)."""
        return len(self) - int(self.still_open)

    def trades(self, start: int = 0) -> list[Trade]:
        """Trades from row ``start`` on, oldest first."""
        return [
            Trade(
                pair=self.pair,
                entry_time=from_ms(int(self.entry_ms[k])),
                exit_time=from_ms(int(self.exit_ms[k])),
                entry_price=float(self.entry_price[k]),
                exit_price=float(self.exit_price[k]),
                amount=float(self.amount[k]),
                pnl=float(self.pnl[k]),
                fee=float(self.fee[k]),
                exit_reason=EXIT_REASONS[int(self.reason[k])],
            )
            for k in range(start, len(self))
        ]
