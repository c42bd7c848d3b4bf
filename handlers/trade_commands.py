"""The trading commands (/startpair, /stoppair, /pause, /resume, /halt, /resume_trading,
/flatten, /order): each run asks bot/chat's PairDesk and says what happened in Telegram HTML,
every value escaped."""

from __future__ import annotations

from html import escape

from bot.core.domain import PairRun
from bot.core.number_text import amount_text
from bot.trading.kill_switch import FlattenReport
from handlers.request import Request


def started_text(run: PairRun) -> str:
    return (
        f"Started {escape(run.pair)}: {escape(run.strategy)} {run.timeframe}, "
        f"{run.capital_share:.0%} of capital. It acts from the next candle close."
    )


def flatten_text(report: FlattenReport) -> str:
    closed = (
        ", ".join(f"{escape(p)} {amount_text(a)}" for p, a in report.closed.items()) or "nothing"
    )
    lines = [
        f"Flattened: halted{'' if report.halted_now else ' (already)'}, "
        f"{report.cancelled_orders} open order(s) cancelled, sold {closed}."
    ]
    if report.clean:
        lines.append("Verified: the exchange holds no position.")
    elif report.left:
        left = ", ".join(f"{escape(a)} {amount_text(v)}" for a, v in report.left.items())
        lines.append(f"<b>Check the account</b>: the exchange still holds {left}.")
    lines += [
        f"<b>Not done</b>: {escape(what)}: {escape(why)}" for what, why in report.problems.items()
    ]
    return "\n".join(lines)


async def run_startpair(request: Request) -> str:
    desk = request.cockpit.pairs
    run = await desk.start_pair(request.arguments)
    warning = await desk.start_warning(run)
    return started_text(run) + (f"\n{escape(warning)}" if warning else "")


async def run_stoppair(request: Request) -> str:
    pair = await request.cockpit.pairs.stop_pair(request.single())
    return f"Stopped {escape(pair)}; its position is closed."


async def run_pause(request: Request) -> str:
    pair = await request.cockpit.pairs.pause(request.single())
    return f"Paused {escape(pair)}: no new entries; exits are still managed."


async def run_resume(request: Request) -> str:
    return f"Resumed {escape(await request.cockpit.pairs.resume(request.single()))}."


async def run_halt(request: Request) -> str:
    if await request.cockpit.pairs.halt(request.actor):
        return "Trading halted: no new entries; exits are still managed."
    return "Trading was already halted."


async def run_resume_trading(request: Request) -> str:
    resumed = await request.cockpit.pairs.resume_trading()
    return "Trading resumed." if resumed else "Trading was not halted."


async def run_flatten(request: Request) -> str:
    return flatten_text(await request.cockpit.pairs.flatten())


async def run_order(request: Request) -> str:
    return escape(await request.cockpit.pairs.settle_order(request.arguments, request.actor))
