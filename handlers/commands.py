"""The chat commands: who may run what, the replies, confirmations, and the audit trail.

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
import math
import secrets as random_tokens
import sqlite3
import textwrap
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from telegram import (
    Bot,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
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
from handlers import dust as dust_command
from handlers.delivery import plain, send_photo, send_text
from handlers.holdings import holdings_reply
from handlers.ordering import Strangers, press_turn
from handlers.priority import ADMIN_FIRST
from handlers.restart import ChatMemory
from handlers.telegram_clock import TelegramClock

log = logging.getLogger(__name__)

REFUSALS_EVERY = 0.2  # seconds strangers' refusals gather before one commit audits them
REFUSALS_RETRY = 5.0  # a failed commit of them is tried again this much later (or at the stop)
REFUSALS_KEPT = 1000  # refusals kept for a commit that failed (each is logged anyway)

ROLES = ("viewer", "trader", "admin")
CONFIRM_SECONDS = 30
MAX_COMMAND_AGE_SECONDS = 60.0  # older: a read says how old, a change asks to confirm again
ECHO_LIMIT = 200  # characters of the user's input an error repeats
PHONE_LINE = 60  # characters a long line is wrapped at
# slow (charts, research): run beside the chat's next commands, so a /halt never waits on one
BESIDE = frozenset({"backtest", "sweep", "chart", "pnl"})
# confirmed commands whose result goes through the outbox (every user learns it; never lost)
OUTBOX_RESULTS = {"flatten": "risk_halt", "resume_trading": "risk_resume", "risk": "risk_change"}
# confirmed, runs at once, not after what the chat sent before the press: the kill switch,
# like /halt, never waits behind a command stuck on a slow tick (it halts first, so nothing
# that runs after it can open a position)
JUMPS = frozenset({"flatten"})
CUT_SHORT_EDIT_SECONDS = 2.0  # at a stop: the bound on saying on its button that it stopped

Action = Callable[[list[str], str, Progress], Awaitable[str | Photo]]  # (arguments, actor, ...)


@dataclass(frozen=True, slots=True)
class Command:
    role: str
    usage: str
    summary: str
    confirm: bool = False  # runs only after an inline Confirm
    role_with_arguments: str | None = None  # e.g. /risk reads for viewers, /risk set is admin's
    changes: bool = False  # changes state (a stale one asks to confirm; audited)
    changes_with_arguments: bool = False  # changes state when given arguments (/risk set)
    confirm_with_arguments: bool = False  # given arguments, runs only after a Confirm


COMMANDS: Mapping[str, Command] = {
    "start": Command("viewer", "/start", "what pairpilot is and where to begin"),
    "help": Command("viewer", "/help [COMMAND]", "the commands, or one command's usage"),
    "whoami": Command("viewer", "/whoami", "your user id and this chat's id (for the config)"),
    "status": Command("viewer", "/status", "mode, halt state, pairs with positions, equity"),
    "pairs": Command("viewer", "/pairs", "the running pairs and their settings"),
    "balance": Command("viewer", "/balance", "the exchange's balances and the books' cash"),
    "positions": Command("viewer", "/positions", "open positions with unrealised PnL"),
    "trades": Command("viewer", "/trades [N]", "the last N closed trades (10)"),
    "orders": Command("viewer", "/orders [N]", "the last N orders (10)"),
    "strategies": Command("viewer", "/strategies", "the strategies, parameters and bounds"),
    "risk": Command(
        "viewer",
        "/risk [set KEY VALUE]",
        "the risk limits; admins change one",
        role_with_arguments="admin",
        changes_with_arguments=True,
    ),
    "pnl": Command("viewer", "/pnl [1d|7d|30d|all]", "equity and drawdown chart (7d)"),
    "chart": Command(
        "viewer",
        "/chart PAIR [TIMEFRAME]",
        "candles, the strategy's lines, fills and the stop of a running pair",
    ),
    "backtest": Command(
        "trader",
        "/backtest PAIR STRATEGY [TIMEFRAME] [DAYS] [key=value ...]",
        "backtest on recent candles (1h, 30 days): chart and figures",
    ),
    "sweep": Command(
        "admin",
        "/sweep PAIR STRATEGY [TIMEFRAME] [DAYS] NAME=LOW:HIGH:STEP ... "
        "[objective=sharpe|calmar|return] [max_drawdown=F] [random=N]",
        "parameter sweep on Dask (1h, 90 days): heatmap and the best",
    ),
    "startpair": Command(
        "trader",
        "/startpair PAIR [STRATEGY] [TIMEFRAME] [key=value ...]",
        "start trading a pair (share=0.25 sets its capital share)",
        changes=True,
    ),
    "stoppair": Command(
        "trader", "/stoppair PAIR", "close the pair's position and stop it", changes=True
    ),
    "pause": Command(
        "trader", "/pause PAIR", "no new entries for a pair; exits still run", changes=True
    ),
    "resume": Command("trader", "/resume PAIR", "let a paused pair enter again", changes=True),
    "halt": Command("admin", "/halt", "stop all new entries (exits still run)", changes=True),
    "resume_trading": Command(
        "admin", "/resume_trading", "lift a halt", confirm=True, changes=True
    ),
    "flatten": Command(
        "admin",
        "/flatten",
        "kill switch: halt, cancel orders, sell all",
        confirm=True,
        changes=True,
    ),
    "dust": Command(
        "admin",
        "/dust",
        "dust per asset; converts it where the exchange can",
        confirm=True,
        changes=True,
    ),
    "holdings": Command(
        "viewer",
        "/holdings [accept]",
        "books, exchange and your own holdings; accept records yours anew",
        role_with_arguments="admin",
        changes_with_arguments=True,
        confirm_with_arguments=True,
    ),
    "health": Command("viewer", "/health", "last ticks, jobs, exchange latency, outbox"),
    "alerts": Command(
        "viewer",
        "/alerts [KIND on|silent|off]",
        "which pushed alerts you get, and how",
        changes_with_arguments=True,
    ),
    "audit": Command("admin", "/audit [N]", "the last N audit entries (20)"),
    "order": Command(
        "admin",
        "/order ID venue VENUE_ORDER_ID | /order ID never | /order ID filled AMOUNT PRICE [FEE]",
        "settle by hand an order whose outcome the exchange cannot tell",
        confirm=True,
        changes=True,
    ),
}


def count_argument(arguments: list[str], default: int, most: int = 100) -> int:
    if not arguments:
        return default
    try:
        count = int(arguments[0])
    except ValueError:
        raise UserInputError(f"{arguments[0]!r} is not a count; give a whole number") from None
    if not 1 <= count <= most:
        raise UserInputError(f"count {count} must be from 1 to {most}")
    return count


def single(arguments: list[str], usage: str) -> str:
    if len(arguments) != 1:
        raise UserInputError(f"usage: {usage}")
    return arguments[0]


async def _no_progress(text: str) -> None:
    return None


READING = "⏳"  # starts a state change's first message, sent to read Telegram's clock
DONE_BELOW = "Done, see below."  # a "⏳" that could not be deleted once its answer came


class StatusMessage:
    """One message that shows a long command's progress, edited in place."""

    def __init__(self, bot: Bot, chat_id: int) -> None:
        self.bot = bot
        self.chat_id = chat_id
        self._message_id: int | None = None
        self._text = ""

    @property
    def shown(self) -> bool:
        return self._message_id is not None

    @property
    def reading(self) -> bool:
        """Whether the message shown is the "⏳" sent to read Telegram's clock."""
        return self.shown and self._text.startswith(READING)

    async def remove(self) -> None:
        """Delete the message shown (what it stood for now comes in a newer one); one that
        cannot be deleted is edited to say so, never left to read as still in progress."""
        if self._message_id is None:
            return
        message_id, self._message_id, self._text = self._message_id, None, ""
        try:
            await self.bot.delete_message(self.chat_id, message_id)
        except TelegramError as error:
            log.warning("status message not deleted (%s): marked done", error)
            with contextlib.suppress(TelegramError):
                await self.bot.edit_message_text(
                    DONE_BELOW, chat_id=self.chat_id, message_id=message_id
                )

    async def edit(self, text: str) -> None:
        """Show ``text`` if a message is shown already (none is sent for it)."""
        if self.shown:
            await self.show(text)

    async def show(self, text: str) -> None:
        """Show ``text``; a failed edit (the user deleted the message) never stops the work:
        the text then goes in a new message."""
        if text == self._text:
            return
        if self._message_id is None:
            if text == "Done.":
                return
            (sent,) = (await send_text(self.bot, self.chat_id, text))[:1]
            self._message_id = sent.message_id
        else:
            try:
                await self.bot.edit_message_text(
                    text, chat_id=self.chat_id, message_id=self._message_id, parse_mode="HTML"
                )
            except TelegramError as error:
                log.warning("progress message not edited (%s); sending a new one", error)
                self._message_id = None
                self._text = ""
                if text != "Done.":
                    await self.show(text)
                return
        self._text = text


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


class ChatCommands:
    def __init__(
        self,
        *,
        cockpit: Cockpit,
        users: Mapping[int, str],
        outbox: AlertOutbox,
        clock: Clock,
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
        self._arrival = arrival
        self._cockpit = cockpit
        self._users = dict(users)
        self._outbox = outbox
        self._clock = clock
        self._strangers = strangers
        self._max_age = max_age
        self._confirm_seconds = confirm_seconds
        self._wall = wall or SystemClock()
        self._telegram = telegram or TelegramClock(self._wall)
        self._pending: dict[str, Pending] = {}
        self._memory = memory
        self._refusals: list[tuple[str, str]] = []  # strangers' (actor, command), to audit
        self._auditing: asyncio.Task[None] | None = None  # the next batch, gathering
        self._committing = asyncio.Lock()  # one refusals commit at a time
        self._stopping = False
        self._closing: set[asyncio.Task[None]] = set()  # prompts' kept rows being closed
        self._actions = Actions(cockpit)
        self._research: set[asyncio.Task[None]] = set()
        self._halts = 0
        self._control = asyncio.Lock()  # /halt and a confirmed resume: one at a time, in order

    def install(self, application: Application) -> None:
        fresh = filters.UpdateType.MESSAGE  # edits never re-run a command
        for name in COMMANDS:
            application.add_handler(CommandHandler(name, self._handler(name), filters=fresh))
        application.add_handler(CallbackQueryHandler(self._on_button, pattern=r"^(ok|no):"))
        application.add_handler(MessageHandler(filters.COMMAND & fresh, self._unknown))
        application.add_error_handler(_log_error)

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

    async def _audit_refusals(self, wait: float) -> None:
        """The refusals gathered over ``wait`` seconds, audited in one commit."""
        await asyncio.sleep(wait)
        self._auditing = None  # refusals from now on gather for the next batch
        await self._commit_refusals()

    async def _commit_refusals(self) -> None:
        """One commit of the refusals gathered; a failed one keeps them, and is tried again
        later (not once the stop began: nothing may outlive it; they are in the log). One
        commit at a time, so the stop's waits for one in flight (and retries what failed)."""
        async with self._committing:
            refusals, self._refusals = self._refusals, []
            if not refusals:
                return
            try:
                await self._cockpit.record_many(
                    [(actor, name, [], "refused: not in the config") for actor, name in refusals]
                )
            except (sqlite3.Error, OSError) as error:  # a backup holds the database: kept
                kept = [*refusals, *self._refusals]
                self._refusals = kept[-REFUSALS_KEPT:]  # the oldest beyond it: in the log only
                retry = not self._stopping
                log.error(
                    "%d strangers' refusals not audited (%s): %s%s",
                    len(refusals),
                    error,
                    f"tried again in {REFUSALS_RETRY:.0f} s"
                    if retry
                    else "tried once more at the stop",
                    f"; {len(kept) - REFUSALS_KEPT} oldest dropped"
                    if len(kept) > REFUSALS_KEPT
                    else "",
                )
                if retry and self._auditing is None:
                    self._auditing = asyncio.create_task(self._audit_refusals(REFUSALS_RETRY))

    async def audit_refusals(self) -> None:
        """At a stop: a batch waiting is audited now, after any commit in flight (whose
        failure is then tried once more here, never later)."""
        self._stopping = True
        if self._auditing is not None:  # still gathering: its refusals are all still here
            self._auditing.cancel()
            self._auditing = None
        await self._commit_refusals()
        if self._refusals:
            log.error(
                "%d strangers' refusals not audited at the stop: in the log only",
                len(self._refusals),
            )

    async def close_rows(self) -> None:
        """At a stop: the prompts' kept rows being closed beside a press are, before the
        database goes (a confirmed prompt left kept would say "Expired" at the next start)."""
        if self._closing:
            await asyncio.gather(*self._closing)

    def abandon_research(self) -> None:
        """At shutdown: running backtests and sweeps are cancelled, not waited for."""
        for task in list(self._research):
            task.cancel()

    async def _unknown(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A command we do not have: the users get pointed at /help, strangers get nothing;
        a command addressed to another bot in a group is not ours to answer."""
        user, chat, message = update.effective_user, update.effective_chat, update.message
        if user is None or chat is None or message is None or message.text is None:
            return
        word = message.text.split()[0]
        _, at, addressee = word.partition("@")
        if at and addressee.lower() != (update.get_bot().username or "").lower():
            return
        if user.id not in self._users:
            await self._stranger(user.id, user.username, "(unknown command)")
            return
        await self._cockpit.record(str(user.id), word[1:41], [], "refused: unknown command")
        await send_text(
            update.get_bot(),
            chat.id,
            f"⚠️ {escape(word[:40])} is not a command here; /help lists them.",
        )

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
                await self._cockpit.record(actor, name, arguments, "refused: forwarded")
                await send_text(bot, chat.id, "⚠️ A forwarded command is not run; send it yourself.")
            return
        if name == "whoami":  # answered for anyone: it is how access gets set up
            shown = role or "none (not in the config)"
            if role is None:
                await self._stranger(user.id, user.username, name)
            await send_text(bot, chat.id, f"user id {user.id}\nchat id {chat.id}\nrole {shown}")
            return
        if role is None:
            await self._stranger(user.id, user.username, name)
            return
        command = COMMANDS[name]
        needed = (command.role_with_arguments or command.role) if arguments else command.role
        if ROLES.index(role) < ROLES.index(needed):
            what = f"/{name} {' '.join(arguments[:1])}".strip()
            reply = f"{what} needs the {needed} role; you are {role}."
            await self._cockpit.record(actor, name, arguments, "refused: " + reply)
            await send_text(bot, chat.id, escape(reply))
            return
        protection_off = (
            name == "risk"
            and len(arguments) == 3
            and self._cockpit.switches_off(arguments[1], arguments[2])
        )
        confirm = command.confirm or (command.confirm_with_arguments and bool(arguments))
        changes = changes_state(name, arguments)
        status = StatusMessage(bot, chat.id)
        age, refused = await self._judge(update, name, changes, confirm, status)
        stale = age > self._max_age
        if confirm or protection_off or refused:
            await self._cockpit.record(
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

    def _arrived(self, update: Update) -> float:
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
        arrived = self._arrived(update)
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

    async def _judge(
        self, update: Update, name: str, changes: bool, confirm: bool, status: StatusMessage
    ) -> tuple[float, bool]:
        """A command's age, and whether it is too old to change state without a Confirm. A
        /halt with no upper bound known never waits for a reading: halting is safe, so it
        runs at once, aged by the lower bound (its reply then says how old it is)."""
        if name == "halt" and self._telegram.latest(self._arrived(update)) is None:
            return self._least_age(update), False
        age = await self._age(update, name, changes and not confirm, status)
        return age, changes and age > self._max_age

    def _least_age(self, update: Update) -> float:
        """How old a command is at least, by the earliest Telegram's clock can have read
        at its arrival (0 when nothing is known)."""
        assert update.message is not None
        earliest = self._telegram.earliest(self._arrived(update))
        if earliest is None:
            return 0.0
        return max((earliest - update.message.date).total_seconds(), 0.0)

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
        reply, result = await self._act(name, arguments, actor, status.show)
        work = [self._reply(bot, chat_id, status, reply, age)]
        if changes_state(name, arguments) or not result.startswith("ok"):
            work.append(self._cockpit.record(actor, name, arguments, result))
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
            action: Action = getattr(self._actions, name)
            reply = await action(arguments, actor, progress or _no_progress)
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
            await self._ask(status.bot, status.chat_id, user_id, name, arguments, age)
        except TelegramError as error:
            if not status.shown:
                raise
            log.warning("/%s: its Confirm prompt was not sent (%s)", name, error)
            await status.show(
                f"/{escape(name)} was not run: its Confirm prompt could not be sent; send it again."
            )
            return
        self._tidy(status)

    async def _ask(
        self,
        bot: Bot,
        chat_id: int,
        user_id: int,
        name: str,
        arguments: list[str],
        age: float | None,
    ) -> None:
        """A Confirm button for ``name``, saying what it would do now (and, for a command
        sent ``age`` seconds ago, that it was not run then)."""
        try:
            now = await self._preview(name, arguments)
        except dust_command.NothingToConfirm as nothing:  # answered, no button
            await self._cockpit.record(str(user_id), name, arguments, f"refused: {nothing}")
            await send_text(bot, chat_id, escape(str(nothing)))
            return
        except (UserInputError, NotFound) as error:
            now = f"nothing: {error}"
        token = random_tokens.token_hex(6)
        window = self._confirm_seconds
        asked_at = self._wall.monotonic()
        halt = await self._cockpit.halt_since() if name == "resume_trading" else None
        self._pending[token] = Pending(
            name, arguments, user_id, chat_id, asked_at + window, self._halts, halt=halt
        )
        buttons = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("Confirm", callback_data=f"ok:{token}"),
                    InlineKeyboardButton("Cancel", callback_data=f"no:{token}"),
                ]
            ]
        )
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
        text = f"{head}{escape(now)}. Confirm within {self._confirm_seconds:g} s."
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
        await asyncio.sleep(self._confirm_seconds)
        pending = self._pending.pop(token, None)
        if pending is None:  # pressed in time
            return
        await self._say_expired(bot, token, prompt.chat_id, prompt.message_id, pending.command)

    async def _preview(self, name: str, arguments: list[str]) -> str:
        if name == "dust":
            return await dust_command.offer(self._cockpit.dust, arguments)
        return await self._cockpit.preview(name, arguments) or COMMANDS[name].summary

    async def _on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A press is answered at once: the button's answer and the "Confirmed" edit go
        out beside it (an edit in a group waits for the group's rate limit), and its result
        comes in its own message, through the outbox for the kill switch, so it is never
        lost."""
        query = update.callback_query
        if query is None or query.from_user is None:
            return
        choice, _, token = (query.data or "").partition(":")
        pending = self._pending.get(token)
        user = query.from_user
        actor = f"{user.id}"
        if pending is None or pending.user_id != user.id:
            if user.id in self._users:
                await self._cockpit.record(
                    actor, "button", [choice], "refused: not theirs or no longer valid"
                )
            await _answer_button(query, "This button is not yours or no longer valid.")
            return
        del self._pending[token]
        if self._arrived(update) > pending.expires:
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
            await self._cockpit.record(actor, pending.command, [choice], result)
            return
        await self._confirmed(update, pending, actor)

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
                pending.halts != self._halts or pending.halt != await self._cockpit.halt_since()
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
        await self._cockpit.record(
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
        await self._cockpit.record(
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

    async def _stranger(self, user_id: int, username: str | None, name: str) -> None:
        """Logged, and audited with the other strangers' refusals in one commit a moment
        later (a commit per stranger made a known user's /halt wait behind them for the
        database); the admins get a summary at most once an hour."""
        log.warning("unauthorised user %s (@%s) tried /%s", user_id, username, name)
        self._refusals.append((str(user_id), name))
        if self._auditing is None:
            self._auditing = asyncio.create_task(self._audit_refusals(REFUSALS_EVERY))
        notice = self._strangers.notice(self._wall.now(), f"{user_id} (@{username or '-'}) /{name}")
        if notice is not None:
            await self._outbox.push("unauthorised", AlertPriority.INFO, notice)


async def _answer_button(query: CallbackQuery, text: str | None = None) -> None:
    try:
        await query.answer(text)
    except TelegramError as error:  # too old: the result still comes in its own message
        log.warning("button press not answered: %s", error)


async def _answer_and_edit(query: CallbackQuery, text: str) -> None:
    await _answer_button(query)
    with contextlib.suppress(TelegramError):
        await query.edit_message_text(text, parse_mode="HTML")


async def _log_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    log.error("a chat update failed: %s", context.error, exc_info=context.error)


def ago(seconds: float) -> str:
    """How long ago, for a person: "3 min ago", "2 h ago"."""
    if not math.isfinite(seconds):
        return "at a time the bot could not check"
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)} s ago"
    return f"{minutes} min ago" if minutes < 120 else f"{minutes // 60} h ago"


def echo(text: str, most: int = ECHO_LIMIT) -> str:
    """``text`` cut to ``most`` characters: an error quoting the user's input stays short."""
    return text if len(text) <= most else text[: most - 1] + "…"


def changes_state(name: str, arguments: Sequence[str]) -> bool:
    command = COMMANDS[name]
    return command.changes or (command.changes_with_arguments and bool(arguments))


class Actions:
    """One method per command: (arguments, actor, progress) -> the reply."""

    def __init__(self, cockpit: Cockpit) -> None:
        self._cockpit = cockpit

    async def start(self, arguments: list[str], actor: str, progress: Progress) -> str:
        venue = self._cockpit.venue
        return (
            f"pairpilot, {escape(venue.mode)} mode on {escape(venue.exchange)}. /status "
            "shows where things stand, /help lists every command."
        )

    async def help(self, arguments: list[str], actor: str, progress: Progress) -> str:
        if arguments:
            name = arguments[0].lstrip("/").lower()
            if name not in COMMANDS:
                raise UserInputError(f"no command /{name}; /help lists them")
            command = COMMANDS[name]
            usage = textwrap.fill(command.usage, PHONE_LINE, subsequent_indent="  ")
            return f"{escape(usage)}\n{escape(command.summary)} ({command.role})"
        return "\n".join(f"/{name}: {escape(c.summary)}" for name, c in COMMANDS.items()) + (
            "\n/help COMMAND shows how to write one."
        )

    async def status(self, arguments: list[str], actor: str, progress: Progress) -> str:
        return await self._cockpit.status()

    async def pairs(self, arguments: list[str], actor: str, progress: Progress) -> str:
        return self._cockpit.pairs()

    async def balance(self, arguments: list[str], actor: str, progress: Progress) -> str:
        return await self._cockpit.balance()

    async def positions(self, arguments: list[str], actor: str, progress: Progress) -> str:
        return self._cockpit.positions()

    async def trades(self, arguments: list[str], actor: str, progress: Progress) -> str:
        return await self._cockpit.trades(count_argument(arguments, 10))

    async def orders(self, arguments: list[str], actor: str, progress: Progress) -> str:
        return await self._cockpit.recent_orders(count_argument(arguments, 10))

    async def strategies(self, arguments: list[str], actor: str, progress: Progress) -> str:
        return self._cockpit.strategies()

    async def risk(self, arguments: list[str], actor: str, progress: Progress) -> str:
        if not arguments:
            return self._cockpit.risk()
        if len(arguments) != 3 or arguments[0] != "set":
            raise UserInputError(f"usage: {COMMANDS['risk'].usage}")
        return await self._cockpit.set_risk(arguments[1], arguments[2], actor)

    async def pnl(self, arguments: list[str], actor: str, progress: Progress) -> Photo:
        period = single(arguments, COMMANDS["pnl"].usage) if arguments else "7d"
        return await self._cockpit.pnl(period)

    async def chart(self, arguments: list[str], actor: str, progress: Progress) -> Photo:
        return await self._cockpit.chart(arguments)

    async def backtest(self, arguments: list[str], actor: str, progress: Progress) -> Photo:
        return await self._cockpit.backtest(arguments, progress)

    async def sweep(self, arguments: list[str], actor: str, progress: Progress) -> Photo | str:
        return await self._cockpit.sweep(arguments, progress)

    async def startpair(self, arguments: list[str], actor: str, progress: Progress) -> str:
        return await self._cockpit.start_pair(arguments)

    async def stoppair(self, arguments: list[str], actor: str, progress: Progress) -> str:
        return await self._cockpit.stop_pair(single(arguments, COMMANDS["stoppair"].usage))

    async def pause(self, arguments: list[str], actor: str, progress: Progress) -> str:
        return await self._cockpit.pause(single(arguments, COMMANDS["pause"].usage))

    async def resume(self, arguments: list[str], actor: str, progress: Progress) -> str:
        return await self._cockpit.resume(single(arguments, COMMANDS["resume"].usage))

    async def halt(self, arguments: list[str], actor: str, progress: Progress) -> str:
        return await self._cockpit.halt(actor)

    async def resume_trading(self, arguments: list[str], actor: str, progress: Progress) -> str:
        return await self._cockpit.resume_trading()

    async def flatten(self, arguments: list[str], actor: str, progress: Progress) -> str:
        return await self._cockpit.flatten()

    async def dust(self, arguments: list[str], actor: str, progress: Progress) -> str:
        return await dust_command.convert(self._cockpit.dust)

    async def holdings(self, arguments: list[str], actor: str, progress: Progress) -> str:
        return await holdings_reply(self._cockpit, arguments)

    async def order(self, arguments: list[str], actor: str, progress: Progress) -> str:
        return await self._cockpit.settle_order(arguments, actor)

    async def health(self, arguments: list[str], actor: str, progress: Progress) -> str:
        return await self._cockpit.health()

    async def alerts(self, arguments: list[str], actor: str, progress: Progress) -> str:
        return await self._cockpit.alerts(int(actor), arguments)

    async def audit(self, arguments: list[str], actor: str, progress: Progress) -> str:
        return await self._cockpit.audit(count_argument(arguments, 20))
