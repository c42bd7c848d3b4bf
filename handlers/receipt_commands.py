"""/rerun and /compare: a receipt's backtest run again, and two receipts side by side, in
Telegram HTML, every value escaped."""

from __future__ import annotations

from html import escape

from bot.chat.portfolio_desk import PortfolioRerunChart
from bot.chat.receipt_desk import CompareView, SweepRerunView
from bot.chat.replies import Photo
from bot.chat.research_desk import RerunChart
from handlers.request import Request
from handlers.research_commands import backtest_photo, portfolio_photo


def rerun_photo(view: RerunChart | PortfolioRerunChart) -> Photo:
    """Whether the rerun matched its receipt, then the backtest's caption."""
    if isinstance(view, PortfolioRerunChart):
        photo = portfolio_photo(view.chart)
    else:
        photo = backtest_photo(view.chart)
    mark = "✅" if view.matched else "⚠️"
    return Photo(photo.png, f"{mark} {escape(view.verdict)}\n{photo.caption}")


def compare_reply(view: CompareView) -> str:
    """Phone-sized: one line per figure, the two receipts' values side by side."""
    first, second = view.first, view.second

    def row(name: str, left: str, right: str) -> str:
        return f"{escape(name)}: {escape(left)} | {escape(right)}"

    def figure(name: str, shown: str) -> str:
        values = [first.figures.get(name), second.figures.get(name)]
        texts = ["-" if v is None else format(v, shown) for v in values]
        return row(name.replace("_", " "), *texts)

    lines = [f"<b>{first.id} | {second.id}</b>"]
    if first.kind != second.kind:
        lines.append(row("kind", first.kind, second.kind))
    lines.append(row("strategy", first.strategy, second.strategy))
    if first.data == second.data and view.same_candles:
        lines.append(f"data (both): {escape(first.data)}")
    else:
        lines += [
            f"data {first.id}: {escape(first.data)}",
            f"data {second.id}: {escape(second.data)}",
        ]
    lines += [row(name, a, b) for name, a, b in view.params] or ["params: the same"]
    lines += [row(name, a, b) for name, a, b in view.terms] or ["terms: the same"]
    lines += [row(name, a, b) for name, a, b in view.prints]  # why equal words differ
    lines += [
        figure("trades", "d"),
        figure("pnl", "+,.2f"),
        figure("win_rate", ".1%"),
        figure("max_drawdown", ".2%"),
        figure("fees", ",.2f"),
    ]
    return "\n".join(lines)


def sweep_rerun_reply(view: SweepRerunView) -> str:
    """Whether every set matched, then the ranked table as `pairpilot sweep` prints it."""
    mark = "✅" if view.matched else "⚠️"
    return f"{mark} {escape(view.verdict)}\n<pre>{escape(view.table)}</pre>"


async def run_rerun(request: Request) -> Photo | str:
    research = request.cockpit.research
    view = await research.rerun(request.arguments, request.progress)
    if isinstance(view, SweepRerunView):
        return sweep_rerun_reply(view)
    return rerun_photo(view)


async def run_compare(request: Request) -> str:
    return compare_reply(await request.cockpit.research.compare(request.arguments))
