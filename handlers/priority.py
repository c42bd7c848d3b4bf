"""Admins' replies first in a group's rate limit.

Telegram takes about 20 messages a minute from a bot in one group and answers 429 past that.
PTB's AIORateLimiter queues every send to a group in one line, so a viewer's 25 queued replies
made an admin's answer in the same group wait a minute or more. Here a group's minute is
counted the same way, but others may use only part of it: the rest is kept for the admins,
whose sends take a free place at once and never queue behind anyone else's.

Telegram keeps counting a group's minute across our restart while ours starts empty, so a
group send can still meet 429. PTB's limiter answers any 429 by pausing every request for
``retry_after`` (private chats, admins' prompts, alerts); a group's 429 here pauses only that
group's sends (its minute counts as full until then), and the send is retried.
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


class GroupMinute:
    """One group's sends over the last minute; others may use ``per_minute - kept``."""

    def __init__(self, per_minute: int, kept: int,
                 now: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._per_minute = per_minute
        self._kept = kept
        self._now = now
        self._sent: deque[float] = deque()
        self._refused_until = 0.0  # Telegram answered 429: nobody sends here before this

    def idle(self) -> bool:
        now = self._now()
        self._forget(now)
        return not self._sent and now >= self._refused_until

    def refused(self, retry_after: float) -> None:
        """Telegram answered 429 with ``retry_after`` seconds: the group waits them out."""
        self._refused_until = max(self._refused_until, self._now() + retry_after + _MARGIN)

    async def place(self, first: bool) -> None:
        """Wait for a place in this group's minute, and take it."""
        most = self._per_minute if first else self._per_minute - self._kept
        while True:
            now = self._now()
            if now < self._refused_until:
                await asyncio.sleep(self._refused_until - now)
                continue
            self._forget(now)
            if len(self._sent) < most:
                self._sent.append(now)
                return
            await asyncio.sleep(self._sent[len(self._sent) - most] + _PERIOD - now + _MARGIN)

    def _forget(self, now: float) -> None:
        while self._sent and now - self._sent[0] >= _PERIOD:
            self._sent.popleft()


class AdminsFirstLimiter(AIORateLimiter):
    """PTB's limiter (overall 30 a second, RetryAfter waited out) with each group's minute
    counted by ``GroupMinute``: admins' sends (``ADMIN_FIRST``) never wait behind others'."""

    def __init__(self, *, max_retries: int = 3, per_minute: int = GROUP_PER_MINUTE,
                 kept: int = KEPT_FOR_ADMINS) -> None:  # fmt: skip
        super().__init__(max_retries=max_retries, group_max_rate=0)
        self._per_minute = per_minute
        self._kept = kept
        self._groups: dict[int | str, GroupMinute] = {}

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Any]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Any:
        group = _group(data.get("chat_id"))
        if group is None:
            return await super().process_request(callback, args, kwargs, endpoint, data,
                                                 rate_limit_args)  # fmt: skip
        minute = self._minute(group)
        retries = rate_limit_args or self._max_retries
        while True:
            await minute.place(ADMIN_FIRST.get())
            try:
                return await super().process_request(_unpaused(callback), args, kwargs,
                                                     endpoint, data, rate_limit_args)  # fmt: skip
            except _GroupRetryAfter as refused:
                if retries == 0:
                    raise refused.error from None
                retries -= 1
                wait = refused.error.retry_after
                minute.refused(wait.total_seconds() if isinstance(wait, timedelta) else wait)

    def _minute(self, group: int | str) -> GroupMinute:
        if len(self._groups) > _FORGET_AFTER:
            self._groups = {g: m for g, m in self._groups.items() if not m.idle()}
        if group not in self._groups:
            self._groups[group] = GroupMinute(self._per_minute, self._kept)
        return self._groups[group]


def _group(chat_id: object) -> int | str | None:
    """The group a request goes to, as PTB's limiter tells it: a negative id, or a
    ``@name`` (channels and supergroups); None for a private chat or no chat."""
    if isinstance(chat_id, str):
        try:
            chat_id = int(chat_id)
        except ValueError:
            return chat_id
    return chat_id if isinstance(chat_id, int) and chat_id < 0 else None


class _GroupRetryAfter(Exception):  # noqa: N818  # carries the RetryAfter past PTB's limiter
    """A group send's 429, hidden from PTB's limiter (which would pause every request)."""

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
            raise _GroupRetryAfter(error) from error

    return send
