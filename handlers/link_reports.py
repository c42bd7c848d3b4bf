"""What the Telegram front end tells /health and the admins about its link: whether commands
can be received (and why not), and whether the host's clock agrees with Telegram's."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

from telegram import WebhookInfo

from bot.alerts.outbox import AlertOutbox
from bot.chat.chat_state import ChatState
from bot.core.domain import AlertPriority


class LinkReports:
    def __init__(self, outbox: AlertOutbox, state: ChatState) -> None:
        self._outbox = outbox
        self._state = state
        self.problem: str | None = None  # why commands cannot be received, while they cannot
        self._reports: set[asyncio.Task[object]] = set()

    def polling(self, problem: str | None) -> None:
        """Told by the bot when polling stops working, and when it works again."""
        self.report(self.receiving(problem))

    def clock_skew(self, offset: float | None) -> None:
        """Told when the host's clock is off Telegram's by more than the threshold, and when
        it agrees again (commands' ages are judged by Telegram's clock all the same)."""
        text = (
            "The host's clock agrees with Telegram's again."
            if offset is None
            else f"The host's clock is {abs(offset):.0f} s "
            f"{'behind' if offset > 0 else 'ahead of'} Telegram's: check its time sync "
            "(NTP). Commands' ages are judged by Telegram's clock meanwhile."
        )
        self.report(self._outbox.push("clock_skew", AlertPriority.ERROR, text))

    def date_wrong(self, text: str) -> None:
        """The Bot API's Date header contradicts Telegram's own message dates (a proxy, or a
        self-hosted Bot API server on a host with a bad clock): told once."""
        self.report(
            self._outbox.push(
                "clock_skew",
                AlertPriority.ERROR,
                f"{text[0].upper()}{text[1:]}: check any proxy or "
                "self-hosted Bot API server's clock.",
            )
        )

    def clock_source(self, source: str) -> None:
        """Which clock commands' ages are judged by, kept for /health and `pairpilot health`."""
        self.report(self._state.judged_by(source))

    def report(self, work: Coroutine[Any, Any, object]) -> None:
        """Run ``work`` in its own task (kept until done): a report never holds its caller."""
        task = asyncio.create_task(work)
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def receiving(self, problem: str | None) -> None:
        """Commands can be received again (``problem`` None), or cannot (it says why)."""
        if problem is not None:
            await self.cannot_receive(problem)
            return
        self.problem = None
        await self._state.receiving(None)
        await self._outbox.push("chat_down", AlertPriority.ERROR, "Commands are received again.")

    async def cannot_receive(self, problem: str, retrying: bool = True) -> None:
        """Commands cannot be received: kept for health; the admins told at its start."""
        if self.problem is None:
            await self._outbox.push(
                "chat_down",
                AlertPriority.ERROR,
                f"Commands cannot be received: {problem}. Alerts still "
                f"go out{'; retrying' if retrying else ''}.",
            )
        self.problem = problem
        await self._state.receiving(problem)


def webhook_problem(info: WebhookInfo, url: str, last_arrival: datetime | None) -> str | None:
    """Why updates do not reach the webhook at ``url``, from Telegram's getWebhookInfo, or
    None; ``last_arrival``: when the last update came in (Telegram's clock)."""
    if info.url != url:
        return f"the webhook is {info.url or 'not set'} at Telegram, not {url}"
    failed = info.last_error_date
    if (
        info.pending_update_count
        and failed is not None
        and (last_arrival is None or failed > last_arrival)
    ):
        return (
            f"Telegram cannot deliver to the webhook ({info.last_error_message}); "
            f"{info.pending_update_count} update(s) wait"
        )
    return None
