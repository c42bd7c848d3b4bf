"""The chat commands: who may run what, the replies, confirmations, and the audit trail.

Deny by default: only users listed in the config get answers, by user id (never by chat id, so
a group grants nothing by itself), and each command needs a role: viewer (read), trader
(+ pairs), admin (+ risk, flatten, halt, audit). Anyone else gets no reply except to /whoami;
they are logged, and the admins are alerted at most once per user per hour. Every command
(who, what, arguments, result) goes into the audit log.
"""

from __future__ import annotations

import logging
import secrets as random_tokens
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.alerts import AlertOutbox
from bot.cockpit import Cockpit, Photo, Progress
from bot.domain import AlertPriority
from bot.errors import BotError, NotFound, UserInputError
from bot.ports import Clock
from handlers.delivery import send_photo, send_text

log = logging.getLogger(__name__)

ROLES = ("viewer", "trader", "admin")
CONFIRM_SECONDS = 30
STRANGER_ALERT_EVERY = timedelta(hours=1)

Action = Callable[[list[str], str, Progress], Awaitable[str | Photo]]  # (arguments, actor, ...)


@dataclass(frozen=True, slots=True)
class Command:
    role: str
    usage: str
    summary: str
    confirm: bool = False  # runs only after an inline Confirm
    role_with_arguments: str | None = None  # e.g. /risk reads for viewers, /risk set is admin's


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
    "risk": Command("viewer", "/risk [set KEY VALUE]", "the risk limits; admins change one",
                    role_with_arguments="admin"),
    "pnl": Command("viewer", "/pnl [1d|7d|30d|all]", "equity and drawdown chart (7d)"),
    "chart": Command("viewer", "/chart PAIR [TIMEFRAME]",
                     "candles, the strategy's lines, fills and the stop of a running pair"),
    "backtest": Command("trader", "/backtest PAIR STRATEGY [TIMEFRAME] [DAYS] [key=value ...]",
                        "backtest on recent candles (1h, 30 days): chart and figures"),
    "sweep": Command("admin", "/sweep PAIR STRATEGY [TIMEFRAME] [DAYS] NAME=LOW:HIGH:STEP ... "
                     "[objective=sharpe|calmar|return] [max_drawdown=F] [random=N]",
                     "parameter sweep on Dask (1h, 90 days): heatmap and the best"),
    "startpair": Command("trader", "/startpair PAIR [STRATEGY] [TIMEFRAME] [key=value ...]",
                         "start trading a pair (share=0.25 sets its capital share)"),
    "stoppair": Command("trader", "/stoppair PAIR", "close the pair's position and stop it"),
    "pause": Command("trader", "/pause PAIR", "no new entries for a pair; exits still run"),
    "resume": Command("trader", "/resume PAIR", "let a paused pair enter again"),
    "halt": Command("admin", "/halt", "stop all new entries (exits still run)"),
    "resume_trading": Command("admin", "/resume_trading", "lift a halt", confirm=True),
    "flatten": Command("admin", "/flatten", "kill switch: halt, cancel orders, sell all",
                       confirm=True),
    "health": Command("viewer", "/health", "last ticks, jobs, exchange latency, outbox"),
    "alerts": Command("viewer", "/alerts [KIND on|silent|off]",
                      "which pushed alerts you get, and how"),
    "audit": Command("admin", "/audit [N]", "the last N audit entries (20)"),
}  # fmt: skip


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


class StatusMessage:
    """One message that shows a long command's progress, edited in place."""

    def __init__(self, bot: Bot, chat_id: int) -> None:
        self._bot = bot
        self._chat_id = chat_id
        self._message_id: int | None = None
        self._text = ""

    async def show(self, text: str) -> None:
        if text == self._text:
            return
        if self._message_id is None:
            if text == "Done.":
                return
            (sent,) = (await send_text(self._bot, self._chat_id, text))[:1]
            self._message_id = sent.message_id
        else:
            await self._bot.edit_message_text(
                text, chat_id=self._chat_id, message_id=self._message_id, parse_mode="HTML"
            )
        self._text = text


@dataclass
class Pending:
    command: str
    user_id: int
    expires: datetime


class ChatCommands:
    def __init__(
        self, *, cockpit: Cockpit, users: Mapping[int, str], outbox: AlertOutbox, clock: Clock
    ) -> None:
        self._cockpit = cockpit
        self._users = dict(users)
        self._outbox = outbox
        self._clock = clock
        self._pending: dict[str, Pending] = {}
        self._strangers: dict[int, datetime] = {}
        self._actions = Actions(cockpit)

    def install(self, application: Application) -> None:
        for name in COMMANDS:
            application.add_handler(CommandHandler(name, self._handler(name)))
        application.add_handler(CallbackQueryHandler(self._on_button, pattern=r"^(ok|no):"))
        application.add_handler(MessageHandler(filters.COMMAND, self._unknown))

    async def _unknown(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A command we do not have: the users get pointed at /help, strangers get nothing."""
        user, chat, message = update.effective_user, update.effective_chat, update.message
        if user is None or chat is None or message is None:
            return
        if user.id not in self._users:
            await self._stranger(user.id, user.username, "(unknown command)")
            return
        word = (message.text or "").split()[0][:40] if message.text else "?"
        await send_text(update.get_bot(), chat.id,
                        f"⚠️ {escape(word)} is not a command here; /help lists them.")  # fmt: skip

    def _handler(self, name: str) -> Callable[[Update, ContextTypes.DEFAULT_TYPE], Awaitable[None]]:
        async def handle(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            await self._run(name, update, list(context.args or []))

        return handle

    async def _run(self, name: str, update: Update, arguments: list[str]) -> None:
        user, chat = update.effective_user, update.effective_chat
        if user is None or chat is None:
            return
        bot = update.get_bot()
        if name == "whoami":  # answered for anyone: it is how access gets set up
            role = self._users.get(user.id, "none (not in the config)")
            await send_text(bot, chat.id, f"user id {user.id}\nchat id {chat.id}\nrole {role}")
            return
        role = self._users.get(user.id)
        if role is None:
            await self._stranger(user.id, user.username, name)
            return
        actor = f"{user.id}"
        command = COMMANDS[name]
        needed = (command.role_with_arguments or command.role) if arguments else command.role
        if ROLES.index(role) < ROLES.index(needed):
            what = f"/{name} {' '.join(arguments[:1])}".strip()
            reply = f"{what} needs the {needed} role; you are {role}."
            await self._cockpit.record(actor, name, arguments, "refused: " + reply)
            await send_text(bot, chat.id, escape(reply))
            return
        if command.confirm:
            await self._cockpit.record(actor, name, arguments, "asked to confirm")
            await self._ask(bot, chat.id, user.id, name)
            return
        status = StatusMessage(bot, chat.id)
        reply, result = await self._act(name, arguments, actor, status.show)
        await self._cockpit.record(actor, name, arguments, result)  # audited even if the send fails
        if isinstance(reply, Photo):
            await send_photo(bot, chat.id, reply.png, reply.caption)
            await status.show("Done.")
        else:
            await send_text(bot, chat.id, reply)

    async def _act(
        self, name: str, arguments: list[str], actor: str, progress: Progress | None = None
    ) -> tuple[str | Photo, str]:
        """The reply and the audit's result line; bad input is answered, never raised."""
        try:
            action: Action = getattr(self._actions, name)
            reply = await action(arguments, actor, progress or _no_progress)
        except (UserInputError, NotFound) as error:
            return f"⚠️ {escape(str(error))}", f"refused: {error}"
        except BotError as error:
            log.warning("/%s failed: %s", name, error)
            return f"❌ /{name} failed: {escape(str(error))}", f"failed: {error}"
        except Exception:  # a bug: the user still gets an answer, the log the traceback
            log.exception("/%s failed unexpectedly", name)
            return f"❌ /{name} failed unexpectedly; the error is in the log.", "failed: a bug"
        first = reply.caption if isinstance(reply, Photo) else reply
        return reply, "ok: " + first.splitlines()[0][:200]

    async def _ask(self, bot: Bot, chat_id: int, user_id: int, name: str) -> None:
        token = random_tokens.token_hex(6)
        expires = self._clock.now() + timedelta(seconds=CONFIRM_SECONDS)
        self._pending[token] = Pending(name, user_id, expires)
        buttons = InlineKeyboardMarkup([[
            InlineKeyboardButton("Confirm", callback_data=f"ok:{token}"),
            InlineKeyboardButton("Cancel", callback_data=f"no:{token}"),
        ]])  # fmt: skip
        await send_text(bot, chat_id,
                        f"{escape(COMMANDS[name].summary).capitalize()}? "
                        f"Confirm within {CONFIRM_SECONDS} s.", reply_markup=buttons)  # fmt: skip

    async def _on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None or query.from_user is None:
            return
        choice, _, token = (query.data or "").partition(":")
        pending = self._pending.get(token)
        user = query.from_user
        if pending is None or pending.user_id != user.id:
            await query.answer("This button is not yours or no longer valid.")
            return
        del self._pending[token]
        actor = f"{user.id}"
        if self._clock.now() > pending.expires:
            text, result = f"Expired: send /{pending.command} again.", "expired"
        elif choice == "no":
            text, result = "Cancelled.", "cancelled"
        else:
            reply, result = await self._act(pending.command, [], actor)
            text = reply if isinstance(reply, str) else reply.caption
        await self._cockpit.record(actor, pending.command, ["confirmed" if choice == "ok"
                                                            else "cancelled"], result)  # fmt: skip
        await query.answer()
        await query.edit_message_text(text, parse_mode="HTML")

    async def _stranger(self, user_id: int, username: str | None, name: str) -> None:
        now = self._clock.now()
        log.warning("unauthorised user %s (@%s) tried /%s", user_id, username, name)
        last = self._strangers.get(user_id)
        if last is not None and now - last < STRANGER_ALERT_EVERY:
            return
        self._strangers[user_id] = now
        await self._outbox.push(
            "unauthorised", AlertPriority.ERROR,
            f"Unauthorised Telegram user {user_id} (@{username or '-'}) tried /{name}; "
            "ignored. Add them under [[telegram.users]] if they should have access.",
        )  # fmt: skip


class Actions:
    """One method per command: (arguments, actor, progress) -> the reply."""

    def __init__(self, cockpit: Cockpit) -> None:
        self._cockpit = cockpit

    async def start(self, arguments: list[str], actor: str, progress: Progress) -> str:
        venue = self._cockpit.venue
        return (f"pairpilot, {escape(venue.mode)} mode on {escape(venue.exchange)}. /status "
                "shows where things stand, /help lists every command.")  # fmt: skip

    async def help(self, arguments: list[str], actor: str, progress: Progress) -> str:
        if arguments:
            name = arguments[0].lstrip("/").lower()
            if name not in COMMANDS:
                raise UserInputError(f"no command /{name}; /help lists them")
            command = COMMANDS[name]
            return f"{escape(command.usage)}\n{escape(command.summary)} ({command.role})"
        return "\n".join(f"{escape(c.usage)}: {escape(c.summary)}" for c in COMMANDS.values())

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

    async def health(self, arguments: list[str], actor: str, progress: Progress) -> str:
        return await self._cockpit.health()

    async def alerts(self, arguments: list[str], actor: str, progress: Progress) -> str:
        return await self._cockpit.alerts(int(actor), arguments)

    async def audit(self, arguments: list[str], actor: str, progress: Progress) -> str:
        return await self._cockpit.audit(count_argument(arguments, 20))
