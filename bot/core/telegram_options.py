"""What the Telegram front end (handlers/) takes from the config and the secrets: the
composition root (bot/app/config.py, ``telegram_options``) builds it, so handlers/ never
reads the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class WebhookAddress(Protocol):
    """Where Telegram posts updates, and where the bot listens for them."""

    @property
    def url(self) -> str: ...

    @property
    def listen(self) -> str: ...

    @property
    def port(self) -> int: ...


@dataclass(frozen=True, slots=True)
class TelegramOptions:
    token: str
    api_base_url: str
    users: tuple[tuple[int, str], ...]  # (user id, role), in the config's order
    webhook: WebhookAddress | None  # long polling when None
    webhook_secret: str | None
    max_command_age: float  # seconds after which a command no longer changes state by itself
