"""Ports of what pairpilot records: the order journal, fills, positions, state, equity, pair
runs, vetoes, the audit trail, sweeps. Adapters: the Sqlite*Repository classes in storage/."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from bot.core.domain import (
    AuditEntry,
    EquitySnapshot,
    Fill,
    Order,
    OrderIntent,
    OrderStatus,
    PairRun,
    Position,
    RunState,
    SweepRow,
)


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
    async def all(self, since: datetime | None = None, pair: str | None = None) -> list[Fill]:
        """Fills booked since ``since`` (all: None), of ``pair`` only where given."""
        ...


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


class LatestEquity(Protocol):
    async def latest(self) -> EquitySnapshot | None:
        """The newest snapshot, or None before the first."""
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


class SweepStore(Protocol):
    """Sweeps and their rows, kept as they finish so a crash loses none."""

    async def create(
        self, strategy: str, spec: dict[str, Any], tasks: int, now: datetime
    ) -> int: ...

    async def add(self, sweep_id: int, rows: Sequence[SweepRow]) -> None: ...

    async def finish(self, sweep_id: int, now: datetime) -> None: ...

    async def rows(self, sweep_id: int) -> list[SweepRow]: ...


class ReceiptStore(Protocol):
    """Research receipts as plain JSON records (``Receipt.record()``), by id."""

    async def add(self, record: Mapping[str, Any]) -> None: ...

    async def get(self, receipt_id: str) -> dict[str, Any] | None: ...


class VetoRecorder(Protocol):
    async def add(self, *, run_id: int, pair: str, reason: str, now: datetime) -> None: ...
