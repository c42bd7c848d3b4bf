"""Running the chat commands: who may run what, how old a command is, confirmations, the
replies, and the audit trail (the commands themselves: handlers/command_table.py).

Deny by default: only users listed in the config get answers, by user id (never by chat id, so
a group grants nothing by itself), and each command needs a role: viewer (read), trader
(+ pairs), admin (+ risk, flatten, halt, audit, dust). Anyone else gets no reply except to /whoami;
they are logged, and the admins are alerted at most once per user per hour. Every command
(who, what, arguments, result) goes into the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from html import escape
from typing import Any

from telegram import (
    Bot,
    Update,
)
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.alerts.outbox import AlertOutbox
from bot.chat.cockpit import Cockpit
from bot.chat.replies import Photo, Progress
from bot.core.clock import SystemClock
from bot.core.domain import AlertPriority
from bot.core.errors import BotError, NotFound, UserInputError
from bot.core.ports import Clock
from handlers.command_age import CommandAges
from handlers.command_table import COMMANDS, ROLES, changes_state
from handlers.delivery import plain, send_photo, send_text
from handlers.ordering import Strangers, press_turn
from handlers.prompts import Pending, Prompts
from handlers.refusals import Refusals
from handlers.request import Request
from handlers.restart import ChatMemory
from handlers.status_message import StatusMessage
from handlers.telegram_clock import TelegramClock
from handlers.wording import ago, echo

log = logging.getLogger(__name__)


CONFIRM_SECONDS = 30
MAX_COMMAND_AGE_SECONDS = 60.0  # older: a read says how old, a change asks to confirm again
# slow (charts, research): run beside the chat's next commands, so a /halt never waits on one
BESIDE = frozenset({"backtest", "sweep", "chart", "pnl", "drift", "check"})
# confirmed commands whose result goes through the outbox (every user learns it; never lost)
OUTBOX_RESULTS = {"flatten": "risk_halt", "resume_trading": "risk_resume", "risk": "risk_change"}
# confirmed, runs at once, not after what the chat sent before the press: the kill switch,
# like /halt, never waits behind a command stuck on a slow tick (it halts first, so nothing
# that runs after it can open a position)
JUMPS = frozenset({"flatten"})
CUT_SHORT_EDIT_SECONDS = 2.0  # at a stop: the bound on saying on its button that it stopped


async def _no_progress(text: str) -> None:
    return None


class ChatCommands:
    def __init__(
        self,
        *,
        cockpit: Cockpit,
        users: Mapping[int, str],
        outbox: AlertOutbox,
        strangers: Strangers,
        arrival: Callable[[int], float | None] = lambda update_id: None,
        telegram: TelegramClock | None = None,
        max_age: float = MAX_COMMAND_AGE_SECONDS,
        confirm_seconds: float = CONFIRM_SECONDS,
        wall: Clock | None = None,
        memory: ChatMemory | None = None,
    ) -> None:
        """``memory``: where open prompts are kept across a restart;
        ``arrival``: when an update arrived, in ``wall``'s monotonic seconds (a command's age
        is judged then, not after it waited in its chat's line); ``telegram``: Telegram's
        clock, which message dates are in (the host's may be off); ``max_age``: seconds
        after which a command no longer changes anything by itself; ``confirm_seconds``: how
        long a Confirm button works;
        ``wall``: real time (``clock`` may be a replay's): its monotonic reading times
        arrivals and Confirm windows, its wall clock is only shown."""
        self._cockpit = cockpit
        self._users = dict(users)
        self._outbox = outbox
        self._wall = wall or SystemClock()
        telegram = telegram or TelegramClock(self._wall)
        self.refusals = Refusals(
            users=self._users,
            admin=cockpit.admin,
            strangers=strangers,
            outbox=outbox,
            wall=self._wall,
        )
        self._research: set[asyncio.Task[None]] = set()
        self._halts = 0
        self._control = asyncio.Lock()  # /halt and a confirmed resume: one at a time, in order
        self.prompts = Prompts(
            seconds=confirm_seconds,
            wall=self._wall,
            telegram=telegram,
            memory=memory,
            beside=self._beside,
            cockpit=cockpit,
        )
        self._ages = CommandAges(
            telegram=telegram, wall=self._wall, arrival=arrival, max_age=max_age
        )

    def install(self, application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        fresh = filters.UpdateType.MESSAGE  # edits never re-run a command
        for name in COMMANDS:
            application.add_handler(CommandHandler(name, self._handler(name), filters=fresh))
        application.add_handler(CallbackQueryHandler(self._on_button, pattern=r"^(ok|no):"))
        application.add_handler(MessageHandler(filters.COMMAND & fresh, self.refusals.unknown))
        application.add_error_handler(_log_error)

    def abandon_research(self) -> None:
        """At shutdown: running backtests and sweeps are cancelled, not waited for."""
        for task in list(self._research):
            task.cancel()

    def _handler(
        self, name: str
    ) -> Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]:
        async def handle(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            await self._run(name, update, list(context.args or []))

        return handle

    async def _run(self, name: str, update: Update, arguments: list[str]) -> None:
        user, chat, message = update.effective_user, update.effective_chat, update.message
        if user is None or chat is None or message is None:  # an edit, a channel post: ignored
            return
        bot = update.get_bot()
        role = self._users.get(user.id)
        actor = f"{user.id}"
        if message.forward_origin is not None:  # someone else's command: never run as ours
            if role is not None:
                await self._cockpit.admin.record(actor, name, arguments, "refused: forwarded")
                await send_text(bot, chat.id, "⚠️ A forwarded command is not run; send it yourself.")
            return
        if name == "whoami":  # answered for anyone: it is how access gets set up
            shown = role or "none (not in the config)"
            if role is None:
                await self.refusals.stranger(user.id, user.username, name)
            await send_text(bot, chat.id, f"user id {user.id}\nchat id {chat.id}\nrole {shown}")
            return
        if role is None:
            await self.refusals.stranger(user.id, user.username, name)
            return
        command = COMMANDS[name]
        needed = (command.role_with_arguments or command.role) if arguments else command.role
        if ROLES.index(role) < ROLES.index(needed):
            what = f"/{name} {' '.join(arguments[:1])}".strip()
            reply = f"{what} needs the {needed} role; you are {role}."
            await self._cockpit.admin.record(actor, name, arguments, "refused: " + reply)
            await send_text(bot, chat.id, escape(reply))
            return
        protection_off = (
            name == "risk"
            and len(arguments) == 3
            and self._cockpit.limits.switches_off(arguments[1], arguments[2])
        )
        confirm = command.confirm or (command.confirm_with_arguments and bool(arguments))
        changes = changes_state(name, arguments)
        status = StatusMessage(bot, chat.id)
        age, refused = await self._ages.judge(update, name, changes, confirm, status)
        stale = age > self._ages.max_age
        if confirm or protection_off or refused:
            await self._cockpit.admin.record(
                actor,
                name,
                arguments,
                "asked to confirm" + (f" (sent {ago(age)})" if stale else ""),
            )
            await self._ask_below(status, user.id, name, arguments, age if stale else None)
            return
        answer = self._answer(bot, chat.id, name, arguments, actor, age if stale else None, status)
        if name not in BESIDE:
            await answer
            return
        self._beside(answer, name)  # the next command need not wait for it

    def _research_done(self, task: asyncio.Task[None]) -> None:
        self._research.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("/%s failed", task.get_name(), exc_info=task.exception())

    async def _answer(
        self,
        bot: Bot,
        chat_id: int,
        name: str,
        arguments: list[str],
        actor: str,
        age: float | None,
        status: StatusMessage | None = None,
    ) -> None:
        """Run a command and send its reply; ``age``: how old a stale read is. The audit line
        (reads stay out) is written while the reply goes out: the user does not wait for its
        commit (the change itself is committed before the reply says so)."""
        status = status or StatusMessage(bot, chat_id)
        shown = status  # progress is plain text: marked up here

        async def progress(text: str) -> None:
            await shown.show(escape(text))

        reply, result = await self._act(name, arguments, actor, progress)
        work = [self._reply(bot, chat_id, status, reply, age)]
        if changes_state(name, arguments) or not result.startswith("ok"):
            work.append(self._cockpit.admin.record(actor, name, arguments, result))
        await asyncio.gather(*work)

    async def _reply(
        self, bot: Bot, chat_id: int, status: StatusMessage, reply: str | Photo, age: float | None
    ) -> None:
        asked = f"(asked {ago(age)}) " if age is not None else ""
        if isinstance(reply, Photo):
            await send_photo(bot, chat_id, reply.png, asked + reply.caption)
            await status.show("Done.")
        elif status.shown and not status.reading:  # the progress message ends with the outcome
            await status.show(asked + reply)
        else:
            try:
                await send_text(bot, chat_id, asked + reply)
            except TelegramError as error:
                if not status.shown:
                    raise
                # a second chance: the "⏳" shows the outcome (no notification, never lost)
                log.warning("an outcome's send failed (%s): shown in its ⏳ instead", error)
                await status.show(asked + reply)
                return
            self._tidy(status)

    def _tidy(self, status: StatusMessage) -> None:
        """The "⏳" a command's outcome or Confirm prompt followed goes, beside: the outcome
        came in a new message, because Telegram notifies no edit, and a phone showed only
        "⏳ /stoppair…" when the outcome replaced it. Deleted rather than edited to "done,
        see below": the chat then reads as the command and its answer, and a "⏳" that
        stayed would read as still in progress."""
        if status.shown:
            self._beside(status.remove(), "tidy")

    async def _act(
        self, name: str, arguments: list[str], actor: str, progress: Progress | None = None
    ) -> tuple[str | Photo, str]:
        """The reply and the audit's result line; bad input is answered, never raised."""
        if name == "halt":  # counted before it waits: a resume confirmed later than this loses
            self._halts += 1
            async with self._control:
                return await self._acted(name, arguments, actor, progress)
        return await self._acted(name, arguments, actor, progress)

    def _in_order(self, name: str) -> contextlib.AbstractAsyncContextManager[object]:
        """/halt and /resume_trading run one at a time, in the order they arrived."""
        return self._control if name == "resume_trading" else contextlib.nullcontext()

    def _beside(self, work: Awaitable[None], name: str) -> None:
        """Run ``work`` in its own task (kept until done), so nothing waits for it."""
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._research.add(task)
        task.add_done_callback(self._research_done)

    async def _acted(
        self, name: str, arguments: list[str], actor: str, progress: Progress | None
    ) -> tuple[str | Photo, str]:
        try:
            command = COMMANDS[name]
            assert command.run is not None  # /whoami is answered before
            request = Request(
                self._cockpit, arguments, actor, progress or _no_progress, command.usage
            )
            reply = await command.run(request)
        except (UserInputError, NotFound) as error:
            return f"⚠️ {escape(echo(str(error)))}", f"refused: {error}"
        except BotError as error:
            log.warning("/%s failed: %s", name, error)
            return f"❌ /{name} failed: {escape(echo(str(error)))}", f"failed: {error}"
        except Exception:  # a bug: the user still gets an answer, the log the traceback
            log.exception("/%s failed unexpectedly", name)
            return f"❌ /{name} failed unexpectedly; the error is in the log.", "failed: a bug"
        first = reply.caption if isinstance(reply, Photo) else reply
        return reply, "ok: " + plain(first).splitlines()[0][:200]

    async def _ask_below(
        self,
        status: StatusMessage,
        user_id: int,
        name: str,
        arguments: list[str],
        age: float | None,
    ) -> None:
        """``_ask``, then the "⏳" shown before it goes; a prompt that cannot be sent is said
        in the ⏳ instead (nothing ran), never left to read as still in progress."""
        try:
            await self.prompts.ask(
                status.bot, status.chat_id, user_id, name, arguments, age, self._halts
            )
        except TelegramError as error:
            if not status.shown:
                raise
            log.warning("/%s: its Confirm prompt was not sent (%s)", name, error)
            await status.show(
                f"/{escape(name)} was not run: its Confirm prompt could not be sent; send it again."
            )
            return
        self._tidy(status)

    async def _on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A confirmed press runs its command; its result comes in its own message, through
        the outbox for the kill switch, so it is never lost."""
        query = update.callback_query
        if query is None or query.from_user is None:
            return
        user = query.from_user.id
        pending = await self.prompts.press(query, self._ages.arrived(update), user in self._users)
        if pending is not None:
            await self._confirmed(update, pending, f"{user}")

    async def _confirmed(self, update: Update, pending: Pending, actor: str) -> None:
        """Run a confirmed command in its place in the chat's order (the kill switch: at
        once), and report its result."""
        if pending.command in JUMPS:  # the kill switch halts: counted at its press, so a
            self._halts += 1  # resume asked or pressed before it never lifts its halt
        else:
            await press_turn()  # after what the chat sent before the press
        reply: str | Photo
        async with self._in_order(pending.command):
            if pending.command == "resume_trading" and (
                pending.halts != self._halts
                or pending.halt != await self._cockpit.pairs.halt_since()
            ):  # a halt since (the risk guard's own, a drawdown, counts too) is not lifted
                reply, result = (
                    "Not resumed: a halt (/halt, /flatten or the risk limits) "
                    "came after this was asked; send /resume_trading again.",
                    "refused: a later halt",
                )
            else:
                try:
                    reply, result = await self._act(pending.command, pending.arguments, actor)
                except asyncio.CancelledError:  # the stop dropped it (a tick stuck)
                    if pending.command in JUMPS:
                        await self._cut_short(update, pending, actor)
                    raise
        await self._cockpit.admin.record(
            actor, pending.command, ["confirmed", *pending.arguments], result
        )
        text = reply if isinstance(reply, str) else reply.caption
        kind = OUTBOX_RESULTS.get(pending.command)
        if kind is not None:
            await self._outbox.push(
                kind, AlertPriority.CRITICAL, f"/{pending.command} by {actor}: {plain(text)}"
            )
        else:
            await send_text(update.get_bot(), pending.chat_id, text)

    async def _cut_short(self, update: Update, pending: Pending, actor: str) -> None:
        """A confirmed kill switch the stop cancelled (waiting for a stuck tick, or part-way):
        it halted first; that the sell did not run is audited, said on its button, and put
        in the outbox, so the admins are told by the next start if not by this life."""
        command = pending.command
        text = (
            f"/{command}: halted; the sell did not run (or did not finish): the service "
            f"stopped; send /{command} again after the restart."
        )
        await self._cockpit.admin.record(
            actor,
            command,
            ["confirmed", *pending.arguments],
            "halted; the sell did not run: the service stopped",
        )
        await self._outbox.push(
            OUTBOX_RESULTS[command], AlertPriority.CRITICAL, f"/{command} by {actor}: {text}"
        )
        query = update.callback_query
        if query is not None:
            with contextlib.suppress(TelegramError, TimeoutError):
                await asyncio.wait_for(query.edit_message_text(text), CUT_SHORT_EDIT_SECONDS)


async def _log_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    log.error("a chat update failed: %s", context.error, exc_info=context.error)
