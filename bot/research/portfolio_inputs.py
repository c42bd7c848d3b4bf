"""A portfolio backtest's inputs: every configured pair's candles, signals and terms, checked,
cut to the window the pairs share as the demo's replay cuts it, and flattened into the arrays
the kernel trades them from (pair k's rows ``offsets[k]`` to ``offsets[k] + lengths[k]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from bot.core.domain import RiskLimits, to_ms
from bot.core.errors import UserInputError
from bot.core.timeframes import timeframe_seconds
from bot.market.candle_files import infer_timeframe
from bot.research.account_terms import Overrides, ResearchTerms, TermsConfig, research_terms
from bot.research.backtest import OHLC, enough_candles, local_days
from bot.research.kernel_book import union_clock
from bot.research.kernel_inputs import KernelClock, KernelCosts, KernelExits, pack
from bot.risk.rules import volatility_scales
from strategies import Strategy, build_strategy

COLUMNS = (*OHLC, "volume", "codes", "atr", "scale", "day", "close_ms", "act_ms")
# Shares are checked with room for their decimal sum (0.1 + 0.2 > 0.3 in binary).
_SHARE_ROOM = 1e-9


class PairEntry(Protocol):
    @property
    def pair(self) -> str: ...
    @property
    def strategy(self) -> str: ...
    @property
    def timeframe(self) -> str: ...
    @property
    def params(self) -> Mapping[str, int | float]: ...
    @property
    def capital_share(self) -> float: ...


class PortfolioConfig(TermsConfig, Protocol):
    """The config a portfolio backtest reads (bot/app/config.py's Settings): the terms'
    sections and every [[pairs]] entry with its strategy."""

    @property
    def pairs(self) -> Sequence[PairEntry]: ...


@dataclass(frozen=True, slots=True)
class PairInput:
    pair: str
    strategy: Strategy
    terms: ResearchTerms
    open_ms: NDArray[np.int64]  # its candles in the window, and the one after (the next open)
    first_buy: int  # the row of its first open the strategy could buy at (after its warm-up)


@dataclass(frozen=True, slots=True)
class PortfolioInputs:
    pairs: tuple[PairInput, ...]  # in config order
    timeframe: str
    columns: dict[str, NDArray[Any]]  # COLUMNS, every pair's rows one after another
    offsets: NDArray[np.int64]
    lengths: NDArray[np.int64]
    steps: NDArray[np.int64]  # the clock: close times (ms) some pair acts at
    params: NDArray[np.float64]  # (pairs, kernel parameters)


def portfolio_inputs(
    config: PortfolioConfig,
    candles: Mapping[str, pd.DataFrame],
    window: tuple[datetime | None, datetime | None],
    overrides: Overrides,
    limits: RiskLimits | None,
    params: Mapping[str, Mapping[str, int | float]] | None = None,
    stated: Mapping[str, ResearchTerms] | None = None,
) -> PortfolioInputs:
    """Check and cut every configured pair's inputs (``portfolio.run_portfolio`` says how).
    ``params``: a pair's strategy parameters in place of its configured ones (a sweep's set);
    ``stated``: each pair's terms in place of the config's (a receipt's, run again)."""
    entries = list(config.pairs)
    if not entries:
        raise UserInputError("the config has no [[pairs]] to backtest")
    since, until = window
    if since is not None and until is not None and since >= until:
        raise UserInputError(
            f"--since {_iso(to_ms(since))} is not before --until {_iso(to_ms(until))}"
        )
    terms = [
        stated[entry.pair]
        if stated
        else research_terms(config, entry.pair, overrides, limits=limits)
        for entry in entries
    ]
    total = sum(term.capital_share for term in terms)
    if total > 1 + _SHARE_ROOM:
        shares = ", ".join(f"{t.capital_share:g}" for t in terms)
        raise UserInputError(f"the capital shares sum to {total:g}, over 1 ({shares})")
    frames = {entry.pair: _frame(entry, candles) for entry in entries}
    timeframe = _one_timeframe(entries, frames)
    step = timeframe_seconds(timeframe) * 1000
    first = min(int(frame["timestamp"].iloc[0]) for frame in frames.values()) + 2 * step
    start = first if since is None else max(first, to_ms(since) + step)
    end = min(int(frame["timestamp"].iloc[-1]) for frame in frames.values())  # last close - step
    end = end if until is None else min(end, to_ms(until))
    pairs, parts = [], []
    for entry, term in zip(entries, terms, strict=True):
        frame = frames[entry.pair]
        close_ms = frame["timestamp"].to_numpy(np.int64) + step
        lo = int(np.searchsorted(close_ms, start, side="left"))
        hi = int(np.searchsorted(close_ms, end, side="right"))
        if hi <= lo:
            raise UserInputError(
                f"{entry.pair} has no candles in the window ({_iso(start)} to {_iso(end)})"
            )
        chosen = (params or {}).get(entry.pair, entry.params)
        strategy = build_strategy(entry.strategy, dict(chosen))
        enough_candles(strategy, hi + 1, f"{entry.pair} up to the window's end")
        part = _columns(frame, strategy, term, step, lo, hi + 1)
        first_buy = max(strategy.ready_after - lo, 1)  # as a one-pair backtest's buy and hold
        pairs.append(PairInput(entry.pair, strategy, term, part["close_ms"] - step, first_buy))
        parts.append((part, _packed(strategy, term, part, step)))
    lengths = np.array([len(part["close"]) for part, _ in parts], np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    columns = {name: np.concatenate([part[name] for part, _ in parts]) for name in COLUMNS}
    close_all = np.ascontiguousarray(columns["close_ms"], np.int64)
    return PortfolioInputs(
        pairs=tuple(pairs),
        timeframe=timeframe,
        columns=columns,
        offsets=offsets,
        lengths=lengths,
        steps=union_clock(close_all, offsets, lengths, end),
        params=np.stack([packed for _, packed in parts]),
    )


def _frame(entry: PairEntry, candles: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    frame = candles.get(entry.pair)
    if frame is None or frame.empty:
        raise UserInputError(f"{entry.pair} has no candles to backtest")
    return frame


def _one_timeframe(entries: Sequence[PairEntry], frames: Mapping[str, pd.DataFrame]) -> str:
    """The pairs' one timeframe, as configured; their candles must have it too."""
    configured = {entry.pair: entry.timeframe for entry in entries}
    if len(set(configured.values())) > 1:
        listed = ", ".join(f"{pair} {timeframe}" for pair, timeframe in configured.items())
        raise UserInputError(
            f"the pairs trade on different timeframes ({listed}): a portfolio backtest needs one"
        )
    timeframe = entries[0].timeframe
    for pair, frame in frames.items():
        if len(frame) > 1 and (found := infer_timeframe(frame)) != timeframe:
            raise UserInputError(
                f"{pair}: its candles are {found}, the other pairs' {timeframe}: a portfolio "
                "backtest needs candles of one timeframe"
            )
    return timeframe


def _columns(
    frame: pd.DataFrame, strategy: Strategy, terms: ResearchTerms, step: int, lo: int, hi: int
) -> dict[str, NDArray[Any]]:
    """One pair's kernel columns over rows [lo, hi) of its candles: signals, ATR and the
    volatility scale computed over all of them (the rows before only warm them up)."""
    limits = terms.limits
    close = frame["close"].to_numpy(np.float64)
    codes = strategy.signals(frame).to_numpy()
    atr = (
        strategy.atr(frame).to_numpy(np.float64)
        if strategy.exit_policy.atr_stop
        else np.full(len(frame), np.nan)
    )
    scale = volatility_scales(
        np.ascontiguousarray(close),
        limits.volatility_short,
        limits.volatility_long,
        limits.volatility_floor,
    )
    open_ms = frame["timestamp"].to_numpy(np.int64)[lo:hi]
    close_ms = open_ms + step
    part: dict[str, NDArray[Any]] = {
        column: frame[column].to_numpy(np.float64)[lo:hi] for column in (*OHLC, "volume")
    }
    part["codes"] = codes[lo:hi].astype(np.int8)
    part["atr"] = atr[lo:hi]
    part["scale"] = scale[lo:hi]
    part["day"] = local_days(close_ms, terms.timezone)
    part["close_ms"] = close_ms
    part["act_ms"] = np.append(open_ms[1:], close_ms[-1])
    return part


def _packed(
    strategy: Strategy, terms: ResearchTerms, part: dict[str, NDArray[Any]], step: int
) -> NDArray[np.float64]:
    policy = strategy.exit_policy
    clock = KernelClock(part["close_ms"], part["act_ms"], part["day"], step)
    costs = KernelCosts(
        terms.balance,
        terms.fee_rate,
        terms.slippage,
        terms.capital_share,
        terms.limits,
        terms.fee_in_coin,
        terms.volume_share,
    )
    exits = KernelExits(
        policy.stop_loss,
        policy.take_profit,
        policy.trailing_stop,
        policy.atr_stop,
        policy.entry_offset,
        terms.resting_stops,
    )
    return pack(costs, exits, clock)


def _iso(milliseconds: int) -> str:
    return f"{pd.Timestamp(milliseconds, unit='ms'):%Y-%m-%d %H:%M}"
