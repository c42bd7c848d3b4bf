"""/risk (read, or an admin's set), /health, /alerts and /audit: each run asks a bot/chat
service and words its view in Telegram HTML, every value escaped."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from bot.chat.admin_desk import AlertChoice, HealthView
from bot.chat.limits_desk import RiskChange
from bot.core.domain import AuditEntry
from bot.core.errors import UserInputError
from handlers.read_commands import risk_text
from handlers.request import Request


def risk_change_text(change: RiskChange) -> str:
    if change.off:
        return (
            f"{escape(change.key)} = 0: the {change.protection} is <b>off</b> (kept over restarts)."
        )
    return f"{escape(change.key)} = {change.value:g} from now on (kept over restarts)."


def health_text(view: HealthView) -> str:
    lines = []
    for tick in view.ticks:
        age = f"{tick.minutes_ago:,.0f} min ago" if tick.minutes_ago is not None else "not yet"
        named = ", ".join(escape(order) for order in tick.waiting)
        held = (
            f"; <b>not traded</b>: order {named}'s outcome cannot be read from the "
            "exchange (settle it with /order)"
            if tick.waiting
            else ""
        )
        lines.append(f"{escape(tick.pair)} {tick.timeframe}: last new candle {age}{held}")
    for name, next_run in view.jobs:
        lines.append(
            f"job {escape(name)}: next {next_run:%H:%M:%S} UTC"
            if next_run
            else f"job {escape(name)}: paused"
        )
    if view.exchange_ms is not None:
        lines.append(f"exchange: {view.exchange_ms:,.0f} ms to answer")
    else:
        lines.append(f"exchange: <b>unreachable</b> ({escape(view.exchange_error[:120])})")
    lines.append(f"alerts waiting to be delivered: {view.backlog}")
    if view.commands_kept:
        problem = view.commands_problem
        lines.append(
            f"chat commands: <b>cannot be received</b> ({escape(problem)})"
            if problem
            else "chat commands: received"
        )
        if view.clock:
            lines.append(f"command ages judged by: {escape(view.clock)}")
    return "\n".join(lines)


def alerts_text(choices: Sequence[AlertChoice]) -> str:
    return "\n".join(f"{escape(c.kind)}: <b>{c.mode}</b> ({escape(c.about)})" for c in choices)


def audit_text(entries: Sequence[AuditEntry]) -> str:
    if not entries:
        return "The audit log is empty."
    return "Audit, times UTC:\n" + "\n".join(
        f"{e.time:%m-%d %H:%M} {escape(e.actor)} /{escape(e.command)} "
        f"{escape(' '.join(e.arguments))}: {escape(e.result)}"
        for e in entries
    )


async def run_risk(request: Request) -> str:
    arguments = request.arguments
    if not arguments:
        return risk_text(request.cockpit.overview.risk())
    if len(arguments) != 3 or arguments[0] != "set":
        raise UserInputError(f"usage: {request.usage}")
    return risk_change_text(await request.cockpit.limits.set(arguments[1], arguments[2]))


async def run_health(request: Request) -> str:
    return health_text(await request.cockpit.admin.health())


async def run_alerts(request: Request) -> str:
    cockpit = request.cockpit
    return alerts_text(await cockpit.admin.alerts(int(request.actor), request.arguments))


async def run_audit(request: Request) -> str:
    return audit_text(await request.cockpit.admin.audit(request.count(20)))
