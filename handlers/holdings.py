"""/holdings [accept]: the books, the exchange and the user's own holdings side by side; an
admin's ``accept`` (run only after a Confirm, see COMMANDS) records the exchange's figures
beyond the books as the user's own (bot/portfolio/holdings.py)."""

from __future__ import annotations

from bot.chat.cockpit import Cockpit
from bot.portfolio.holdings import accepting


async def holdings_reply(cockpit: Cockpit, arguments: list[str]) -> str:
    """The reply to /holdings with ``arguments``; anything but none or ``accept`` is refused."""
    if accepting(arguments):
        return await cockpit.accept_holdings()
    return await cockpit.holdings()
