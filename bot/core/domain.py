"""Domain types shared by every stage: plain frozen values, no I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def to_ms(moment: datetime) -> int:
    """Milliseconds since the Unix epoch: how candle times and stored times are written."""
    return int(round(moment.timestamp() * 1000))


def from_ms(milliseconds: int) -> datetime:
    return datetime.fromtimestamp(milliseconds / 1000, tz=UTC)


class Side(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"


class Action(enum.StrEnum):
    ENTER = "enter"
    EXIT = "exit"
    HOLD = "hold"


class OrderStatus(enum.StrEnum):
    NEW = "new"  # journaled, not yet acknowledged by the exchange
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self in _FINAL_STATUSES


_FINAL_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)


class RunState(enum.StrEnum):
    RUNNING = "running"
    PAUSED = "paused"  # no new entries; exits are still managed
    STOPPED = "stopped"


class AlertPriority(enum.IntEnum):
    """Lower is more urgent: halts and errors go out before trades, trades before info."""

    CRITICAL = 0
    ERROR = 1
    TRADE = 2
    INFO = 3


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLCV candle; ``time`` is its open time (UTC)."""

    time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class Signal:
    """What a strategy wants after the candle that opened at ``candle_time`` closed."""

    pair: str
    candle_time: datetime
    action: Action
    price: float  # the close of that candle: a reference, never a fill price
    reason: str = ""


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """An order the risk step approved, before it reaches an exchange."""

    client_order_id: str
    run_id: int
    pair: str
    side: Side
    amount: float  # base asset; for a buy with quote_amount, the estimate at the reference
    reference_price: float
    created_at: datetime
    reason: str = ""
    quote_amount: float | None = None  # a buy that spends exactly this, fee included
    trigger_price: float | None = None  # a protective sell that triggered at this price
    stop_price: float | None = None  # a stop-loss sell resting on the exchange until this price
    limit_price: float | None = None  # a limit buy resting at this price (one candle)


@dataclass(frozen=True, slots=True)
class Order:
    client_order_id: str
    run_id: int
    pair: str
    side: Side
    amount: float
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    filled: float = 0.0
    average_price: float | None = None
    exchange_order_id: str | None = None
    reason: str = ""
    reference_price: float | None = None  # its limit, or the price it was expected at
    kind: str | None = None  # "market", "limit" or "stop"; None: journaled before it was kept
    quote_amount: float | None = None  # a buy sized in the quote: what it may spend

    @property
    def may_rest(self) -> bool:
        """Whether the order may rest on the venue, and fill, after it was sent."""
        return self.kind != "market"

    def as_intent(self) -> OrderIntent:
        """The journaled order as the intent it was sent as (no reference price): what a
        report on it is built from when the venue is asked again."""
        return OrderIntent(
            self.client_order_id,
            self.run_id,
            self.pair,
            self.side,
            self.amount,
            0.0,
            self.created_at,
            self.reason,
        )


# The largest starting balance a paper account or a backtest takes, in the quote currency: far
# above any account, far below where float64 sums lose every cent (1e308 zeroes every return).
MAX_BALANCE = 1e12
CONVERSION_PREFIX = "dust-"  # a conversion's journal row and fill: dust-<transfer id>-<asset>


@dataclass(frozen=True, slots=True)
class Fill:
    client_order_id: str
    pair: str
    side: Side
    amount: float
    price: float
    fee: float  # in the quote currency; negative for a maker rebate
    time: datetime
    trade_id: str
    # The part of ``fee`` paid in a third currency (BNB), valued in the quote at the price of
    # the moment: a cost of the trade, but not taken from the quote cash.
    fee_outside: float = 0.0
    fee_asset: str = ""  # the asset the exchange charged the fee in ("" when unknown)
    # The fee in ``fee_asset``'s own units as the exchange charged it (0.000625 BNB); 0 when
    # not known (fills booked before it was kept, a fee charged in several assets).
    fee_amount: float = 0.0

    @property
    def notional(self) -> float:
        return self.amount * self.price

    @property
    def cash_fee(self) -> float:
        """The part of the fee the quote cash pays."""
        return self.fee - self.fee_outside

    @property
    def is_conversion(self) -> bool:
        """Books a dust conversion (/dust): it closes no trade of its own (the exit that left
        the dust closed it, the dust valued at nothing)."""
        return self.client_order_id.startswith(CONVERSION_PREFIX)


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """What an exchange says happened to an order."""

    client_order_id: str
    exchange_order_id: str
    status: OrderStatus
    filled: float
    average_price: float | None
    fills: tuple[Fill, ...]


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """An order resting on the exchange, as the exchange lists it (ours or not)."""

    pair: str
    client_order_id: str
    side: str
    amount: float
    price: float | None


@dataclass(frozen=True, slots=True)
class Position:
    """An open (or flat, amount 0) long spot position in one pair."""

    pair: str
    amount: float
    average_price: float
    realised_pnl: float
    fees: float
    opened_at: datetime | None
    updated_at: datetime

    def unrealised_pnl(self, price: float) -> float:
        return (price - self.average_price) * self.amount


@dataclass(frozen=True, slots=True)
class PairRun:
    """A pair the service trades with one strategy, timeframe and share of the capital."""

    id: int
    pair: str
    strategy: str
    timeframe: str
    params: dict[str, Any]
    capital_share: float
    state: RunState
    created_at: datetime
    updated_at: datetime


class DuplicateRun(Exception):
    """A pair already has a running or paused run (the journal keeps one active run a pair)."""


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """How entries are sized and when they are refused. Fractions are of equity."""

    position_fraction: float = 0.99  # of the run's share of equity, per entry
    min_order_value: float = 10.0  # in the quote currency; smaller entries are refused
    max_position_fraction: float = 0.20  # one asset's position, at entry
    max_total_exposure: float = 1.0  # all open positions together, at entry
    max_open_positions: int = 5
    risk_per_trade: float = 0.0  # lose at most this at the first stop (0: size by fraction)
    daily_loss_limit: float = 0.05  # of the day's starting equity; halts entries for the day
    max_drawdown: float = 0.15  # from the equity peak; halts entries until resumed
    cooldown_losses: int = 0  # this many losing trades in a row start a cooldown (0: off)
    cooldown_candles: int = 0  # candles without entries after that
    volatility_short: int = 0  # candles of recent volatility (0: no volatility scaling)
    volatility_long: int = 0  # candles of the longer-run volatility it is compared with
    volatility_floor: float = 0.25  # the smallest scale an entry is shrunk to


@dataclass(frozen=True, slots=True)
class EquitySnapshot:
    time: datetime
    equity: float
    cash: float


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    kind: str
    priority: AlertPriority
    text: str
    created_at: datetime
    delivered_at: datetime | None = None
    attempts: int = 0
    photo: bytes | None = None  # a chart sent with the text as its caption


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    time: datetime
    actor: str
    command: str
    arguments: list[str] = field(default_factory=list)
    result: str = ""


@dataclass(frozen=True, slots=True)
class Trade:
    """A round trip (entry to exit) in one pair, for reports and backtest output."""

    pair: str
    entry_time: datetime
    exit_time: datetime
    entry_price: float
    exit_price: float
    amount: float
    pnl: float  # net of both fees
    fee: float
    exit_reason: str = ""  # signal, stop_loss, take_profit, trailing_stop, atr_stop

    @property
    def holding_seconds(self) -> float:
        return (self.exit_time - self.entry_time).total_seconds()

    @property
    def cost(self) -> float:
        """What the entry cost before fees: the base for the trade's return."""
        return self.amount * self.entry_price

    @property
    def return_pct(self) -> float:
        return self.pnl / self.cost if self.cost else 0.0


@dataclass(frozen=True, slots=True)
class SweepRow:
    """A parameter sweep's result: one combination on one series (or one walk-forward window
    of it)."""

    pair: str
    timeframe: str
    segment: str  # "full", or "is-N" / "oos-N" for fold N
    params: tuple[tuple[str, int | float], ...]
    score: float | None  # the objective; None when the drawdown constraint failed
    metrics: dict[str, Any] = field(hash=False, compare=False)

    @property
    def key(self) -> tuple[str, str, str, tuple[tuple[str, int | float], ...]]:
        return (self.pair, self.timeframe, self.segment, self.params)


@dataclass(frozen=True, slots=True)
class DustConversion:
    """One asset a venue converted from dust into ``target`` (Binance: BNB), as it reports it."""

    asset: str
    amount: float  # of ``asset``: its whole free balance on the account
    received: float  # of ``target``, net of the venue's charge
    charge: float  # of ``target``
    target: str
    transfer_id: str
    time: datetime
