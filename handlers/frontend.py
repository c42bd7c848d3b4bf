"""python-telegram-bot inside the service's own event loop: long polling, commands, alerts.

Not ``run_polling``: the service owns the loop, so the application is initialised, started
and stopped by hand. Telegram being unreachable never holds trading up: start-up retries in
the background, and alerts wait in the outbox until a chat takes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from telegram import BotCommand
from telegram.error import NetworkError, TelegramError
from telegram.ext import AIORateLimiter, Application

from bot.alerts import AlertOutbox
from bot.chat import ChatFactory
from bot.cockpit import Cockpit
from bot.config import Secrets, Settings, WebhookSettings
from bot.ports import Clock
from handlers.commands import COMMANDS, ChatCommands
from handlers.delivery import LATE_AFTER, TelegramSink
from storage.alerts import SqliteAlertRepository

log = logging.getLogger(__name__)
START_RETRY_SECONDS = 5.0


def telegram_factory(settings: Settings, secrets: Secrets) -> ChatFactory:
    """What the service calls to build its Telegram front end once trading is assembled."""
    users = {user.id: user.role for user in settings.telegram.users}
    token = secrets.telegram_token
    if not token:
        raise ValueError("Telegram needs PAIRPILOT_TELEGRAM_TOKEN")

    def build(cockpit: Cockpit, outbox: AlertOutbox, alerts: SqliteAlertRepository,
              clock: Clock, mark_late: bool) -> TelegramFrontend:  # fmt: skip
        return TelegramFrontend(
            token=token, api_base_url=settings.telegram.api_base_url,
            users=users, cockpit=cockpit, outbox=outbox, alerts=alerts, clock=clock,
            mark_late=mark_late, webhook=settings.telegram.webhook,
            webhook_secret=secrets.telegram_webhook_secret,
        )  # fmt: skip

    return build


class TelegramFrontend:
    def __init__(
        self,
        *,
        token: str,
        api_base_url: str,
        users: Mapping[int, str],
        cockpit: Cockpit,
        outbox: AlertOutbox,
        alerts: SqliteAlertRepository,
        clock: Clock,
        poll_timeout: float = 10.0,
        mark_late: bool = True,
        webhook: WebhookSettings | None = None,
        webhook_secret: str | None = None,
    ) -> None:
        """Long polling, or with ``webhook`` a local HTTP endpoint that Telegram posts to."""
        self._webhook = webhook
        self._webhook_secret = webhook_secret
        base = api_base_url.rstrip("/")
        self.application = (
            Application.builder().token(token).base_url(f"{base}/bot")
            .base_file_url(f"{base}/file/bot")
            .rate_limiter(AIORateLimiter(max_retries=3))  # waits out RetryAfter, then retries
            .concurrent_updates(True)  # a running backtest never holds up /status
            .build()
        )  # fmt: skip
        ChatCommands(cockpit=cockpit, users=users, outbox=outbox, clock=clock).install(
            self.application
        )
        recipients: Sequence[int] = sorted(users)  # a user's private chat has their id
        self.sink = TelegramSink(self.application.bot, recipients, alerts, cockpit.preferences,
                                 clock, late_after=LATE_AFTER if mark_late else None)  # fmt: skip
        self._poll_timeout = poll_timeout
        self._starting: asyncio.Task[None] | None = None
        self.running = asyncio.Event()

    def start(self) -> None:
        """Connect in the background, retrying while Telegram cannot be reached."""
        self._starting = asyncio.create_task(self._start())

    async def _start(self) -> None:
        while True:
            try:
                await self.application.initialize()
                break
            except (NetworkError, TelegramError) as error:
                log.warning("Telegram not reachable (%s); trying again in %.0f s", error,
                            START_RETRY_SECONDS)  # fmt: skip
                await asyncio.sleep(START_RETRY_SECONDS)
        with contextlib.suppress(TelegramError):
            await self.application.bot.set_my_commands(
                [BotCommand(name, command.summary[:256]) for name, command in COMMANDS.items()]
            )
        await self.application.start()
        updater = self.application.updater
        assert updater is not None
        updates = ["message", "callback_query"]
        if self._webhook is None:
            await updater.start_polling(poll_interval=0.0, timeout=int(self._poll_timeout),
                                        allowed_updates=updates)  # fmt: skip
        else:
            path = urlsplit(self._webhook.url).path.strip("/") or "telegram"
            await updater.start_webhook(
                listen=self._webhook.listen, port=self._webhook.port, url_path=path,
                webhook_url=self._webhook.url, secret_token=self._webhook_secret,
                allowed_updates=updates,
            )  # fmt: skip
        self.running.set()
        log.info("Telegram connected")

    async def stop(self) -> None:
        """Stop polling and the handlers; a start still retrying is abandoned."""
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starting
        if not self.running.is_set():
            return
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()
        self.running.clear()
