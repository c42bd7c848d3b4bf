"""What the chat keeps across a restart: the groups' minutes and the open Confirm prompts.

Telegram keeps counting a group's minute across our restart, and a prompt's message keeps its
buttons after the process that could answer them is gone. So at a clean stop each group's
sends of the last minute are kept (the next start counts them), and every prompt is kept
while it is open (a start after a crash edits the ones left to "Expired"). A start that finds
the last life still marked running knows it crashed: its groups' minutes are unknown.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from bot.cockpit import Cockpit
from bot.ports import Clock

log = logging.getLogger(__name__)

GROUPS_KEY = "chat.groups"  # {"running": bool, "sends": {group: [Unix seconds]}}
PROMPTS_KEY = "chat.prompts"  # {token: [chat id, message id, command]} while open


class ChatMemory:
    """The chat's state kept in the bot's state store between lives."""

    def __init__(self, cockpit: Cockpit, wall: Clock,
                 monotonic: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._cockpit = cockpit
        self._wall = wall
        self._monotonic = monotonic
        self._prompts: dict[str, list[Any]] = {}  # open, this life's and the last's
        self._left: list[tuple[str, int, int, str]] = []  # the last life's, at the start
        self._began = False

    async def begin(self) -> dict[int | str, list[float]] | None:
        """Marks this life running, and reads the prompts the last life left open; returns its
        group sends (monotonic seconds, as this process counts), {} when there was none, None
        when it crashed (unknown)."""
        try:
            self._prompts = dict(await self._cockpit.chat_kept(PROMPTS_KEY) or {})
            kept = await self._cockpit.chat_kept(GROUPS_KEY)
            await self._cockpit.chat_keep(GROUPS_KEY, {"running": True})
        except (sqlite3.Error, OSError) as error:  # the chat starts all the same
            log.warning("the chat's kept state cannot be read (%s): groups' minutes unknown",
                        error)  # fmt: skip
            return None
        self._began = True
        self._left = [(token, int(chat), int(message), str(command))
                      for token, (chat, message, command) in self._prompts.items()]  # fmt: skip
        if kept is None:  # the first start: nothing was sent before
            return {}
        if kept.get("running"):
            return None
        wall, now = self._wall.now().timestamp(), self._monotonic()
        return {_group(group): [now - (wall - at) for at in sent]
                for group, sent in (kept.get("sends") or {}).items()}  # fmt: skip

    async def end(self, sends: dict[int | str, list[float]]) -> None:
        """A clean stop: the groups' sends of the last minute (monotonic seconds) kept."""
        if not self._began:
            return
        wall, now = self._wall.now().timestamp(), self._monotonic()
        kept = {str(group): [wall - (now - at) for at in sent] for group, sent in sends.items()}
        await self._keep(GROUPS_KEY, {"running": False, "sends": kept})
        self._began = False

    def left_open(self) -> list[tuple[str, int, int, str]]:
        """The prompts the last life left open: (token, chat id, message id, command); each
        stays kept until ``closed``."""
        left, self._left = self._left, []
        return left

    async def opened(self, token: str, chat_id: int, message_id: int, command: str) -> None:
        self._prompts[token] = [chat_id, message_id, command]
        await self._keep(PROMPTS_KEY, dict(self._prompts))

    async def closed(self, *tokens: str) -> None:
        """Prompts no longer open (answered, expired)."""
        for token in tokens:
            self._prompts.pop(token, None)
        await self._keep(PROMPTS_KEY, dict(self._prompts))

    async def _keep(self, key: str, value: Any) -> None:
        """Kept if the database takes it; the chat goes on either way (a prompt whose row
        is missing is only not expired after a crash)."""
        try:
            await self._cockpit.chat_keep(key, value)
        except (sqlite3.Error, OSError) as error:
            log.warning("the chat's %s cannot be kept: %s", key, error)


def _group(key: str) -> int | str:
    """A group's key as kept in JSON (always a string) back to PTB's chat id."""
    try:
        return int(key)
    except ValueError:
        return key
