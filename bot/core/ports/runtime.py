"""Ports every part runs on: the clock and the unit of work (a transaction)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The wall clock (UTC); it may be stepped."""
        ...

    def monotonic(self) -> float:
        """Seconds that never step: only differences between readings mean anything."""
        ...


class Transactions(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[Any]: ...
