"""A gate for the heavy jobs a chat can start (/backtest, /sweep): one runs at a time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bot.core.errors import UserInputError


class OneAtATime:
    """A heavy job (a backtest, a sweep) that runs one at a time: a second is refused clearly."""

    def __init__(self, kind: str) -> None:
        self._kind = kind
        self._running: str | None = None

    @contextmanager
    def hold(self, description: str) -> Iterator[str]:
        if self._running is not None:
            raise UserInputError(
                f"a {self._kind} is running ({self._running}); send yours "
                "again when it has finished"
            )
        self._running = description
        try:
            yield description
        finally:
            self._running = None
