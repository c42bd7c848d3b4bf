"""Admins' replies first in a group's rate limit.

Telegram takes about 20 messages a minute from a bot in one group and answers 429 past that.
PTB's AIORateLimiter queues every send to a group in one line, so a viewer's 25 queued replies
made an admin's answer in the same group wait a minute or more. Here a group's minute is
counted the same way, but others may use only part of it: the rest is kept for the admins,
whose sends take a free place at once and never queue behind anyone else's.

Telegram keeps counting a group's minute across our restart: the minutes are kept at a stop
and assumed at the next start, and after a crash (nothing kept) every group's minute counts
as full for a minute for all but admins. A send can still meet 429 (a private chat's burst
limit, about one message a second, is not counted here). PTB's limiter answers any 429 by
pausing every request for ``retry_after`` (other chats, admins' prompts, alerts); here a
chat's 429 pauses only that chat's sends, and the send is retried.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import AIORateLimiter

GROUP_PER_MINUTE = 20  # Telegram's limit for one group
KEPT_FOR_ADMINS = 4  # of those, places only admins' sends may take
_PERIOD = 60.0
_MARGIN = 0.25  # a send reaches Telegram a little after it takes its place: never one early
_FORGET_AFTER = 512  # groups remembered before idle ones are swept

# set while an admin's update is handled: every send it makes goes first
ADMIN_FIRST: ContextVar[bool] = ContextVar("admin_first", default=False)


class ChatPause:
    """One chat's 429: Telegram answered ``retry_after``, so nobody sends there before then."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._refused_until = 0.0

    def idle(self) -> bool:
        return self._now() >= self._refused_until

    def refused(self, retry_after: float) -> None:
        """Telegram answered 429 with ``retry_after`` seconds: the chat waits them out."""
        self._refused_until = max(self._refused_until, self._now() + retry_after + _MARGIN)

    async def wait(self) -> None:
        # a loop, not an Event: another send's 429 may move the time on while this one waits
        while (left := self._refused_until - self._now()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(left)


class GroupMinute(ChatPause):
    """One group's sends over the last minute; others may use ``per_minute - kept``; until
    ``unknown_until`` (after a crash: what the last life sent is unknown) others' count as
    over it."""

    def __init__(
        self,
        per_minute: int,
        kept: int,
        now: Callable[[], float] = time.monotonic,
        unknown_until: float = 0.0,
    ) -> None:
        super().__init__(now)
        self._per_minute = per_minute
        self._kept = kept
        self._unknown_until = unknown_until
        self._sent: deque[float] = deque()

    def idle(self) -> bool:
        self._forget(self._now())
        return not self._sent and super().idle()

    def sent(self) -> list[float]:
        """When this group's sends of the last minute took their place."""
        self._forget(self._now())
        return list(self._sent)

    def unknown(self, until: float) -> None:
        """Others' sends count as over the minute until ``until`` (the last life's unknown)."""
        self._unknown_until = until

    def assume(self, sent: list[float]) -> None:
        """Sends made before this process started (kept at the last stop) count too."""
        self._sent = deque(sorted([*sent, *self._sent]))

    async def place(self, first: bool) -> None:
        """Wait for a place in this group's minute, and take it."""
        most = self._per_minute if first else self._per_minute - self._kept
        while True:
            await self.wait()
            now = self._now()
            if not first and now < self._unknown_until:
                await asyncio.sleep(self._unknown_until - now)
                continue
            self._forget(now)
            if len(self._sent) < most:
                self._sent.append(now)
                return
            # never past a minute: a send kept in the future must not block the group longer
            await asyncio.sleep(
                min(self._sent[len(self._sent) - most] + _PERIOD - now, _PERIOD) + _MARGIN
            )

    def _forget(self, now: float) -> None:
        while self._sent and now - self._sent[0] >= _PERIOD:
            self._sent.popleft()


class AdminsFirstLimiter(AIORateLimiter):
    """PTB's limiter (overall 30 a second) with each group's minute counted by
    ``GroupMinute`` (admins' sends, ``ADMIN_FIRST``, never wait behind others') and every
    chat's 429 waited out by that chat alone, never by the whole bot."""

    def __init__(
        self,
        *,
        max_retries: int = 3,
        per_minute: int = GROUP_PER_MINUTE,
        kept: int = KEPT_FOR_ADMINS,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(max_retries=max_retries, group_max_rate=0)
        self._per_minute = per_minute
        self._kept = kept
        self._now = now
        self._unknown_until = 0.0
        self._chats: dict[int | str, ChatPause] = {}  # groups always; others once refused

    def group_sends(self) -> dict[int | str, list[float]]:
        """Each group's sends of the last minute (this limiter's clock), to keep at a stop."""
        kept = {
            chat: pause.sent()
            for chat, pause in self._chats.items()
            if isinstance(pause, GroupMinute)
        }
        return {chat: sent for chat, sent in kept.items() if sent}

    def assume(self, group_sends: dict[int | str, list[float]] | None) -> None:
        """What Telegram still counts from the last life: its groups' sends (kept at its
        stop), or None when it crashed: every group's minute is then taken as full for a
        minute, for all but admins' sends (which may meet a 429, waited out per group)."""
        if group_sends is None:
            self._unknown_until = self._now() + _PERIOD + _MARGIN
            for pause in self._chats.values():
                if isinstance(pause, GroupMinute):
                    pause.unknown(self._unknown_until)
            return
        for group, sent in group_sends.items():
            self._minute(group).assume(sent)

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Any]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Any:
        chat = _chat(data.get("chat_id"))
        if chat is None:  # no chat (getMe, answerCallbackQuery, ...): PTB's own handling
            return await super().process_request(
                callback, args, kwargs, endpoint, data, rate_limit_args
            )
        group = _group(chat)
        retries = rate_limit_args or self._max_retries
        while True:
            if group is not None:
                await self._minute(group).place(ADMIN_FIRST.get())
            elif chat in self._chats:
                await self._chats[chat].wait()
            try:
                return await super().process_request(
                    _unpaused(callback), args, kwargs, endpoint, data, rate_limit_args
                )
            except _ChatRetryAfter as refused:
                if retries == 0:
                    raise refused.error from None
                retries -= 1
                wait = refused.error.retry_after
                pause = self._minute(group) if group is not None else self._pause(chat)
                pause.refused(wait.total_seconds() if isinstance(wait, timedelta) else wait)

    def _sweep(self) -> None:
        if len(self._chats) > _FORGET_AFTER:
            self._chats = {c: p for c, p in self._chats.items() if not p.idle()}

    def _pause(self, chat: int | str) -> ChatPause:
        self._sweep()
        return self._chats.setdefault(chat, ChatPause(self._now))

    def _minute(self, group: int | str) -> GroupMinute:
        self._sweep()
        minute = self._chats.get(group)
        if not isinstance(minute, GroupMinute):
            minute = GroupMinute(self._per_minute, self._kept, self._now, self._unknown_until)
            self._chats[group] = minute
        return minute


def _chat(chat_id: object) -> int | str | None:
    """The chat a request goes to (PTB passes an int id or a ``@name``), or None."""
    if isinstance(chat_id, str):
        try:
            return int(chat_id)
        except ValueError:
            return chat_id
    return chat_id if isinstance(chat_id, int) else None


def _group(chat: int | str) -> int | str | None:
    """The group ``chat`` is, as PTB's limiter tells it: a negative id, or a ``@name``
    (channels and supergroups); None for a private chat."""
    return chat if isinstance(chat, str) or chat < 0 else None


class _ChatRetryAfter(Exception):  # carries the RetryAfter past PTB's limiter
    """A chat's 429, hidden from PTB's limiter (which would pause every request)."""

    def __init__(self, error: RetryAfter) -> None:
        super().__init__(str(error))
        self.error = error


def _unpaused(
    callback: Callable[..., Coroutine[Any, Any, Any]],
) -> Callable[..., Coroutine[Any, Any, Any]]:
    async def send(*args: Any, **kwargs: Any) -> Any:
        try:
            return await callback(*args, **kwargs)
        except RetryAfter as error:
            raise _ChatRetryAfter(error) from error

    return send
