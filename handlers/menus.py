"""Telegram's command menus: what each user sees offered, by the role they have."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from telegram import Bot, BotCommand, BotCommandScopeChat
from telegram.error import BadRequest

from handlers.command_table import COMMANDS, ROLES

log = logging.getLogger(__name__)


def menu(role: str) -> list[BotCommand]:
    """The commands ``role`` may run, for Telegram's command menu."""
    rank = ROLES.index(role)
    return [
        BotCommand(name, command.summary[:256])
        for name, command in COMMANDS.items()
        if ROLES.index(command.role) <= rank
    ]


async def set_menus(bot: Bot, users: Mapping[int, str]) -> None:
    """The command menu: everyone sees the viewer's commands; each user in their private
    chat sees what their role may run."""
    await bot.set_my_commands(menu("viewer"))
    for user, role in sorted(users.items()):
        try:
            await bot.set_my_commands(menu(role), scope=BotCommandScopeChat(user))
        except BadRequest as error:  # "chat not found": the user never opened the bot
            log.warning(
                "no command menu for user %s (%s): they see the default menu "
                "until they write to the bot",
                user,
                error,
            )
