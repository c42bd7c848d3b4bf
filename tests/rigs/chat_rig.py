"""A replay stack with the Telegram front end on the Bot API emulator, for chat tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.app.bootstrap import Trading, assemble_replay
from bot.app.chat_root import build_cockpit, chat_venue, strategy_reload
from bot.app.config import Settings
from bot.app.startup import load_replay
from bot.chat.cockpit import Cockpit
from bot.chat.venue import Venue
from bot.core.clock import FakeClock, SystemClock
from bot.core.ports import CandleHistory
from bot.market.history import ReplayHistory
from bot.ops.scheduler import Jobs
from handlers.frontend import TelegramFrontend
from handlers.status_message import READING
from storage.alerts import SqliteAlertRepository
from storage.audit import SqliteAuditRepository
from storage.db import Database, open_database
from tests.doubles.telegram_emulator import Sent, TelegramEmulator, running
from tests.rigs.builders import replay_settings

ADMIN, TRADER, VIEWER, STRANGER = 1001, 1002, 1003, 666
USERS = {ADMIN: "admin", TRADER: "trader", VIEWER: "viewer"}


@dataclass
class Chat:
    emulator: TelegramEmulator
    frontend: TelegramFrontend
    trading: Trading
    alerts: SqliteAlertRepository
    audit: SqliteAuditRepository
    frontend_cockpit: Cockpit
    db: Database
    wall: FakeClock  # the chat's real time, frozen at the start: tests move it by hand

    async def ask(self, user: int, text: str, chat_id: int | None = None) -> str:
        return (await self.sent_back(user, text, chat_id)).text

    async def sent_back(self, user: int, text: str, chat_id: int | None = None) -> Sent:
        """The first message the bot sends back after ``user`` wrote ``text``."""
        chat = chat_id if chat_id is not None else user
        before = len(self.emulator.to(chat))
        self.emulator.say(user, text, chat_id=chat)
        return await self.reply(chat, after=before)

    async def reply(self, chat: int, after: int = 0, within: float = 30.0) -> Sent:
        """The bot's answer in ``chat`` beyond its first ``after`` messages. A state change
        sent with no recent reading of Telegram's clock first sends a "⏳" message (to read
        it), and its outcome or Confirm prompt follows in a new message (the ⏳ is then
        deleted): the answer is that message."""
        found = await self._answers(chat, after, 1, within)
        return found[0]

    async def answers(self, chat: int, count: int, within: float = 10.0) -> list[str]:
        """The texts of the first ``count`` answers ``chat`` shows, waiting for them."""
        return [m.text for m in await self._answers(chat, 0, count, within)]

    async def _answers(self, chat: int, after: int, count: int, within: float) -> list[Sent]:
        """The first ``count`` answers in ``chat`` beyond its first ``after`` messages (a
        "⏳" is none; a deleted message is gone), waiting for them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            found = [
                m
                for m in self.emulator.to(chat)[after:]
                if not m.deleted and not m.text.startswith(READING)
            ]
            if len(found) >= count:
                return found[:count]
            if loop.time() > deadline:
                shown = [m.text for m in self.emulator.to(chat)[after:]]
                raise AssertionError(f"{count} answer(s) not in chat {chat} in {within} s: {shown}")
            await asyncio.sleep(0.01)


@asynccontextmanager
async def chat_stack(
    tmp_path: Path,
    config: Settings | None = None,
    *,
    before_start: Callable[[TelegramEmulator], object] | None = None,
    connected: bool = True,
    venue: Venue | None = None,
    emulator: TelegramEmulator | None = None,
    **frontend: Any,
) -> AsyncIterator[Chat]:
    """``config``: the replay to run (default: the bundled samples, BTC/USDT running);
    ``before_start``: what happens in the chats before the bot starts (updates queued while it
    was down); ``connected``: wait until the bot is connected; ``frontend``: more options for
    TelegramFrontend; ``venue``: what the cockpit says it trades on (a replay's, paper);
    ``emulator``: the Telegram of an earlier stack (a restart: same chats, same database)."""
    config = config or replay_settings(tmp_path)
    wall = FakeClock(SystemClock().now())
    emulator = emulator or TelegramEmulator()
    emulator.clock = lambda: wall.now().timestamp()  # real time passes alike
    if before_start is not None:
        before_start(emulator)
    async with open_database(config.database_path) as db:
        replay = load_replay(config)
        trading = await assemble_replay(db, config, replay)
        async with chat_on(
            db,
            trading,
            venue or chat_venue(config, "replay", trading),
            ReplayHistory(replay.source),
            emulator,
            wall,
            connected=connected,
            settings=config,
            **frontend,
        ) as chat:
            yield chat


@asynccontextmanager
async def chat_on(
    db: Database,
    trading: Trading,
    venue: Venue,
    history: CandleHistory,
    emulator: TelegramEmulator,
    wall: FakeClock,
    *,
    connected: bool = True,
    settings: Settings | None = None,
    **frontend: Any,
) -> AsyncIterator[Chat]:
    """The Telegram front end on ``trading`` (a replay's or the live stack's), on ``emulator``;
    ``settings``: the config whose strategies /reload loads again and whose Dask scheduler
    /sweep runs on (None: no /reload, a LocalCluster per sweep)."""
    async with running(emulator) as base:
        jobs = Jobs(trading.clock)
        cockpit = build_cockpit(
            db,
            venue,
            trading.service,
            trading.engine,
            trading.control,
            history,
            jobs,
            trading.clock,
            scheduler=None if settings is None else settings.research.dask_scheduler,
            strategies=None if settings is None else strategy_reload(settings),
        )
        alerts = SqliteAlertRepository(db)
        started = TelegramFrontend(
            token=emulator.token,
            api_base_url=base,
            users=USERS,
            cockpit=cockpit,
            outbox=trading.outbox,
            alerts=alerts,
            clock=trading.clock,
            poll_timeout=1,
            wall=wall,
            **frontend,
        )
        started.start()
        if connected:
            await started.running.wait()
        try:
            yield Chat(
                emulator, started, trading, alerts, SqliteAuditRepository(db), cockpit, db, wall
            )
        finally:
            await started.stop()
            cockpit.charts.close()
