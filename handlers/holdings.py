"""/holdings [accept]: the books, the exchange and the user's own holdings side by side; an
admin's ``accept`` (run only after a Confirm, see COMMANDS) records the exchange's figures
beyond the books as the user's own (bot/portfolio/holdings.py)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from bot.core.number_text import amount_text
from bot.portfolio.holdings import Holding, accepting
from handlers.request import Request


def holdings_text(holdings: Sequence[Holding], accepted: bool = False) -> str:
    """The /holdings reply (HTML)."""
    lines = [
        "Your own holdings were set to what the exchange holds beyond the books."
        if accepted
        else "Holdings: books + your own = exchange"
    ]
    for line in holdings:
        text = (
            f"{escape(line.asset)}: books {amount_text(line.books)} + yours "
            f"{amount_text(line.own)} = exchange {amount_text(line.exchange)}"
        )
        if line.gap:
            text += f" (<b>differs by {amount_text(line.gap)}</b>)"
        lines.append(text)
    if not accepted and any(line.to_accept != line.own for line in holdings if line.gap):
        lines.append(
            "If the difference is your own (a deposit, a withdrawal, coins held "
            "before the pair was traded), /holdings accept records the exchange's "
            "figures beyond the books as yours."
        )
    if any(line.missing for line in holdings):
        lines.append(
            "The books hold more than the exchange for "
            + ", ".join(escape(line.asset) for line in holdings if line.missing)
            + ": that is pairpilot's to explain, not yours to accept. Check the "
            "account."
        )
    return "\n".join(lines)


async def run_holdings(request: Request) -> str:
    """/holdings with its arguments; anything but none or ``accept`` is refused."""
    if accepting(request.arguments):
        return holdings_text(await request.cockpit.pairs.accept_holdings(), accepted=True)
    return holdings_text(await request.cockpit.overview.holdings())
