"""The chat commands: who may run each, how it is written, what it does, and the run behind it
(it parses the words, asks a bot/chat service and words the answer in Telegram HTML)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from bot.chat.term_words import USAGE as TERM_WORDS
from bot.core.errors import UserInputError
from handlers import admin_commands as admin
from handlers import check_commands as checks
from handlers import drift_commands as drift
from handlers import gate_commands as gate
from handlers import read_commands as reads
from handlers import receipt_commands as receipts
from handlers import reload_commands as reloads
from handlers import research_commands as research
from handlers import trade_commands as trading
from handlers.dust import run_dust
from handlers.holdings import run_holdings
from handlers.request import Request, Run

ROLES = ("viewer", "trader", "admin")  # each may run what the ones before it may
PHONE_LINE = 60  # characters a long line is wrapped at


@dataclass(frozen=True, slots=True)
class Command:
    role: str
    usage: str
    summary: str
    run: Run | None  # None: /whoami, answered to anyone before roles are looked at
    confirm: bool = False  # runs only after an inline Confirm
    role_with_arguments: str | None = None  # e.g. /risk reads for viewers, /risk set is admin's
    changes: bool = False  # changes state (a stale one asks to confirm; audited)
    changes_with_arguments: bool = False  # changes state when given arguments (/risk set)
    confirm_with_arguments: bool = False  # given arguments, runs only after a Confirm


async def run_start(request: Request) -> str:
    venue = request.cockpit.venue
    return (
        f"pairpilot, {escape(venue.mode)} mode on {escape(venue.exchange)}. /status "
        "shows where things stand, /help lists every command."
    )


async def run_help(request: Request) -> str:
    if request.arguments:
        name = request.arguments[0].lstrip("/").lower()
        if name not in COMMANDS:
            raise UserInputError(f"no command /{name}; /help lists them")
        command = COMMANDS[name]
        usage = textwrap.fill(command.usage, PHONE_LINE, subsequent_indent="  ")
        return f"{escape(usage)}\n{escape(command.summary)} ({command.role})"
    return "\n".join(f"/{name}: {escape(c.summary)}" for name, c in COMMANDS.items()) + (
        "\n/help COMMAND shows how to write one."
    )


COMMANDS: Mapping[str, Command] = {
    "start": Command("viewer", "/start", "what pairpilot is and where to begin", run_start),
    "help": Command("viewer", "/help [COMMAND]", "the commands, or one command's usage", run_help),
    "whoami": Command(
        "viewer", "/whoami", "your user id and this chat's id (for the config)", None
    ),
    "status": Command(
        "viewer", "/status", "mode, halt state, pairs with positions, equity", reads.run_status
    ),
    "pairs": Command("viewer", "/pairs", "the running pairs and their settings", reads.run_pairs),
    "balance": Command(
        "viewer", "/balance", "the exchange's balances and the books' cash", reads.run_balance
    ),
    "positions": Command(
        "viewer", "/positions", "open positions with unrealised PnL", reads.run_positions
    ),
    "trades": Command("viewer", "/trades [N]", "the last N closed trades (10)", reads.run_trades),
    "orders": Command("viewer", "/orders [N]", "the last N orders (10)", reads.run_orders),
    "strategies": Command(
        "viewer", "/strategies", "strategies: origin, check, parameters", reads.run_strategies
    ),
    "reload": Command(
        "admin",
        "/reload",
        "load new or changed strategy files; running pairs keep their code",
        reloads.run_reload,
        changes=True,
    ),
    "risk": Command(
        "viewer",
        "/risk [set KEY VALUE]",
        "the risk limits; admins change one",
        admin.run_risk,
        role_with_arguments="admin",
        changes_with_arguments=True,
    ),
    "pnl": Command(
        "viewer", "/pnl [1d|7d|30d|all]", "equity and drawdown chart (7d)", research.run_pnl
    ),
    "chart": Command(
        "viewer",
        "/chart PAIR [TIMEFRAME]",
        "candles, the strategy's lines, fills and the stop of a running pair",
        research.run_chart,
    ),
    "backtest": Command(
        "trader",
        f"/backtest PAIR STRATEGY [TIMEFRAME] [DAYS] [key=value ...] [mc=N] {TERM_WORDS}",
        "recent candles (1h, 30 days), the bot's terms or given; PAIR portfolio: every pair",
        research.run_backtest,
    ),
    "check": Command(
        "trader",
        "/check STRATEGY [PAIR] [TIMEFRAME] [key=value ...]",
        "check a strategy for look-ahead and more",
        checks.run_check,
    ),
    "rerun": Command(
        "trader",
        "/rerun ID",
        "run a receipt again (backtest, portfolio, sweep); says if it made the same trades",
        receipts.run_rerun,
    ),
    "compare": Command(
        "trader",
        "/compare ID ID",
        "two receipts side by side (two portfolios, or two single pairs)",
        receipts.run_compare,
    ),
    "sweep": Command(
        "admin",
        "/sweep PAIR STRATEGY [TIMEFRAME] [DAYS] NAME=LOW:HIGH:STEP ... "
        f"[objective=sharpe|calmar|return] [max_drawdown=F] [random=N] {TERM_WORDS}; "
        "/sweep portfolio STRATEGY [DAYS] NAME=LOW:HIGH:STEP ... (the same words)",
        "parameter sweep (1h, 90 days), the bot's terms or given; portfolio: its pairs together",
        research.run_sweep,
    ),
    "startpair": Command(
        "trader",
        "/startpair PAIR [STRATEGY] [TIMEFRAME] [key=value ...]",
        "start trading a pair (share=0.25 sets its capital share)",
        trading.run_startpair,
        changes=True,
    ),
    "stoppair": Command(
        "trader",
        "/stoppair PAIR",
        "close the pair's position and stop it",
        trading.run_stoppair,
        changes=True,
    ),
    "pause": Command(
        "trader",
        "/pause PAIR",
        "no new entries for a pair; exits still run",
        trading.run_pause,
        changes=True,
    ),
    "resume": Command(
        "trader",
        "/resume PAIR",
        "let a paused pair enter again",
        trading.run_resume,
        changes=True,
    ),
    "halt": Command(
        "admin",
        "/halt",
        "stop all new entries (exits still run)",
        trading.run_halt,
        changes=True,
    ),
    "resume_trading": Command(
        "admin",
        "/resume_trading",
        "lift a halt",
        trading.run_resume_trading,
        confirm=True,
        changes=True,
    ),
    "flatten": Command(
        "admin",
        "/flatten",
        "kill switch: halt, cancel orders, sell all",
        trading.run_flatten,
        confirm=True,
        changes=True,
    ),
    "dust": Command(
        "admin",
        "/dust",
        "dust per asset; converts it where the exchange can",
        run_dust,
        confirm=True,
        changes=True,
    ),
    "holdings": Command(
        "viewer",
        "/holdings [accept]",
        "books, exchange and your own holdings; accept records yours anew",
        run_holdings,
        role_with_arguments="admin",
        changes_with_arguments=True,
        confirm_with_arguments=True,
    ),
    "health": Command(
        "viewer", "/health", "last ticks, jobs, exchange latency, outbox", admin.run_health
    ),
    "alerts": Command(
        "viewer",
        "/alerts [KIND on|silent|off]",
        "which pushed alerts you get, and how",
        admin.run_alerts,
        changes_with_arguments=True,
    ),
    "audit": Command("admin", "/audit [N]", "the last N audit entries (20)", admin.run_audit),
    "drift": Command(
        "viewer",
        "/drift [PAIR]",
        "live trades against the paper twin and a backtest, trade by trade",
        drift.run_drift,
    ),
    "promote": Command(
        "admin",
        "/promote PAIR",
        "put a pair demoted to paper for its drift back to live trading",
        drift.run_promote,
        confirm=True,
        changes=True,
    ),
    "allow": Command(
        "admin",
        "/allow [STRATEGY [off]]",
        "let a strategy whose check has not passed trade live; off revokes; none: the list",
        gate.run_allow,
        changes_with_arguments=True,
        confirm_with_arguments=True,
    ),
    "order": Command(
        "admin",
        "/order ID venue VENUE_ORDER_ID | /order ID never | /order ID filled AMOUNT PRICE [FEE]",
        "settle by hand an order whose outcome the exchange cannot tell",
        trading.run_order,
        confirm=True,
        changes=True,
    ),
}


def changes_state(name: str, arguments: Sequence[str]) -> bool:
    command = COMMANDS[name]
    return command.changes or (command.changes_with_arguments and bool(arguments))
