"""How old a chat command is, by Telegram's clock: whether it may still change state by
itself, or must ask to be confirmed (a command that waited while the bot was down)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from html import escape

from telegram import Update
from telegram.error import TelegramError

from bot.core.ports import Clock
from handlers.status_message import READING, StatusMessage
from handlers.telegram_clock import TelegramClock

log = logging.getLogger(__name__)


class CommandAges:
    def __init__(
        self,
        *,
        telegram: TelegramClock,
        wall: Clock,
        arrival: Callable[[int], float | None],
        max_age: float,
    ) -> None:
        """``arrival``: when an update arrived, in ``wall``'s monotonic seconds (a command's
        age is judged then, not after it waited in its chat's line); ``max_age``: seconds
        after which a command no longer changes anything by itself."""
        self._telegram = telegram
        self._wall = wall
        self._arrival = arrival
        self.max_age = max_age

    def arrived(self, update: Update) -> float:
        """When ``update`` arrived (monotonic seconds)."""
        arrived = self._arrival(update.update_id)
        return self._wall.monotonic() if arrived is None else arrived

    async def _age(self, update: Update, name: str, bounded: bool, status: StatusMessage) -> float:
        """How old a command is (seconds), by the latest Telegram's clock can have read at
        its arrival: never underestimated, so an old command never looks fresh. When it must
        be ``bounded`` (a state change run without a Confirm) and no bound is known, the
        command's first message (``status``) makes one; if even that fails its age is not
        known (inf: a Confirm says so). Otherwise it is aged by the estimate (it then only
        says how old it was)."""
        assert update.message is not None
        arrived = self.arrived(update)
        latest = self._telegram.latest(arrived)
        if latest is None and bounded:
            try:
                await status.show(f"{READING} /{escape(name)}…")
            except TelegramError as error:
                log.warning("/%s: Telegram's clock not read (%s): asked to confirm", name, error)
            latest = self._telegram.latest(arrived)
            if latest is None:
                return math.inf
        latest = latest or self._telegram.telegram_time(arrived)
        return (latest - update.message.date).total_seconds()

    async def judge(
        self, update: Update, name: str, changes: bool, confirm: bool, status: StatusMessage
    ) -> tuple[float, bool]:
        """A command's age, and whether it is too old to change state without a Confirm. A
        /halt with no upper bound known never waits for a reading: halting is safe, so it
        runs at once, aged by the lower bound (its reply then says how old it is)."""
        if name == "halt" and self._telegram.latest(self.arrived(update)) is None:
            return self._least_age(update), False
        age = await self._age(update, name, changes and not confirm, status)
        return age, changes and age > self.max_age

    def _least_age(self, update: Update) -> float:
        """How old a command is at least, by the earliest Telegram's clock can have read
        at its arrival (0 when nothing is known)."""
        assert update.message is not None
        earliest = self._telegram.earliest(self.arrived(update))
        if earliest is None:
            return 0.0
        return max((earliest - update.message.date).total_seconds(), 0.0)
