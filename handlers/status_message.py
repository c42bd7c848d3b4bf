"""A long command's progress, shown in one message edited in place."""

from __future__ import annotations

import contextlib
import logging

from telegram import Bot
from telegram.error import TelegramError

from handlers.delivery import send_text

log = logging.getLogger(__name__)

READING = "⏳"  # starts a state change's first message, sent to read Telegram's clock
DONE_BELOW = "Done, see below."  # a "⏳" that could not be deleted once its answer came


class StatusMessage:
    """One message that shows a long command's progress, edited in place."""

    def __init__(self, bot: Bot, chat_id: int) -> None:
        self.bot = bot
        self.chat_id = chat_id
        self._message_id: int | None = None
        self._text = ""

    @property
    def shown(self) -> bool:
        return self._message_id is not None

    @property
    def reading(self) -> bool:
        """Whether the message shown is the "⏳" sent to read Telegram's clock."""
        return self.shown and self._text.startswith(READING)

    async def remove(self) -> None:
        """Delete the message shown (what it stood for now comes in a newer one); one that
        cannot be deleted is edited to say so, never left to read as still in progress."""
        if self._message_id is None:
            return
        message_id, self._message_id, self._text = self._message_id, None, ""
        try:
            await self.bot.delete_message(self.chat_id, message_id)
        except TelegramError as error:
            log.warning("status message not deleted (%s): marked done", error)
            with contextlib.suppress(TelegramError):
                await self.bot.edit_message_text(
                    DONE_BELOW, chat_id=self.chat_id, message_id=message_id
                )

    async def edit(self, text: str) -> None:
        """Show ``text`` if a message is shown already (none is sent for it)."""
        if self.shown:
            await self.show(text)

    async def show(self, text: str) -> None:
        """Show ``text``; a failed edit (the user deleted the message) never stops the work:
        the text then goes in a new message."""
        if text == self._text:
            return
        if self._message_id is None:
            if text == "Done.":
                return
            (sent,) = (await send_text(self.bot, self.chat_id, text))[:1]
            self._message_id = sent.message_id
        else:
            try:
                await self.bot.edit_message_text(
                    text, chat_id=self.chat_id, message_id=self._message_id, parse_mode="HTML"
                )
            except TelegramError as error:
                log.warning("progress message not edited (%s); sending a new one", error)
                self._message_id = None
                self._text = ""
                if text != "Done.":
                    await self.show(text)
                return
        self._text = text
