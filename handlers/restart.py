"""What the chat keeps across a restart: the groups' minutes and the open Confirm prompts.

Telegram keeps counting a group's minute across our restart, and a prompt's message keeps its
buttons after the process that could answer them is gone. So at a clean stop each group's
sends of the last minute are kept (the next start counts them), and every prompt is kept
while it is open (a start after a crash edits the ones left to "Expired"). A start that finds
the last life still marked running knows it crashed: its groups' minutes are unknown.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from bot.chat.chat_state import ChatState
from bot.core.ports import Clock

log = logging.getLogger(__name__)

GROUPS_KEY = "chat.groups"  # {"running": bool, "sends": {group: [Unix seconds]}}
_STEP_SLACK = 1.0  # a kept send this far in the future: the host's clock was set back
PROMPTS_KEY = "chat.prompts"  # {token: [chat id, message id, command]} while open


class ChatMemory:
    """The chat's state kept in the bot's state store between lives."""

    def __init__(
        self, state: ChatState, wall: Clock, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._state = state
        self._wall = wall
        self._monotonic = monotonic
        self._prompts: dict[str, list[Any]] = {}  # open, this life's and the last's
        self._left: list[tuple[str, int, int, str]] = []  # the last life's, at the start
        self._began = False

    async def begin(self) -> dict[int | str, list[float]] | None:
        """Marks this life running, and reads the prompts the last life left open; returns its
        group sends (monotonic seconds, as this process counts), {} when there was none, None
        when it crashed or what it kept cannot be read (unknown: the start goes on)."""
        try:
            prompts = await self._state.kept(PROMPTS_KEY)
        except Exception as error:  # any unreadable value: as after a crash
            log.warning("the chat's kept prompts cannot be read (%s): dropped", error)
            prompts = None
        self._prompts, self._left = _prompts(prompts)
        try:
            kept = await self._state.kept(GROUPS_KEY)
        except Exception as error:
            log.warning("the chat's kept groups cannot be read (%s): minutes unknown", error)
            kept = {"running": True}
        try:
            await self._state.keep(GROUPS_KEY, {"running": True})
        except (sqlite3.Error, OSError) as error:  # the chat starts all the same
            log.warning("the chat's state cannot be kept (%s): groups' minutes unknown", error)
            return None
        self._began = True
        if kept is None:  # the first start: nothing was sent before
            return {}
        sends = _sends(kept)
        if sends is None:
            return None
        wall, now = self._wall.now().timestamp(), self._monotonic()
        if any(at > wall + _STEP_SLACK for sent in sends.values() for at in sent):
            # the host's clock was stepped back since the stop: when those sends were made is
            # unknown, as after a crash (a minute for all but admins), never as long as the step
            log.warning(
                "the chat's kept group sends lie in the future (the host's clock was "
                "set back): groups' minutes unknown"
            )
            return None
        return {group: [now - (wall - at) for at in sent] for group, sent in sends.items()}

    async def end(self, sends: dict[int | str, list[float]]) -> None:
        """A clean stop: the groups' sends of the last minute (monotonic seconds) kept, and
        the prompts still open (a close whose own commit the stop cut short, a slow disk, is
        kept here: a confirmed prompt is never "Expired" by the next start)."""
        if not self._began:
            return
        await self._keep(PROMPTS_KEY, dict(self._prompts))
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
            await self._state.keep(key, value)
        except (sqlite3.Error, OSError) as error:
            log.warning("the chat's %s cannot be kept: %s", key, error)


def _prompts(raw: Any) -> tuple[dict[str, list[Any]], list[tuple[str, int, int, str]]]:
    """The kept open prompts, and the same as (token, chat id, message id, command); a value
    of the wrong shape is dropped with a warning (its buttons are only not expired)."""
    if raw is None:
        return {}, []
    try:
        left = [
            (str(token), int(chat), int(message), str(command))
            for token, (chat, message, command) in raw.items()
        ]
    except (TypeError, ValueError, AttributeError) as error:
        log.warning("the chat's kept prompts are not readable (%r: %s): dropped", raw, error)
        return {}, []
    return {token: [chat, message, command] for token, chat, message, command in left}, left


def _sends(kept: Any) -> dict[int | str, list[float]] | None:
    """The last life's group sends (Unix seconds) from its kept value; None when it crashed
    (still marked running) or the value has the wrong shape (warned: as after a crash)."""
    try:
        if kept.get("running"):
            return None
        return {
            _group(str(group)): [_seconds(at) for at in sent]
            for group, sent in (kept.get("sends") or {}).items()
        }
    except (TypeError, ValueError, AttributeError) as error:
        log.warning(
            "the chat's kept groups are not readable (%r: %s): minutes unknown", kept, error
        )
        return None


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(f"not a time: {value!r}")
    return float(value)


def _group(key: str) -> int | str:
    """A group's key as kept in JSON (always a string) back to PTB's chat id."""
    try:
        return int(key)
    except ValueError:
        return key
