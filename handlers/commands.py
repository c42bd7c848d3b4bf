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
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.alerts import AlertOutbox
from bot.cockpit import Cockpit
from bot.domain import AlertPriority
from bot.errors import BotError, NotFound, UserInputError
from bot.ports import Clock
from handlers.delivery import send_text

log = logging.getLogger(__name__)

ROLES = ("viewer", "trader", "admin")
CONFIRM_SECONDS = 30
STRANGER_ALERT_EVERY = timedelta(hours=1)

Action = Callable[[list[str], str], Awaitable[str]]  # (arguments, actor) -> reply


@dataclass(frozen=True, slots=True)
class Command:
    role: str
    usage: str
    summary: str
    confirm: bool = False  # runs only after an inline Confirm


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
    "risk": Command("viewer", "/risk", "the risk limits"),
    "startpair": Command("trader", "/startpair PAIR [STRATEGY] [TIMEFRAME] [key=value ...]",
                         "start trading a pair (share=0.25 sets its capital share)"),
    "stoppair": Command("trader", "/stoppair PAIR", "close the pair's position and stop it"),
    "pause": Command("trader", "/pause PAIR", "no new entries for a pair; exits still run"),
    "resume": Command("trader", "/resume PAIR", "let a paused pair enter again"),
    "halt": Command("admin", "/halt", "stop all new entries (exits still run)"),
    "resume_trading": Command("admin", "/resume_trading", "lift a halt", confirm=True),
    "flatten": Command("admin", "/flatten", "kill switch: halt, cancel orders, sell all",
                       confirm=True),
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
        self._actions: dict[str, Action] = self._build_actions()

    def install(self, application: Application) -> None:
        for name in COMMANDS:
            application.add_handler(CommandHandler(name, self._handler(name)))
        application.add_handler(CallbackQueryHandler(self._on_button, pattern=r"^(ok|no):"))

    def _build_actions(self) -> dict[str, Action]:
        cockpit = self._cockpit

        async def usage_of(arguments: list[str], actor: str) -> str:
            if arguments:
                name = arguments[0].lstrip("/").lower()
                if name not in COMMANDS:
                    raise UserInputError(f"no command /{name}; /help lists them")
                command = COMMANDS[name]
                return f"{escape(command.usage)}\n{escape(command.summary)} ({command.role})"
            return "\n".join(f"{escape(c.usage)}: {escape(c.summary)}"
                             for c in COMMANDS.values())  # fmt: skip

        async def start(arguments: list[str], actor: str) -> str:
            return (f"pairpilot, {escape(cockpit.venue.mode)} mode on "
                    f"{escape(cockpit.venue.exchange)}. /status shows where things stand, "
                    "/help lists every command.")  # fmt: skip

        def view(function: Callable[[], str]) -> Action:
            async def action(arguments: list[str], actor: str) -> str:
                return function()

            return action

        return {
            "start": start,
            "help": usage_of,
            "status": lambda a, actor: cockpit.status(),
            "pairs": view(cockpit.pairs),
            "balance": lambda a, actor: cockpit.balance(),
            "positions": view(cockpit.positions),
            "trades": lambda a, actor: cockpit.trades(count_argument(a, 10)),
            "orders": lambda a, actor: cockpit.recent_orders(count_argument(a, 10)),
            "strategies": view(cockpit.strategies),
            "risk": view(cockpit.risk),
            "startpair": lambda a, actor: cockpit.start_pair(a),
            "stoppair": lambda a, actor: cockpit.stop_pair(single(a, COMMANDS["stoppair"].usage)),
            "pause": lambda a, actor: cockpit.pause(single(a, COMMANDS["pause"].usage)),
            "resume": lambda a, actor: cockpit.resume(single(a, COMMANDS["resume"].usage)),
            "halt": lambda a, actor: cockpit.halt(actor),
            "resume_trading": lambda a, actor: cockpit.resume_trading(),
            "flatten": lambda a, actor: cockpit.flatten(),
            "audit": lambda a, actor: cockpit.audit(count_argument(a, 20)),
        }

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
        if ROLES.index(role) < ROLES.index(command.role):
            reply = f"/{name} needs the {command.role} role; you are {role}."
            await send_text(bot, chat.id, escape(reply))
            await self._cockpit.record(actor, name, arguments, "refused: " + reply)
            return
        if command.confirm:
            await self._ask(bot, chat.id, user.id, name)
            await self._cockpit.record(actor, name, arguments, "asked to confirm")
            return
        reply, result = await self._act(name, arguments, actor)
        await send_text(bot, chat.id, reply)
        await self._cockpit.record(actor, name, arguments, result)

    async def _act(self, name: str, arguments: list[str], actor: str) -> tuple[str, str]:
        """The reply and the audit's result line; bad input is answered, never raised."""
        try:
            reply = await self._actions[name](arguments, actor)
        except (UserInputError, NotFound) as error:
            return f"⚠️ {escape(str(error))}", f"refused: {error}"
        except BotError as error:
            log.warning("/%s failed: %s", name, error)
            return f"❌ /{name} failed: {escape(str(error))}", f"failed: {error}"
        return reply, "ok: " + reply.splitlines()[0][:200]

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
            text, result = await self._act(pending.command, [], actor)
        await query.answer()
        await query.edit_message_text(text, parse_mode="HTML")
        await self._cockpit.record(actor, pending.command, ["confirmed" if choice == "ok"
                                                            else "cancelled"], result)  # fmt: skip

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
