"""What the chat's read commands show, as typed values: no words of a front end, no markup.

Prices come as text already (each venue quotes a pair's price in its own decimals, which only
the services know); every other figure is a number the front end formats.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.research.loaded_code import RunningCode


@dataclass(frozen=True, slots=True)
class Held:
    """An open position as a status line shows it."""

    amount: float
    price: str  # its average entry price
    pnl: float  # unrealised, 0 while no price is known


@dataclass(frozen=True, slots=True)
class RunRow:
    pair: str
    state: str  # running, paused...
    strategy: str
    timeframe: str
    held: Held | None  # None: flat
    fault: str | None = None  # "strategy error: ValueError: boom": why it was paused


@dataclass(frozen=True, slots=True)
class StatusView:
    mode: str
    exchange: str
    halt: str | None  # the halt's reason, None while trading is on
    equity: float
    today: float  # equity change since the day's start
    quote: str
    runs: tuple[RunRow, ...]


@dataclass(frozen=True, slots=True)
class PairRow:
    pair: str
    state: str
    strategy: str
    timeframe: str
    capital_share: float
    params: str  # "key=value ..." ("" without parameters)
    fault: str | None = None  # "strategy error: ValueError: boom": why it was paused
    code: RunningCode | None = None  # not the registry's code since a /reload; None: it is
    held: str = ""  # why the live gate holds it (strategy not asked), "" when it trades


@dataclass(frozen=True, slots=True)
class BalanceView:
    cash: float  # the books'
    quote: str
    balances: tuple[tuple[str, float], ...]  # the exchange's, by asset


@dataclass(frozen=True, slots=True)
class PositionRow:
    pair: str
    amount: float
    price: str
    unrealised: float
    dust: bool  # too small to sell: it goes with the next exit


@dataclass(frozen=True, slots=True)
class TradeRow:
    exit_time: datetime
    pair: str
    pnl: float
    return_pct: float
    entry: str
    exit: str


@dataclass(frozen=True, slots=True)
class OrderRow:
    created_at: datetime
    pair: str
    side: str
    amount: float
    status: str
    price: str | None  # average fill price, None before a fill


@dataclass(frozen=True, slots=True)
class ParamRow:
    name: str
    default: float
    minimum: float
    maximum: float


@dataclass(frozen=True, slots=True)
class StrategyRow:
    name: str
    origin: str  # "built-in", "file mine.py", "entry point pkg:Mine (distribution pkg 1.0)"
    check: str  # its stored check: bot/research/check_status.py CheckStatus.text()
    params: tuple[ParamRow, ...]


@dataclass(frozen=True, slots=True)
class RiskRow:
    name: str
    value: float
    unit: str | None  # "money" (in the quote), "fraction" (a share), None


@dataclass(frozen=True, slots=True)
class RiskView:
    quote: str
    rows: tuple[RiskRow, ...]
