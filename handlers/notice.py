"""A word to the admins when the service cannot start at all: exit 2 (a data directory that is
full or unusable, a database from a newer pairpilot) is never restarted, so without it the bot
would stay down in silence. Straight through the Bot API, storing nothing: the disk may be
the very problem."""

from __future__ import annotations

import asyncio
import logging

from telegram import Bot
from telegram.error import TelegramError

from bot.config import Settings
from handlers.delivery import send_text

log = logging.getLogger(__name__)


async def tell_admins(settings: Settings, token: str, text: str, within: float = 15.0) -> None:
    """Send ``text`` to every admin; a Telegram that cannot be reached within ``within``
    seconds is logged, never raised (the refusal itself must still exit)."""
    admins = [user.id for user in settings.telegram.users if user.role == "admin"]
    if not admins:
        return
    base = settings.telegram.api_base_url.rstrip("/")
    bot = Bot(token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot")

    async def send() -> None:
        async with bot:
            for chat in admins:
                await send_text(bot, chat, text, html=False)

    try:
        await asyncio.wait_for(send(), timeout=within)
    except (TelegramError, TimeoutError) as error:
        log.warning("the admins could not be told on Telegram (%s): %s", error, text)
