"""A word to the admins when the service cannot start at all: exit 2 (a data directory that is
full or unusable, a database from a newer pairpilot) is never restarted under systemd, so
without it the bot would stay down in silence. Straight through the Bot API, storing nothing:
the disk may be the very problem. Compose's `restart: unless-stopped` does restart exit 2,
about once a minute: the same notice goes at most once an hour, remembered in a marker file
in the temp directory (which a container keeps over its restarts), not in the data dir."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
from pathlib import Path

from telegram import Bot
from telegram.error import TelegramError

from bot.core.clock import SystemClock
from bot.core.telegram_options import TelegramOptions
from handlers.delivery import send_text

log = logging.getLogger(__name__)


NOTICE_EVERY = 3600.0  # seconds between two identical refusal notices


async def tell_admins_once(options: TelegramOptions, text: str) -> None:
    """``tell_admins``, unless the same text was sent within ``NOTICE_EVERY`` seconds."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    marker = Path(tempfile.gettempdir()) / f"pairpilot-notice-{digest}"
    try:
        if SystemClock().now().timestamp() - marker.stat().st_mtime < NOTICE_EVERY:
            log.warning("the admins were told within the hour already: %s", text)
            return
    except OSError:  # no marker yet (or none readable): tell them
        pass
    if await tell_admins(options, text):
        try:
            marker.touch()
        except OSError as error:
            log.warning("refusal notice marker %s not written: %s", marker, error)


async def tell_admins(options: TelegramOptions, text: str, within: float = 15.0) -> bool:
    """Send ``text`` to every admin (every user when none is); a Telegram that cannot be
    reached within ``within`` seconds is logged, never raised (the refusal itself must still
    exit). True when sent."""
    users = options.users
    admins = [user for user, role in users if role == "admin"] or [user for user, _ in users]
    if not admins:
        log.warning("no Telegram user to tell: %s", text)
        return False
    base = options.api_base_url.rstrip("/")
    bot = Bot(options.token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot")

    async def send() -> None:
        async with bot:
            for chat in admins:
                await send_text(bot, chat, text, html=False)

    try:
        await asyncio.wait_for(send(), timeout=within)
    except (TelegramError, TimeoutError) as error:
        log.warning("the admins could not be told on Telegram (%s): %s", error, text)
        return False
    return True
