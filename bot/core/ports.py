"""The ports the engine and services talk to; adapters live in bot/exchange and storage/."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from bot.core.domain import (
    Alert,
    AlertPriority,
    AuditEntry,
    DustConversion,
    EquitySnapshot,
    ExecutionReport,
    Fill,
    OpenOrder,
    Order,
    OrderIntent,
    OrderStatus,
    PairRun,
    Position,
    RunState,
    SweepRow,
)


class Clock(Protocol):
    def now(self) -> datetime:
        """The wall clock (UTC); it may be stepped."""
        ...

    def monotonic(self) -> float:
        """Seconds that never step: only differences between readings mean anything."""
        ...


class Transactions(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[Any]: ...


class PriceFeed(Protocol):
    async def price(self, pair: str, now: datetime) -> float: ...

    async def candle_after(self, pair: str, since: datetime, now: datetime) -> pd.Series | None:
        """The first candle opening at or after ``since`` that has closed by ``now``, if any."""
        ...

    async def volume(self, pair: str, now: datetime) -> float | None:
        """The base volume an order at ``now`` trades into: the forming candle's in a replay,
        the last closed candle's live; None when not known."""
        ...

    async def fill_time(self, pair: str, now: datetime) -> datetime:
        """When an order sent at ``now`` trades: ``now``, but inside a gap of this pair's data
        in a replay (another pair's candle still forming), when its trading resumed."""
        ...


class CandleSource(PriceFeed, Protocol):
    async def closed_candles(
        self, pair: str, now: datetime, limit: int, timeframe: str | None = None
    ) -> pd.DataFrame: ...


@runtime_checkable
class ReadsByVenueId(Protocol):
    """An exchange that reads one order by the venue's own id (shown on its website)."""

    async def read_by_venue_id(self, order: Order, venue_order_id: str) -> ExecutionReport:
        """``order`` as the venue's order ``venue_order_id`` says, once it is shown to be
        ``order`` (its client order id); UserInputError otherwise."""
        ...


@runtime_checkable
class Retrying(Protocol):
    """An exchange that retries a failed request, and can be told not to for a while."""

    def one_attempt(self) -> AbstractContextManager[None]:
        """Within it, each request is made once (an admin waits for the answer)."""
        ...


@runtime_checkable
class BalanceParts(Protocol):
    """An exchange that tells the free part of each balance from what open orders hold."""

    async def fetch_balance_parts(self) -> tuple[dict[str, float], dict[str, float]]:
        """Totals and free amounts per asset."""
        ...


@runtime_checkable
class AccountFeeReader(Protocol):
    """An exchange that reads the account's own taker fee per pair (its volume tier)."""

    async def load_account_fees(self, pairs: Sequence[str]) -> dict[str, float]: ...


@runtime_checkable
class DustConverter(Protocol):
    """An exchange that can convert dust through its API (bot/exchange/dust.py)."""

    dust_target: str | None  # what dust becomes (BNB); None: this venue offers no conversion

    async def convertible_dust(self) -> dict[str, float]: ...

    async def convert_dust(self, assets: Sequence[str]) -> list[DustConversion]: ...

    async def dust_conversions(self, since: datetime) -> list[DustConversion]: ...


class Exchange(Protocol):
    async def create_market_order(self, intent: OrderIntent) -> ExecutionReport: ...

    async def fetch_balances(self) -> dict[str, float]: ...

    async def lookup(self, order: Order) -> ExecutionReport | None:
        """What the exchange knows of a journaled order, by client order id; None: never got it."""
        ...

    async def open_orders(self, pairs: Sequence[str]) -> list[OpenOrder]:
        """Every order resting on the exchange in ``pairs``, whoever placed it."""
        ...

    async def create_limit_order(self, intent: OrderIntent) -> ExecutionReport:
        """A limit buy resting at ``intent.limit_price`` (for ``intent.quote_amount``)."""
        ...

    @property
    def supports_stop_orders(self) -> bool:
        """A stop-loss can rest on the exchange (else: checked per candle)."""
        ...

    async def place_stop(self, intent: OrderIntent) -> ExecutionReport:
        """A stop-loss sell resting on the exchange until ``intent.stop_price``."""
        ...

    async def cancel_order(self, order: Order) -> ExecutionReport | None:
        """Cancel a resting order; what became of it (it may have filled first)."""
        ...

    def too_small(self, pair: str, amount: float, price: float) -> str | None:
        """Why the exchange would refuse an order this small (dust), or None."""
        ...


class MarketCatalog(Protocol):
    """What can be traded: raises NotFound / UserInputError naming the closest choices."""

    def check_pair(self, pair: str) -> None: ...

    def check_timeframe(self, pair: str, timeframe: str) -> None: ...


class OrderJournal(Protocol):
    async def add(self, intent: OrderIntent) -> Order: ...

    async def get(self, client_order_id: str) -> Order | None: ...

    async def require(self, client_order_id: str) -> Order:
        """The journaled order; KeyError when there is none."""
        ...

    async def not_final(self) -> list[Order]:
        """Orders whose outcome is not settled yet, oldest first."""
        ...

    async def update(
        self,
        client_order_id: str,
        status: OrderStatus,
        now: datetime,
        *,
        filled: float | None = None,
        average_price: float | None = None,
        exchange_order_id: str | None = None,
        note: str = "",
    ) -> Order: ...


class FillHistory(Protocol):
    async def all(self, since: datetime | None = None) -> list[Fill]: ...


class FillRepository(FillHistory, Protocol):
    async def add(self, fill: Fill) -> bool: ...

    async def seen(self, trade_id: str) -> bool: ...

    async def add_beyond(self, fill: Fill, amount: float, users: float) -> None: ...


class PositionRepository(Protocol):
    async def save(self, position: Position) -> None: ...

    async def all(self) -> list[Position]: ...


class StateStore(Protocol):
    async def get(self, key: str, default: Any = None) -> Any: ...

    async def set(self, key: str, value: Any, now: datetime) -> None: ...


class EquityHistory(Protocol):
    async def between(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> list[EquitySnapshot]: ...


class EquityRepository(EquityHistory, Protocol):
    async def add(self, snapshot: EquitySnapshot) -> None: ...


class AlertRepository(Protocol):
    async def add(
        self,
        kind: str,
        priority: AlertPriority,
        text: str,
        now: datetime,
        photo: bytes | None = None,
    ) -> int: ...

    async def pending(self, limit: int = 100) -> list[Alert]: ...

    async def mark_delivered(self, alert_id: int, now: datetime) -> None: ...

    async def mark_failed(self, alert_id: int) -> None: ...


class AlertSink(Protocol):
    """Where alerts end up: the console now, Telegram later. Raises when delivery failed."""

    async def send(self, alert: Alert) -> None: ...


class UnstoredSink(Protocol):
    """Delivery that writes nothing, for an alert the full disk could not store."""

    async def send_unstored(self, text: str, reached: set[int]) -> None:
        """``text`` to every admin chat not in ``reached``, adding each chat as it is
        reached; raises when one could not be (a retry skips those in ``reached``)."""
        ...


class ChatSink(AlertSink, UnstoredSink, Protocol):
    """A chat front end's sink: the outbox's alerts, and those the disk could not store."""


class ChatFrontend(Protocol):
    """A chat front end (Telegram, in handlers/), built by a ``ChatFactory`` (bot/chat)."""

    @property
    def sink(self) -> ChatSink: ...

    def start(self) -> None:
        """Connect in the background; never blocks trading."""

    async def stop(self) -> None: ...


class AlertDeliveries(Protocol):
    """Which chats each alert reached, and which a send went out to without an answer: a chat
    front end sends one alert to several chats, once each."""

    async def delivered_chats(self, alert_id: int) -> set[int]: ...

    async def mark_delivered_to(self, alert_id: int, chat_id: int, now: datetime) -> None: ...

    async def attempted_chats(self, alert_id: int) -> set[int]: ...

    async def mark_attempted(self, alert_id: int, chat_id: int) -> None: ...

    async def clear_attempt(self, alert_id: int, chat_id: int) -> None: ...


class AlertBacklog(Protocol):
    async def backlog(self) -> int:
        """How many alerts no chat has taken yet."""
        ...


class LatestEquity(Protocol):
    async def latest(self) -> EquitySnapshot | None:
        """The newest snapshot, or None before the first."""
        ...


class PendingAlerts(AlertBacklog, Protocol):
    async def oldest_pending(self) -> datetime | None:
        """When the oldest undelivered alert was pushed, or None."""
        ...


class OrderHistory(Protocol):
    async def recent(self, limit: int = 50) -> list[Order]:
        """The latest ``limit`` orders, newest first."""
        ...


class AuditLog(Protocol):
    """Who ran which command, and what came of it."""

    async def add(
        self, *, actor: str, command: str, arguments: Sequence[str], result: str, now: datetime
    ) -> int: ...

    async def add_many(
        self, entries: Sequence[tuple[str, str, Sequence[str], str]], now: datetime
    ) -> None:
        """(actor, command, arguments, result) entries at ``now``, in one commit."""
        ...

    async def latest(self, limit: int) -> list[AuditEntry]:
        """The most recent entries, newest first."""
        ...


class PairRunRepository(Protocol):
    async def add(
        self,
        *,
        pair: str,
        strategy: str,
        timeframe: str,
        params: Mapping[str, Any],
        capital_share: float,
        now: datetime,
        state: RunState = RunState.RUNNING,
    ) -> PairRun:
        """A new run; DuplicateRun when the pair has an active one already."""
        ...

    async def latest_for(self, pair: str) -> PairRun:
        """The most recent run of ``pair``, stopped or not."""
        ...

    async def set_state(self, run_id: int, state: RunState, now: datetime) -> PairRun: ...


class CandleRepository(Protocol):
    """Candles kept on disk, per exchange, pair and timeframe (timestamps in ms)."""

    async def add_frame(self, exchange: str, pair: str, timeframe: str, frame: pd.DataFrame) -> int:
        """Store candles from a frame with our columns; returns how many were new."""
        ...

    async def frame(
        self,
        exchange: str,
        pair: str,
        timeframe: str,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> pd.DataFrame:
        """Candles opening in [since, until), oldest first, as a frame with our columns."""
        ...

    async def last_timestamp(self, exchange: str, pair: str, timeframe: str) -> int | None: ...

    async def timestamps(self, exchange: str, pair: str, timeframe: str) -> np.ndarray: ...


class SweepStore(Protocol):
    """Sweeps and their rows, kept as they finish so a crash loses none."""

    async def create(
        self, strategy: str, spec: dict[str, Any], tasks: int, now: datetime
    ) -> int: ...

    async def add(self, sweep_id: int, rows: Sequence[SweepRow]) -> None: ...

    async def finish(self, sweep_id: int, now: datetime) -> None: ...

    async def rows(self, sweep_id: int) -> list[SweepRow]: ...


class VetoRecorder(Protocol):
    async def add(self, *, run_id: int, pair: str, reason: str, now: datetime) -> None: ...


class CandleHistory(Protocol):
    async def candles(self, pair: str, timeframe: str, days: int, now: datetime) -> pd.DataFrame:
        """Closed candles of the last ``days`` before ``now``, oldest first."""
        ...


class CandleFeed(Protocol):
    """Where candles are downloaded from (an exchange's OHLCV, page by page)."""

    name: str

    def check_pair(self, pair: str) -> None: ...

    def check_timeframe(self, timeframe: str) -> None: ...

    @property
    def ohlcv_limit(self) -> int: ...

    async def fetch_candles(self, pair: str, timeframe: str, since_ms: int) -> pd.DataFrame: ...


class LiveFeed(Protocol):
    """An exchange's candles and last price, for the service trading on it."""

    async def fetch_candles(self, pair: str, timeframe: str, since_ms: int) -> pd.DataFrame: ...

    @property
    def ohlcv_limit(self) -> int: ...  # the most candles one page holds

    async def fetch_price(self, pair: str) -> float: ...

    def check_pair(self, pair: str) -> None: ...

    def check_timeframe(self, timeframe: str) -> None: ...
