"""python-telegram-bot inside the service's own event loop: long polling, commands, alerts.

Not ``run_polling``: the service owns the loop, so the application is initialised, started
and stopped by hand. Telegram being unreachable never holds trading up: start-up retries in
the background, and alerts wait in the outbox until a chat takes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from telegram.error import NetworkError, TelegramError
from telegram.ext import Application
from telegram.request import HTTPXRequest

from bot.alerts.outbox import AlertOutbox
from bot.chat.cockpit import Cockpit
from bot.chat.frontend import ChatFactory
from bot.core.clock import SystemClock
from bot.core.ports import AlertDeliveries, Clock
from bot.core.telegram_options import TelegramOptions, WebhookAddress
from handlers.commands import CONFIRM_SECONDS, MAX_COMMAND_AGE_SECONDS, ChatCommands
from handlers.delivery import LATE_AFTER, TelegramSink
from handlers.link_reports import LinkReports, webhook_problem
from handlers.menus import set_menus
from handlers.ordering import ChatOrder, Strangers, TriagedBot
from handlers.priority import AdminsFirstLimiter
from handlers.restart import ChatMemory
from handlers.telegram_clock import TelegramClock
from handlers.webhook import WEBHOOK_TIMEOUT_SECONDS, WebhookIntake, WebhookServer

log = logging.getLogger(__name__)

STOP_GRACE = 5.0  # seconds users' updates get to finish at shutdown (the whole stop is bounded)
PROMPTS_BOUND = 2.0  # seconds open Confirm prompts get to be edited "Expired" at a stop/start
WEBHOOK_CHECK_SECONDS = 60.0  # how often getWebhookInfo is asked whether updates get through
UPDATES = ["message", "callback_query"]  # the kinds of update the bot asks Telegram for


def telegram_factory(options: TelegramOptions) -> ChatFactory:
    """What the service calls to build its Telegram front end once trading is assembled."""
    users = dict(options.users)

    def build(
        cockpit: Cockpit,
        outbox: AlertOutbox,
        alerts: AlertDeliveries,
        clock: Clock,
        mark_late: bool,
    ) -> TelegramFrontend:
        return TelegramFrontend(
            token=options.token,
            api_base_url=options.api_base_url,
            users=users,
            cockpit=cockpit,
            outbox=outbox,
            alerts=alerts,
            clock=clock,
            mark_late=mark_late,
            webhook=options.webhook,
            webhook_secret=options.webhook_secret,
            max_command_age=options.max_command_age,
        )

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
        alerts: AlertDeliveries,
        clock: Clock,
        poll_timeout: float = 10.0,
        mark_late: bool = True,
        webhook: WebhookAddress | None = None,
        webhook_secret: str | None = None,
        max_command_age: float = MAX_COMMAND_AGE_SECONDS,
        confirm_seconds: float = CONFIRM_SECONDS,
        webhook_check: float = WEBHOOK_CHECK_SECONDS,
        webhook_timeout: float = WEBHOOK_TIMEOUT_SECONDS,
        retry: Backoff | None = None,
        wall: Clock | None = None,
    ) -> None:
        """Long polling, or with ``webhook`` a local HTTP endpoint that Telegram posts to.
        ``max_command_age``: seconds after which a command no longer changes state by itself;
        ``wall``: real time, for message ages and Confirm expiry (default: the system's);
        ``webhook_check``: seconds between asking Telegram whether the webhook gets updates;
        ``webhook_timeout``: seconds the webhook server waits for a post's headers or body."""
        _cache_the_missing_sniffio()
        self._webhook_check = webhook_check
        self._webhook_timeout = webhook_timeout
        self._hook: WebhookServer | None = None
        self._watching: asyncio.Task[None] | None = None
        self._webhook = webhook
        self._webhook_secret = webhook_secret
        self._users = dict(users)
        self._outbox = outbox
        self._clock = clock
        self._cockpit = cockpit
        self._retry = retry or Backoff()
        base = api_base_url.rstrip("/")
        self.strangers = Strangers(self._users)
        recipients: Sequence[int] = sorted(users)  # a user's private chat has their id
        admins = [user for user in recipients if users[user] == "admin"]
        self._order = ChatOrder(self.strangers, admins, wall)
        self._link = LinkReports(outbox, cockpit.chat_state)
        self.telegram_clock = TelegramClock(
            wall or SystemClock(),
            self._link.clock_skew,
            on_source=self._link.clock_source,
            on_date_wrong=self._link.date_wrong,
        )
        self._memory = ChatMemory(cockpit.chat_state, wall or SystemClock())
        self._limiter = AdminsFirstLimiter(max_retries=3)  # waits out RetryAfter, per chat
        hooks = {
            "event_hooks": {
                "request": [self.telegram_clock.on_request],
                "response": [self.telegram_clock.on_response],
            }
        }
        bot = TriagedBot(
            self.strangers,
            self._link.polling,
            self._polling_ended,
            self.telegram_clock.updates_arrived,
            token=token,
            base_url=f"{base}/bot",
            base_file_url=f"{base}/file/bot",
            request=HTTPXRequest(httpx_kwargs=hooks),
            get_updates_request=HTTPXRequest(connection_pool_size=1, httpx_kwargs=hooks),
            rate_limiter=self._limiter,
        )
        self.application = (
            Application.builder()
            .bot(bot)
            .concurrent_updates(self._order)  # chats side by side, each in order
            .build()
        )
        self._commands = ChatCommands(
            cockpit=cockpit,
            users=users,
            outbox=outbox,
            strangers=self.strangers,
            arrival=self._order.arrival,
            telegram=self.telegram_clock,
            max_age=max_command_age,
            confirm_seconds=confirm_seconds,
            wall=wall,
            memory=self._memory,
        )
        self._commands.install(self.application)
        self.sink = TelegramSink(
            self.application.bot,
            recipients,
            alerts,
            cockpit.preferences,
            clock,
            late_after=LATE_AFTER if mark_late else None,
            admins=admins,
        )
        self._poll_timeout = poll_timeout
        self._starting: asyncio.Task[None] | None = None
        self.running = asyncio.Event()
        self._repolling: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Connect in the background, retrying while Telegram cannot be reached."""
        self._starting = asyncio.create_task(self._start())
        self._starting.add_done_callback(self._start_ended)

    def _start_ended(self, task: asyncio.Task[None]) -> None:
        """A start that ends on an error never passes silently: before the bot is connected
        it cannot hear commands, which /health, `pairpilot health` and the admins are told."""
        if task.cancelled() or (error := task.exception()) is None:
            return
        log.error("the Telegram start ended on an error", exc_info=error)
        if not self.running.is_set():
            self._link.report(
                self._link.cannot_receive(
                    f"the start ended on an error ({type(error).__name__}: {error}); "
                    "restart the bot",
                    retrying=False,
                )
            )

    async def _start(self) -> None:
        """Every start-up call is retried with a growing pause until all have worked; until
        then commands cannot be received, which /health, `pairpilot health` and (once) the
        admins are told. What the last life left (its groups' minutes, its open prompts) is
        taken over first."""
        self._limiter.assume(await self._memory.begin())
        for pause in self._retry.pauses():
            try:
                await self._connect()
                break
            except (NetworkError, TelegramError) as error:
                await self._undo()
                await self._link.cannot_receive(f"Telegram start-up failed: {error}")
                log.warning("Telegram start-up failed (%s); trying again in %.0f s", error, pause)
                await asyncio.sleep(pause)
        if self._link.problem is not None:
            await self._link.receiving(None)
        else:
            await self._cockpit.chat_state.receiving(None)
        self.running.set()
        log.info("Telegram connected")
        with contextlib.suppress(TimeoutError):  # the ones not edited are tried next start
            await asyncio.wait_for(
                self._commands.prompts.expire_left(self.application.bot), PROMPTS_BOUND
            )

    async def _connect(self) -> None:
        await self.application.initialize()
        await set_menus(self.application.bot, self._users)
        await self.application.start()
        updater = self.application.updater
        assert updater is not None
        if self._webhook is None:
            await self._poll()
        else:
            path = urlsplit(self._webhook.url).path.strip("/") or "telegram"
            intake = WebhookIntake(
                self.application.bot,
                self.application.update_queue,
                self._webhook_secret,
                self.strangers.keep,
            )
            self._hook = WebhookServer(
                intake, self._webhook.listen, self._webhook.port, path, self._webhook_timeout
            )
            self._hook.start()
            # max_connections=1: Telegram posts one update at a time, in update_id order
            await self.application.bot.set_webhook(
                self._webhook.url,
                secret_token=self._webhook_secret,
                allowed_updates=UPDATES,
                max_connections=1,
            )
            self._watching = asyncio.create_task(self._watch_webhook(self._webhook.url))

    async def _watch_webhook(self, url: str) -> None:
        """Telegram does not tell a webhook that it cannot reach it (a proxy down, a
        certificate expired): getWebhookInfo does. Commands count as not received while
        updates wait there and a delivery failed after the last update that came in, or
        while the webhook is not ours (another instance set or deleted it)."""
        while True:
            await asyncio.sleep(self._webhook_check)
            try:
                info = await self.application.bot.get_webhook_info()
            except TelegramError as error:
                log.warning("getWebhookInfo failed: %s", error)
                continue
            last = self._order.last_arrival
            problem = webhook_problem(
                info, url, None if last is None else self.telegram_clock.telegram_time(last)
            )
            if problem is not None:
                await self._link.cannot_receive(problem)
            elif self._link.problem is not None:
                await self._link.receiving(None)

    async def _poll(self) -> None:
        updater = self.application.updater
        assert updater is not None
        await updater.start_polling(
            poll_interval=0.0, timeout=int(self._poll_timeout), allowed_updates=UPDATES
        )

    def _polling_ended(self) -> None:
        """PTB's polling loop gave up (at an InvalidToken): it is started again in the
        background, with backoff, so commands are heard once the token works again."""
        if self._repolling is None or self._repolling.done():
            self._repolling = asyncio.create_task(self._repoll())

    async def _repoll(self) -> None:
        updater = self.application.updater
        assert updater is not None
        with contextlib.suppress(TelegramError):  # the ended loop's InvalidToken comes back
            if updater.running:
                await updater.stop()
        for pause in self._retry.pauses():
            try:
                await self._poll()
                return
            except TelegramError as error:
                log.warning("polling not restarted (%s); trying again in %.0f s", error, pause)
                await asyncio.sleep(pause)

    async def _undo(self) -> None:
        """Back to not started, so the next attempt starts clean."""
        updater = self.application.updater
        await self._stop_hook()
        with contextlib.suppress(Exception):
            if updater is not None and updater.running:
                await updater.stop()
            if self.application.running:
                await self.application.stop()

    async def _stop_hook(self) -> None:
        if self._hook is not None:
            await self._hook.stop()
            self._hook = None

    @property
    def problem(self) -> str | None:
        """Why commands cannot be received, while they cannot (None: they are)."""
        return self._link.problem

    async def stop(self) -> None:
        """Stop polling and the handlers; a start still retrying is abandoned; strangers'
        replies and research are cancelled, not waited for; open prompts say they expired
        (within ``PROMPTS_BOUND``); the groups' minutes are kept for the next start."""
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starting
        if not self.running.is_set():
            await self._memory.end(self._limiter.group_sends())
            return
        self._order.abandon_strangers()
        self._commands.abandon_research()
        for task in (self._repolling, self._watching):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._stop_hook()
        updater = self.application.updater
        if updater is not None and updater.running:
            with contextlib.suppress(TelegramError):  # a polling loop that gave up re-raises
                await updater.stop()
        if self.application.running:
            self._order.abandon_strangers()
            dropping = self._order.drop_known_after(STOP_GRACE)
            try:
                await self.application.stop()
            finally:
                dropping.cancel()
        with contextlib.suppress(TimeoutError):  # after the handlers: every prompt is sent
            await asyncio.wait_for(
                self._commands.prompts.expire_open(self.application.bot), PROMPTS_BOUND
            )
        await self.application.shutdown()
        with contextlib.suppress(TimeoutError):  # a slow disk's commit: bounded
            await asyncio.wait_for(self._commands.prompts.close_rows(), PROMPTS_BOUND)
        await self._commands.refusals.at_stop()
        await self._memory.end(self._limiter.group_sends())
        self.running.clear()


def _cache_the_missing_sniffio() -> None:
    """httpcore tries ``import sniffio`` for every lock it makes (a few per Bot API call) and
    takes asyncio when it is missing; a failed import is not cached, so each try scanned
    sys.path on the disk (tens of ms per command under load). The miss is cached: None in
    sys.modules makes the import fail at once."""
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        # typeshed types sys.modules without the None the import system documents for this.
        sys.modules["sniffio"] = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Pauses between start-up attempts: ``first`` seconds, doubling up to ``most``."""

    first: float = 1.0
    most: float = 60.0

    def pauses(self) -> Iterator[float]:
        pause = self.first
        while True:
            yield pause
            pause = min(self.most, pause * 2)
