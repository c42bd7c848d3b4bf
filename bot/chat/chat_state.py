"""What a chat front end keeps across restarts and tells health: whether commands can be
received, which clock judges their ages, and its own kept values (JSON)."""

from __future__ import annotations

from typing import Any

from bot.core.ports import Clock, StateStore
from bot.ops.health import CLOCK_KEY, COMMANDS_KEY


class ChatState:
    def __init__(self, state: StateStore | None, clock: Clock) -> None:
        """``state`` None: nothing is kept (a front end still runs)."""
        self._state = state
        self._clock = clock

    async def receiving(self, problem: str | None) -> None:
        """Keep whether chat commands can be received (``problem`` says why not) for health."""
        if self._state is not None:
            await self._state.set(COMMANDS_KEY, {"problem": problem}, self._clock.now())

    async def judged_by(self, source: str) -> None:
        """Keep which clock chat commands' ages are judged by (for health)."""
        if self._state is not None:
            await self._state.set(CLOCK_KEY, {"source": source}, self._clock.now())

    async def kept(self, key: str) -> Any:
        """What the chat front end kept under ``key`` across restarts (None: nothing)."""
        return None if self._state is None else await self._state.get(key)

    async def keep(self, key: str, value: Any) -> None:
        """Keep ``value`` (JSON) under ``key`` for the chat front end's next start."""
        if self._state is not None:
            await self._state.set(key, value, self._clock.now())
