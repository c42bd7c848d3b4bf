"""Confirm prompts: what each says the command would do now, its buttons, that work for a while,
kept across a restart, and edited to say it expired when nobody pressed it (or at a stop)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets as random_tokens
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html import escape

from telegram import Bot, CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.error import TelegramError

from bot.chat.cockpit import Cockpit
from bot.core.errors import NotFound, UserInputError
from bot.core.ports import Clock
from handlers import dust as dust_command
from handlers.command_table import COMMANDS
from handlers.delivery import send_text
from handlers.priority import ADMIN_FIRST
from handlers.restart import ChatMemory
from handlers.status_message import READING
from handlers.telegram_clock import TelegramClock
from handlers.wording import ago, echo

log = logging.getLogger(__name__)


@dataclass
class Pending:
    command: str
    arguments: list[str]
    user_id: int
    chat_id: int
    expires: float  # the host's monotonic seconds
    halts: int  # halts (/halt, a confirmed /flatten) counted when asked: a later one voids a resume
    message_id: int | None = None  # the prompt's, once it was sent
    halt: str | None = None  # a resume's: when the halt it was asked to lift began


class Prompts:
    def __init__(
        self,
        *,
        seconds: float,
        wall: Clock,
        telegram: TelegramClock,
        memory: ChatMemory | None,
        beside: Callable[[Awaitable[None], str], None],
        cockpit: Cockpit,
    ) -> None:
        """``seconds``: how long a Confirm button works; ``wall``: real time (its monotonic
        reading times the window); ``telegram``: Telegram's clock (a prompt's date is in it);
        ``memory``: where open prompts are kept across a restart; ``beside``: runs work in
        its own task (the expiries); ``cockpit``: what a prompt says the command would do."""
        self.seconds = seconds
        self._wall = wall
        self._telegram = telegram
        self._memory = memory
        self._beside = beside
        self._cockpit = cockpit
        self._pending: dict[str, Pending] = {}
        self._closing: set[asyncio.Task[None]] = set()  # prompts' kept rows being closed

    async def open(self, bot: Bot, asked: Pending, words: str) -> None:
        """Send ``words`` (Telegram HTML) with Confirm and Cancel buttons for ``asked``; its
        window counts from when the prompt showed. A prompt that cannot be sent raises and
        leaves nothing open."""
        name, chat_id = asked.command, asked.chat_id
        token = random_tokens.token_hex(6)
        window = self.seconds
        asked_at = self._wall.monotonic()
        asked.expires = asked_at + window
        self._pending[token] = asked
        buttons = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("Confirm", callback_data=f"ok:{token}"),
                    InlineKeyboardButton("Cancel", callback_data=f"no:{token}"),
                ]
            ]
        )
        text = f"{words}. Confirm within {self.seconds:g} s."
        try:
            sent = await send_text(bot, chat_id, text, reply_markup=buttons)
        except TelegramError:
            del self._pending[token]  # never shown: nothing to press
            raise
        pending = self._pending.get(token)
        if pending is not None:  # the window counts from when the prompt showed (a 429, a
            # slow send or a group's full minute may have held it back): Telegram's date of
            # the prompt, kept between the send's start and its answer (a wrong clock or a
            # slow answer cannot stretch it)
            shown = self._telegram.steady_time(sent[-1].date)
            pending.expires = min(max(shown, asked_at), self._wall.monotonic()) + window
            pending.message_id = sent[-1].message_id
            if self._memory is not None:
                await self._memory.opened(token, chat_id, sent[-1].message_id, name)
        self._beside(self._expire(bot, token, sent[-1]), "expiry")

    async def _expire(self, bot: Bot, token: str, prompt: Message) -> None:
        """An unanswered Confirm is forgotten when it expires, and its prompt says so (its
        buttons go): nothing piles up, and an old button cannot be mistaken for a live one."""
        await asyncio.sleep(self.seconds)
        pending = self._pending.pop(token, None)
        if pending is None:  # pressed in time
            return
        await self._say_expired(bot, token, prompt.chat_id, prompt.message_id, pending.command)

    async def expire_open(self, bot: Bot) -> None:
        """At a stop: every open prompt says it expired, its buttons gone (bound it: the ones
        not edited stay kept, for the next start)."""
        opened = [
            (token, pending)
            for token, pending in self._pending.items()
            if pending.message_id is not None
        ]
        for token, _ in opened:
            del self._pending[token]
        await asyncio.gather(
            *(
                self._say_expired(bot, token, pending.chat_id, pending.message_id, pending.command)
                for token, pending in opened
                if pending.message_id
            )
        )

    async def expire_left(self, bot: Bot) -> None:
        """At a start: the prompts a crash left open say they expired."""
        if self._memory is None:
            return
        await asyncio.gather(
            *(
                self._say_expired(bot, token, chat_id, message_id, command)
                for token, chat_id, message_id, command in self._memory.left_open()
            )
        )

    async def _say_expired(
        self, bot: Bot, token: str, chat_id: int, message_id: int, command: str
    ) -> None:
        """The prompt says it expired; the edit goes first in a group's minute (a handful at
        a stop or start, and a live-looking button is worse than a late viewer's reply)."""
        ADMIN_FIRST.set(True)  # this task's own context
        with contextlib.suppress(TelegramError):  # the prompt was deleted: nothing to show
            await bot.edit_message_text(
                f"Expired: send /{command} again.", chat_id=chat_id, message_id=message_id
            )
        if self._memory is not None:
            await self._memory.closed(token)

    async def close_rows(self) -> None:
        """At a stop: the prompts' kept rows being closed beside a press are, before the
        database goes (a confirmed prompt left kept would say "Expired" at the next start)."""
        if self._closing:
            await asyncio.gather(*self._closing)

    async def ask(
        self,
        bot: Bot,
        chat_id: int,
        user_id: int,
        name: str,
        arguments: list[str],
        age: float | None,
        halts: int,
    ) -> None:
        """A Confirm button for ``name``, saying what it would do now (and, for a command
        sent ``age`` seconds ago, that it was not run then); ``halts``: the halts counted so far
        (a later one voids a resume)."""
        stamped = arguments  # /allow's: with what it is shown for, taken before the preview
        if name == "allow" and self._cockpit.gate is not None:  # (a press after a change: none)
            stamped = await self._cockpit.gate.stamp(arguments)
        try:
            now = await self._preview(name, arguments)
        except dust_command.NothingToConfirm as nothing:  # answered, no button
            await self._cockpit.admin.record(str(user_id), name, arguments, f"refused: {nothing}")
            await send_text(bot, chat_id, escape(str(nothing)))
            return
        except (UserInputError, NotFound) as error:
            now = f"nothing: {error}"
        halt = await self._cockpit.pairs.halt_since() if name == "resume_trading" else None
        what = escape(echo(" ".join([f"/{name}", *arguments])))
        if age is None:
            head = f"{what}: "
        elif math.isinf(age):  # its clock reading failed (a "⏳" above may be it)
            head = (
                f"{what}: the bot could not check how old it is (Telegram did not answer "
                f"its {READING} message), so it was not run. Now it would: "
            )
        else:
            head = f"You sent {what} {ago(age)}; it was not run then. Now it would: "
        asked = Pending(name, stamped, user_id, chat_id, 0.0, halts, halt=halt)
        await self.open(bot, asked, f"{head}{escape(now)}")

    async def _preview(self, name: str, arguments: list[str]) -> str:
        if name == "dust":
            return await dust_command.offer(self._cockpit.dust, arguments)
        if name == "promote" and self._cockpit.drift is not None:
            return self._cockpit.drift.promote_preview(arguments)
        if name == "allow" and self._cockpit.gate is not None:
            return await self._cockpit.gate.preview(arguments)
        return await self._cockpit.pairs.preview(name, arguments) or COMMANDS[name].summary

    async def press(self, query: CallbackQuery, arrived: float, known: bool) -> Pending | None:
        """A press (``arrived``: when, monotonic; ``known``: by a user in the config) is
        answered at once: the button's answer and the "Confirmed" edit go out beside it (an
        edit in a group waits for the group's rate limit). The prompt to run, when a Confirm
        was pressed in time by the user it was for; a Cancel or a late press is audited."""
        assert query.from_user is not None
        choice, _, token = (query.data or "").partition(":")
        pending = self._pending.get(token)
        user = query.from_user
        actor = f"{user.id}"
        if pending is None or pending.user_id != user.id:
            if known:
                await self._cockpit.admin.record(
                    actor, "button", [choice], "refused: not theirs or no longer valid"
                )
            await _answer_button(query, "This button is not yours or no longer valid.")
            return None
        del self._pending[token]
        if arrived > pending.expires:
            text, result = f"Expired: send /{pending.command} again.", "expired"
        elif choice == "no":
            text, result = "Cancelled.", "cancelled"
        else:
            text, result = f"Confirmed: /{pending.command} is running; the result follows.", ""
        self._beside(_answer_and_edit(query, text), "button")
        if self._memory is not None:  # its kept row goes beside: a commit never delays this
            closing = asyncio.create_task(self._memory.closed(token))  # (never abandoned)
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        if result:
            await self._cockpit.admin.record(actor, pending.command, [choice], result)
            return None
        return pending


async def _answer_button(query: CallbackQuery, text: str | None = None) -> None:
    try:
        await query.answer(text)
    except TelegramError as error:  # too old: the result still comes in its own message
        log.warning("button press not answered: %s", error)


async def _answer_and_edit(query: CallbackQuery, text: str) -> None:
    await _answer_button(query)
    with contextlib.suppress(TelegramError):
        await query.edit_message_text(text, parse_mode="HTML")
