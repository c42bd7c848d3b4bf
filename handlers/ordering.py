"""Which updates run, and in what order: one chat's commands in the order they were sent;
known users never wait behind strangers.

PTB's own concurrent processor starts every update at once (so a /stoppair could run before
the /startpair sent just before it) and gives each one of 256 slots (so a stranger flooding a
group, whose replies wait in the group's 20-a-minute limit, holds up an admin's /halt). Here
updates from one chat run one after another (an admin's in a line of their own), chats side
by side; a stranger's update is
admitted only when their chat has had no reply for a window and few strangers are being
served, the rest are dropped before any work; and shutdown cancels what strangers still wait
for rather than waiting on it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Mapping
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any

from telegram import Update
from telegram.error import Forbidden, InvalidToken, TelegramError
from telegram.ext import BaseUpdateProcessor, ExtBot

from bot.core.clock import SystemClock
from bot.core.ports import Clock
from handlers.priority import ADMIN_FIRST

log = logging.getLogger(__name__)

STRANGER_WINDOW_SECONDS = 60.0  # a stranger's chat gets at most one reply per window
STRANGERS_AT_ONCE = 4  # strangers' updates being handled at one time, at most
STRANGERS_PER_WINDOW = 20  # strangers' updates handled per window over all chats, at most
MAX_UPDATES_AT_ONCE = 1024  # PTB's semaphore; only admitted updates ever take a place
NOTICE_EVERY = timedelta(hours=1)  # the admins hear of strangers at most this often
POLL_FAILURES = 3  # getUpdates failures in a row before commands count as not received
_FORGET_AFTER = 10_000  # chats remembered before old windows are swept
# a button press's place in its chat's line: what was sent before it, still to finish
_BEFORE_PRESS: ContextVar[asyncio.Future[None] | None] = ContextVar("before_press", default=None)


class Strangers:
    """The budget strangers get (one update per chat per window, a few at a time and a few
    dozen per window over all chats), and who they were, for the admins' hourly summary."""

    def __init__(
        self,
        users: Mapping[int, str],
        *,
        window: float = STRANGER_WINDOW_SECONDS,
        at_once: int = STRANGERS_AT_ONCE,
        per_window: int = STRANGERS_PER_WINDOW,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._users = users
        self._window = window
        self._at_once = at_once
        self._per_window = per_window
        self._now = now
        self._last: dict[int, float] = {}  # chat: when a stranger there was last admitted
        self._recent: deque[float] = deque()  # when strangers were admitted, this window
        self._seen: set[int] = set()  # strangers since the last summary
        self._noticed: datetime | None = None  # when the last summary went out
        self.busy = 0
        self.dropped = 0
        self._admitted: dict[int, float] = {}  # update id admitted before parsing: when

    def known(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self._users

    def admit(self, chat_id: int, user_id: int | None) -> bool:
        """Whether a stranger's update in ``chat_id`` may be handled now (it then counts)."""
        if user_id is not None and len(self._seen) < _FORGET_AFTER:
            self._seen.add(user_id)
        now = self._now()
        last = self._last.get(chat_id)
        self._admitted = {u: t for u, t in self._admitted.items() if now - t < self._window}
        in_flight = self.busy + len(self._admitted)  # being handled, or admitted and queued
        while self._recent and now - self._recent[0] >= self._window:
            self._recent.popleft()
        if (
            in_flight >= self._at_once
            or len(self._recent) >= self._per_window
            or (last is not None and now - last < self._window)
        ):
            self.dropped += 1
            return False
        self._recent.append(now)
        if len(self._last) >= _FORGET_AFTER:
            self._last = {c: t for c, t in self._last.items() if now - t < self._window}
        self._last[chat_id] = now
        return True

    def notice(self, now: datetime, latest: str) -> str | None:
        """The admins' summary of the strangers seen, at most once per NOTICE_EVERY."""
        if self._noticed is not None and now - self._noticed < NOTICE_EVERY:
            return None
        count, self._seen, self._noticed = max(1, len(self._seen)), set(), now
        return (
            f"{count} unknown user(s) tried commands in the last hour (latest: "
            f"{latest}); ignored. Add them under [[telegram.users]] if they should have "
            "access."
        )

    def triage(self, raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A getUpdates answer without the strangers' updates over their budget, dropped
        before PTB parses them (parsing hundreds costs the loop more than anything else). The
        last update always stays, so the next offset moves past the dropped ones."""
        return [
            update for index, update in enumerate(raw) if self.keep(update) or index == len(raw) - 1
        ]

    def keep(self, update: Mapping[str, Any]) -> bool:
        """Whether one raw update is handled: a known user's, or a stranger's within their
        budget (it then counts, and ``admitted`` will say so)."""
        user, chat = _sender(update)
        if self.known(user):
            return True
        if not self.admit(chat, user):
            return False
        self._admitted[update["update_id"]] = self._now()
        return True

    def admitted(self, update_id: int) -> bool:
        """Whether ``update_id`` was admitted by ``triage`` (asked once per update)."""
        return self._admitted.pop(update_id, None) is not None


async def _droppable(coroutine: Awaitable[Any], tasks: set[asyncio.Task[Any]], whose: str) -> None:
    """Run ``coroutine`` as a task kept in ``tasks``: cancelling it drops the update, while
    PTB's own task (which this awaits in) ends normally."""
    task = asyncio.ensure_future(coroutine)
    tasks.add(task)
    try:
        await asyncio.wait([task])
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s update failed: %s", whose, task.exception())
    finally:
        tasks.discard(task)


def _jumps_the_queue(update: Update) -> bool:
    """/halt runs ahead of the chat's queue: it must not wait for a command stuck behind a
    slow tick or exchange (halting is always safe, whatever runs after it)."""
    text = update.message.text if update.message is not None else None
    words = text.split() if text else []
    return bool(words) and words[0].split("@")[0].lower() == "/halt"


async def press_turn() -> None:
    """Inside a button press's handler: wait until what its chat sent before the press has
    run. A press starts at once (its button is answered at once), but what it confirms takes
    its place in the chat's order: a /pause typed before the Confirm of an earlier /resume
    prompt must not run after the resume (the admin's last word would lose)."""
    before = _BEFORE_PRESS.get()
    if before is not None:
        await asyncio.shield(before)


def _sender(update: Mapping[str, Any]) -> tuple[int | None, int]:
    """(user id, chat id) of a raw update, as far as it says."""
    for key, body in update.items():
        if key != "update_id" and isinstance(body, Mapping):
            user = (body.get("from") or {}).get("id")
            chat = body.get("chat") or (body.get("message") or {}).get("chat") or {}
            return user, chat.get("id", 0)
    return None, 0


class TriagedBot(ExtBot[Any]):
    """PTB's bot with strangers' updates triaged out of getUpdates before parsing; it also
    tells ``on_polling`` whether polling works: a problem after POLL_FAILURES failures in a
    row (PTB retries forever, so a second instance polling would leave the bot deaf and
    quiet), or at once for a refusal that will not pass by itself (InvalidToken, Forbidden);
    None at the next success. ``on_aborted``: PTB's polling loop gave up (it does at the first
    InvalidToken), so polling must be started again. ``on_updates`` hears every getUpdates
    answer (decoded, before triage)."""

    def __init__(
        self,
        strangers: Strangers,
        on_polling: Callable[[str | None], object] = lambda problem: None,
        on_aborted: Callable[[], object] = lambda: None,
        on_updates: Callable[[Any], object] = lambda result: None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._strangers = strangers
        self._on_polling = on_polling
        self._on_aborted = on_aborted
        self._on_updates = on_updates
        self._failures = 0

    async def _post(self, endpoint: str, data: Any = None, *args: Any, **kwargs: Any) -> Any:
        if endpoint != "getUpdates":
            return await super()._post(endpoint, data, *args, **kwargs)
        try:
            result = await super()._post(endpoint, data, *args, **kwargs)
        except TelegramError as error:
            self._failures += 1
            refused = isinstance(error, InvalidToken | Forbidden)
            if self._failures == POLL_FAILURES or (refused and self._failures < POLL_FAILURES):
                how = "refused" if refused else f"failed {POLL_FAILURES} times in a row"
                self._on_polling(f"getUpdates {how}: {error}")
                self._failures = POLL_FAILURES
            if isinstance(error, InvalidToken):
                self._on_aborted()
            raise
        if self._failures >= POLL_FAILURES:
            self._on_polling(None)
        self._failures = 0
        self._on_updates(result)
        return self._strangers.triage(result) if isinstance(result, list) else result


class ChatOrder(BaseUpdateProcessor):
    """One chat's updates in order, chats side by side, strangers within their budget; an
    admin's updates go in their own line per chat, never behind anyone else's, and what they
    send goes first in a group's rate limit (``ADMIN_FIRST``). When each update arrived is
    kept while it is handled: a command's age is judged at its arrival, not after a wait."""

    def __init__(
        self, strangers: Strangers, admins: Collection[int] = (), wall: Clock | None = None
    ) -> None:
        super().__init__(MAX_UPDATES_AT_ONCE)
        self._strangers = strangers
        self._admins = frozenset(admins)
        self._wall = wall or SystemClock()
        self._arrived: dict[int, float] = {}  # update id: when it arrived (monotonic)
        self._last_arrival: float | None = None  # the last update's arrival, anyone's
        self._tails: dict[tuple[int, bool], asyncio.Future[None]] = {}  # line: its last end
        self._for_strangers: set[asyncio.Task[Any]] = set()
        self._for_known: set[asyncio.Task[Any]] = set()
        self._dropping = False  # at shutdown, past the bound: known users' updates are dropped

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        if not isinstance(update, Update):
            await coroutine
            return
        self._last_arrival = self._wall.monotonic()
        user, chat = update.effective_user, update.effective_chat
        chat_id = chat.id if chat is not None else 0
        if not self._strangers.known(user.id if user is not None else None):
            await self._stranger(update, chat_id, user.id if user is not None else None, coroutine)
            return
        self._arrived[update.update_id] = self._wall.monotonic()
        first = ADMIN_FIRST.set(user is not None and user.id in self._admins)
        try:
            await self._in_line((chat_id, ADMIN_FIRST.get()), update, coroutine)
        finally:
            ADMIN_FIRST.reset(first)
            self._arrived.pop(update.update_id, None)

    @property
    def last_arrival(self) -> float | None:
        """When the last update (anyone's) arrived (the host's monotonic seconds)."""
        return self._last_arrival

    def arrival(self, update_id: int) -> float | None:
        """When a known user's update being handled arrived (the host's monotonic seconds:
        a step of the wall clock never changes a command's age)."""
        return self._arrived.get(update_id)

    async def _in_line(
        self, line: tuple[int, bool], update: Update, coroutine: Awaitable[Any]
    ) -> None:
        if _jumps_the_queue(update):  # the kill path never waits behind a slow command
            await self._known(coroutine)
            return
        before = self._tails.get(line)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tails[line] = mine
        pressed = update.callback_query is not None
        place = _BEFORE_PRESS.set(before if pressed else None)  # its task's context keeps it
        try:
            if before is not None and not pressed:
                await asyncio.shield(before)
            await self._known(coroutine)  # a press starts at once: it waits in press_turn
        finally:
            _BEFORE_PRESS.reset(place)
            if before is not None and not before.done():
                # a press refused at once (a double tap, Cancel, expired, not yours) ends
                # before the command ahead of it: its place ends with that command's
                before.add_done_callback(lambda _: self._end(line, mine))
            else:
                self._end(line, mine)

    def _end(self, line: tuple[int, bool], mine: asyncio.Future[None]) -> None:
        mine.set_result(None)
        if self._tails.get(line) is mine:
            del self._tails[line]

    async def _stranger(
        self, update: Update, chat_id: int, user_id: int | None, coroutine: Awaitable[Any]
    ) -> None:
        if not (
            self._strangers.admitted(update.update_id) or self._strangers.admit(chat_id, user_id)
        ):
            if asyncio.iscoroutine(coroutine):
                coroutine.close()  # never started: no reply, no slot held
            return
        self._strangers.busy += 1
        try:
            await _droppable(coroutine, self._for_strangers, "a stranger's")
        finally:
            self._strangers.busy -= 1

    async def _known(self, coroutine: Awaitable[Any]) -> None:
        if self._dropping:
            if asyncio.iscoroutine(coroutine):
                coroutine.close()
            return
        await _droppable(coroutine, self._for_known, "a user's")

    def drop_known_after(self, seconds: float) -> asyncio.TimerHandle:
        """At shutdown: known users' updates get ``seconds`` to finish, then are dropped (a
        reply in a group can wait minutes for the group's rate-limit slot, and PTB's stop
        waits for every update)."""
        return asyncio.get_running_loop().call_later(seconds, self._drop_known)

    def _drop_known(self) -> None:
        self._dropping = True
        for task in list(self._for_known):
            task.cancel()

    def abandon_strangers(self) -> None:
        """At shutdown: what is still being done for strangers is dropped, not waited for."""
        for task in list(self._for_strangers):
            task.cancel()

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        self.abandon_strangers()
