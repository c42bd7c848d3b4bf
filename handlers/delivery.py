"""Sending text to Telegram safely, and the alerts sink that drains the outbox into chats.

Long texts are split at Telegram's 4,096-character limit on line boundaries; a text whose
markup Telegram refuses goes again as plain text. Deliveries are recorded per chat, so a
retry after a partial failure skips the chats done. The Bot API has no idempotency key: when
a send went out and no answer came back (a crash, a broken connection), the message may have
arrived, and the resend says it may be a repeat; an alert is never lost for that doubt.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx
from telegram import Bot, Message
from telegram.constants import MessageLimit, ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, TelegramError, TimedOut

from bot.alerts.preferences import ADMINS_ONLY, AlertPreferences
from bot.core.domain import Alert
from bot.core.ports import AlertDeliveries, Clock

log = logging.getLogger(__name__)
LATE_AFTER = timedelta(minutes=2)  # an alert older than this says how late it is
MAY_REPEAT = "(may be a repeat)"  # a resend after a send whose outcome was never known
_TAGS = re.compile(r"</?[a-z-]+[^>]*>")


def chunks(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut at line ends where possible."""
    pieces, current = [], ""
    for line in text.splitlines(keepends=True):
        while len(line) > limit:  # one line longer than a message: cut it hard
            if current:
                pieces.append(current)
                current = ""
            pieces.append(line[:limit])
            line = line[limit:]
        if len(current) + len(line) > limit:
            pieces.append(current)
            current = ""
        current += line
    if current or not pieces:
        pieces.append(current)
    return [piece.rstrip("\n") or "." for piece in pieces]


def plain(text: str) -> str:
    """The HTML subset we write, as plain text."""
    return (
        _TAGS.sub("", text)
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", '"')
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
    )


async def send_text(
    bot: Bot,
    chat_id: int,
    text: str,
    *,
    html: bool = True,
    reply_markup: Any = None,
    silent: bool = False,
) -> list[Message]:
    """Send ``text`` (Telegram HTML unless ``html`` is False), split to fit; a piece whose
    markup Telegram refuses is sent again as plain text. The markup rides on the last piece."""
    pieces = chunks(text)
    sent = []
    for index, piece in enumerate(pieces):
        markup = reply_markup if index == len(pieces) - 1 else None
        try:
            sent.append(
                await bot.send_message(
                    chat_id,
                    piece,
                    parse_mode=ParseMode.HTML if html else None,
                    reply_markup=markup,
                    disable_notification=silent,
                )
            )
        except BadRequest as error:
            if not html or "parse" not in str(error).lower():
                raise
            log.warning("Telegram refused the markup (%s); sending plain text", error)
            for part in chunks(plain(piece)):
                sent.append(
                    await bot.send_message(
                        chat_id, part, reply_markup=markup, disable_notification=silent
                    )
                )
    return sent


async def send_photo(
    bot: Bot, chat_id: int, png: bytes, caption: str, *, html: bool = True, silent: bool = False
) -> Message:
    """A PNG with its caption; plain text if the markup is refused. A caption over Telegram's
    limit is cut at a line end and the rest follows as text, so no line is lost (a verdict
    or a receipt id at its end included)."""
    head = chunks(caption, MessageLimit.CAPTION_LENGTH)[0]
    rest = caption[len(head) :].lstrip("\n")
    try:
        photo = await bot.send_photo(
            chat_id,
            png,
            caption=head,
            parse_mode=ParseMode.HTML if html else None,
            disable_notification=silent,
        )
    except BadRequest as error:
        if not html or "parse" not in str(error).lower():
            raise
        head = chunks(plain(caption), MessageLimit.CAPTION_LENGTH)[0]
        rest, html = plain(caption)[len(head) :].lstrip("\n"), False
        photo = await bot.send_photo(chat_id, png, caption=head, disable_notification=silent)
    if rest:
        await send_text(bot, chat_id, rest, html=html, silent=silent)
    return photo


def outcome_unknown(error: TelegramError) -> bool:
    """Whether a failed send may still have reached the chat: the request left and no answer
    came back (a read timeout, a connection broken mid-request). An HTTP answer, a refused
    connection or a pool timeout means Telegram showed nothing."""
    cause = error.__cause__
    if isinstance(error, TimedOut):
        return not isinstance(cause, httpx.ConnectTimeout | httpx.PoolTimeout)
    return (
        isinstance(error, NetworkError)
        and isinstance(cause, httpx.HTTPError)
        and not isinstance(cause, httpx.ConnectError)
    )


class TelegramSink:
    """The outbox's delivery end: every alert to every user's chat as each user chose (on,
    silent, off); once per chat, unless a send's outcome was never known (see above)."""

    def __init__(
        self,
        bot: Bot,
        chats: Sequence[int],
        alerts: AlertDeliveries,
        preferences: AlertPreferences,
        clock: Clock,
        late_after: timedelta | None = LATE_AFTER,
        admins: Sequence[int] | None = None,
    ) -> None:
        """``late_after``: an alert older than this says how late it is (None: never);
        ``admins``: the chats that get the admins-only kinds (default: every chat)."""
        self._late_after = late_after
        self._admins = set(chats if admins is None else admins)
        self._preferences = preferences
        self._bot = bot
        self._chats = list(chats)
        self._alerts = alerts
        self._clock = clock

    async def send(self, alert: Alert) -> None:
        """Raises when a chat could not be reached: the alert stays queued for the rest."""
        delay = self._clock.now() - alert.created_at
        text = alert.text
        if self._late_after is not None and delay > self._late_after:
            text = f"(late by {int(delay.total_seconds() // 60)} min) {text}"
        done = await self._alerts.delivered_chats(alert.id)
        attempted = await self._alerts.attempted_chats(alert.id)
        for chat in self._chats:
            if chat in done or (alert.kind in ADMINS_ONLY and chat not in self._admins):
                continue
            mode = await self._preferences.mode(chat, alert.kind)
            if mode != "off":
                body = f"{MAY_REPEAT} {text}" if chat in attempted else text
                await self._send(alert, chat, body, silent=mode == "silent")
            await self._alerts.mark_delivered_to(alert.id, chat, self._clock.now())

    async def send_unstored(self, text: str, reached: set[int]) -> None:
        """To the admins (every user when none is an admin), recording nothing (the disk is
        full): no preferences, no attempts."""
        for chat in sorted((self._admins or set(self._chats)) - reached):
            try:
                await send_text(self._bot, chat, text, html=False)
            except (Forbidden, BadRequest) as error:
                log.warning("alert not sent to chat %s: %s", chat, error)
            reached.add(chat)

    async def _send(self, alert: Alert, chat: int, text: str, *, silent: bool) -> None:
        await self._alerts.mark_attempted(alert.id, chat)
        try:
            if alert.photo is not None:
                await send_photo(self._bot, chat, alert.photo, text, html=False, silent=silent)
            else:
                await send_text(self._bot, chat, text, html=False, silent=silent)
        except (Forbidden, BadRequest) as error:  # blocked, or never opened: retrying won't help
            log.warning("alert %s not sent to chat %s: %s", alert.id, chat, error)
        except TelegramError as error:
            if not outcome_unknown(error):
                await self._alerts.clear_attempt(alert.id, chat)
            raise
