"""The secrets pairpilot reads from the environment or a --secrets file, never from the config
file (bot/app/config.py refuses them there): which there are, how they are read, and a
``repr`` that never shows them."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.core.errors import ConfigError

SECRET_VARIABLES = {
    "telegram_token": "PAIRPILOT_TELEGRAM_TOKEN",
    "telegram_webhook_secret": "PAIRPILOT_TELEGRAM_WEBHOOK_SECRET",
    "exchange_key": "PAIRPILOT_EXCHANGE_KEY",
    "exchange_secret": "PAIRPILOT_EXCHANGE_SECRET",
    "exchange_password": "PAIRPILOT_EXCHANGE_PASSWORD",
}

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Secrets:
    """Secrets from the environment. ``repr`` never shows them."""

    telegram_token: str | None = None
    telegram_webhook_secret: str | None = None  # Telegram sends it with every webhook call
    exchange_key: str | None = None
    exchange_secret: str | None = None
    exchange_password: str | None = None

    def __repr__(self) -> str:
        present = [name for name in SECRET_VARIABLES if getattr(self, name)]
        return f"Secrets(present={present})"

    def values(self) -> list[str]:
        """Every secret set (for redaction)."""
        return [value for name in SECRET_VARIABLES if (value := getattr(self, name))]

    @classmethod
    def from_environment(cls, environment: Mapping[str, str] | None = None) -> Secrets:
        env = os.environ if environment is None else environment
        return cls(
            **{
                name: unquoted(env.get(variable) or "") or None
                for name, variable in SECRET_VARIABLES.items()
            }
        )


def unquoted(value: str) -> str:
    """``value`` without one pair of matching surrounding quotes, as --secrets (python-dotenv)
    and compose read a quoted value; `docker run --env-file` passes the quotes on."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def read_secrets_file(path: Path) -> dict[str, str]:
    """The secrets in ``path``: KEY=VALUE lines, the format of systemd's EnvironmentFile and of
    Docker's --env-file. Warns when the file's group or others may read it."""
    from dotenv import dotenv_values

    if path.is_dir():  # what Docker makes of a bind-mounted secrets file that did not exist
        raise ConfigError(f"secrets file {path} is a directory; expected a KEY=VALUE file")
    try:
        mode = path.stat().st_mode
        values = dotenv_values(path)
    except OSError as error:
        raise ConfigError(f"secrets file {path} cannot be read: {error}") from None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        readers = " and ".join(
            who
            for who, bit in (("its group", stat.S_IRGRP), ("every user", stat.S_IROTH))
            if mode & bit
        )
        log.warning(
            "secrets file %s is readable by %s (mode %03o): run chmod 600 %s",
            path,
            readers,
            stat.S_IMODE(mode),
            path,
        )
    known = set(SECRET_VARIABLES.values())
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"secrets file {path}: unknown key {unknown[0]}; expected {', '.join(sorted(known))}"
        )
    return {key: value for key, value in values.items() if value}
