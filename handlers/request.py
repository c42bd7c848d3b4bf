"""What a chat command's run gets (the services, its words, who asked) and what it answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.chat.cockpit import Cockpit
from bot.chat.replies import Photo, Progress
from bot.core.errors import UserInputError

Reply = str | Photo  # Telegram HTML, or a chart with its caption in it


@dataclass(frozen=True, slots=True)
class Request:
    cockpit: Cockpit
    arguments: list[str]
    actor: str  # the user's id, as text
    progress: Progress  # plain text; shown in the command's progress message
    usage: str  # the command's, for a usage error

    def count(self, default: int, most: int = 100) -> int:
        """The first argument as a count from 1 to ``most`` (``default`` without one)."""
        if not self.arguments:
            return default
        try:
            count = int(self.arguments[0])
        except ValueError:
            raise UserInputError(
                f"{self.arguments[0]!r} is not a count; give a whole number"
            ) from None
        if not 1 <= count <= most:
            raise UserInputError(f"count {count} must be from 1 to {most}")
        return count

    def single(self) -> str:
        """The one argument the command takes (else a usage error)."""
        if len(self.arguments) != 1:
            raise UserInputError(f"usage: {self.usage}")
        return self.arguments[0]


Run = Callable[[Request], Awaitable[Reply]]  # parses the words, asks a service, renders
