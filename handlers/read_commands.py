"""The read commands (/status, /pairs, /balance, /positions, /trades, /orders, /strategies,
/risk without arguments): each run asks bot/chat's Overview and words its view in Telegram
HTML, every value escaped."""

from __future__ import annotations

from html import escape

from bot.chat.views import (
    BalanceView,
    OrderRow,
    PairRow,
    PositionRow,
    RiskView,
    RunRow,
    StatusView,
    StrategyRow,
    TradeRow,
)
from bot.core.number_text import amount_text
from bot.research.loaded_code import GONE, NEWER, RunningCode
from handlers.request import Request


def status_text(view: StatusView) -> str:
    lines = [
        f"<b>{escape(view.mode)}</b> on {escape(view.exchange)}",
        f"Trading: {'HALTED: ' + escape(view.halt) if view.halt is not None else 'on'}",
        f"Equity {view.equity:,.2f} {view.quote}, today {view.today:+,.2f}",
    ]
    lines += [_run_line(run) for run in view.runs]
    if not view.runs:
        lines.append("No pairs running. /startpair BTC/USDT to start one.")
    return "\n".join(lines)


def _run_line(run: RunRow) -> str:
    if run.held is None:
        held = "flat"
    else:
        held = f"{amount_text(run.held.amount)} @ {run.held.price}, {run.held.pnl:+,.2f}"
    state = run.state if run.fault is None else f"{run.state}: {escape(run.fault)}"
    state = "" if run.state == "running" else f" ({state})"  # paused: strategy error: ...
    return f"{escape(run.pair)}{state} {escape(run.strategy)} {run.timeframe}: {held}"


def pairs_text(rows: tuple[PairRow, ...]) -> str:
    if not rows:
        return "No pairs running."
    return "\n".join(
        f"{escape(row.pair)} {row.state}: {escape(row.strategy)} {row.timeframe}, "
        f"{row.capital_share:.0%} of capital"
        + (f", {escape(row.params)}" if row.params else "")
        + (f"\n  {escape(row.fault)}" if row.fault else "")
        + ("" if row.code is None else f"\n  {running_code_text(row.code)}")
        + (f"\n  held: {escape(row.held)}" if row.held else "")
        for row in rows
    )


def running_code_text(code: RunningCode) -> str:
    """A running pair's code that is not the registry's since a /reload, in a phone line."""
    if code.state == NEWER:
        return f"runs {code.version} · newer version waiting (/stoppair then /startpair to take it)"
    if code.state == GONE:
        return "its strategy file is gone; it runs the code it started with"
    return "its strategy no longer loads (/reload says why); it runs the code it started with"


def balance_text(view: BalanceView) -> str:
    lines = [f"Books: cash {view.cash:,.2f} {view.quote}"]
    lines += [f"{escape(asset)} {amount_text(amount)}" for asset, amount in view.balances]
    return "\n".join(lines)


def positions_text(rows: tuple[PositionRow, ...]) -> str:
    if not rows:
        return "No open positions."
    return "\n".join(
        f"{escape(p.pair)} {amount_text(p.amount)} @ {p.price}, unrealised {p.unrealised:+,.2f}"
        + (" (dust: too small to sell, it goes with the next exit)" if p.dust else "")
        for p in rows
    )


def trades_text(rows: tuple[TradeRow, ...]) -> str:
    if not rows:
        return "No closed trades yet."
    return "Closed trades, times UTC:\n" + "\n".join(
        f"{t.exit_time:%m-%d %H:%M} {escape(t.pair)} {t.pnl:+,.2f} ({t.return_pct:+.2%}), "
        f"in {t.entry} out {t.exit}"
        for t in rows
    )


def orders_text(rows: tuple[OrderRow, ...]) -> str:
    if not rows:
        return "No orders yet."
    return "Orders, times UTC:\n" + "\n".join(
        f"{o.created_at:%m-%d %H:%M} {escape(o.pair)} {o.side} {amount_text(o.amount)} "
        f"{o.status}" + (f" @ {o.price}" if o.price is not None else "")
        for o in rows
    )


def strategies_text(rows: tuple[StrategyRow, ...]) -> str:
    blocks = []  # one parameter a line: readable on a phone
    for row in rows:
        blocks.append(f"<b>{escape(row.name)}</b>")
        blocks.append(f"  {escape(row.origin)}; check: {escape(row.check)}")
        blocks += [
            f"  {escape(s.name)}={s.default:g} ({s.minimum:g} to {s.maximum:g})" for s in row.params
        ]
    return "\n".join(blocks)


def risk_text(view: RiskView) -> str:
    return "\n".join(
        f"{row.name} = {row.value:g}"
        + (
            f" ({row.value:.4g} {view.quote})"
            if row.unit == "money"
            else f" ({row.value * 100:.4g}%)"
            if row.unit == "fraction"
            else ""
        )
        for row in view.rows
    )


async def run_status(request: Request) -> str:
    return status_text(await request.cockpit.overview.status())


async def run_pairs(request: Request) -> str:
    return pairs_text(request.cockpit.overview.pairs())


async def run_balance(request: Request) -> str:
    return balance_text(await request.cockpit.overview.balance())


async def run_positions(request: Request) -> str:
    return positions_text(request.cockpit.overview.positions())


async def run_trades(request: Request) -> str:
    return trades_text(await request.cockpit.overview.trades(request.count(10)))


async def run_orders(request: Request) -> str:
    return orders_text(await request.cockpit.overview.orders(request.count(10)))


async def run_strategies(request: Request) -> str:
    return strategies_text(await request.cockpit.overview.strategies())
