"""/allow: an admin lets a strategy whose check has not passed trade real money (bot/chat's
GateDesk), or revokes that, or lists the standing overrides; in Telegram HTML, values escaped."""

from __future__ import annotations

from html import escape

from bot.chat.gate_desk import AllowOutcome, OverrideRow
from bot.core.errors import UserInputError
from handlers.request import Request


def overrides_text(rows: tuple[OverrideRow, ...]) -> str:
    if not rows:
        return "No standing /allow: only strategies whose check passed trade live."
    lines = [
        f"{escape(row.strategy)}: allowed by {escape(row.actor)} {row.when:%Y-%m-%d %H:%M} UTC "
        f"over {escape(row.overrode)}" + (" (void: its source changed since)" if row.void else "")
        for row in rows
    ]
    return "\n".join([*lines, "/allow STRATEGY off revokes one."])


def allowed_text(outcome: AllowOutcome) -> str:
    name, pairs = escape(outcome.strategy), escape(", ".join(outcome.pairs))
    if outcome.action == "revoked":
        held = f" Held again: {pairs}." if pairs else ""
        return f"/allow of {name} revoked: it trades live only once its check passes.{held}"
    starts = f" {pairs} trade(s) from the next candle close." if pairs else ""
    if outcome.action == "released":
        return f"{name} passed its check: nothing overridden.{starts}"
    return (
        f"<b>{name} may trade real money</b> though its check is: {escape(outcome.overrode)}. "
        f"Editing its file voids this.{starts}"
    )


async def run_allow(request: Request) -> str:
    desk = request.cockpit.gate
    if desk is None:
        raise UserInputError("the strategy gate is not available here")
    if not request.arguments:
        return overrides_text(await desk.standing())
    return allowed_text(await desk.allow(request.arguments, request.actor))
