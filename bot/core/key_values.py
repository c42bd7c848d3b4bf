"""KEY=VALUE words read as a dict: the one parser behind chat commands, the CLI and sweeps.

Each caller words its own error (a chat says ``'x': expected key=value``, the CLI names its
option), so the message a user sees depends on where they typed, not on this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bot.core.errors import UserInputError


def key_value(item: str, malformed: Callable[[str], str]) -> tuple[str, str]:
    """``"slow = 26"`` -> ``("slow", "26")``, both sides stripped; an item without ``=`` or
    with a blank key or value raises UserInputError(``malformed(item)``)."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise UserInputError(malformed(item))
    return key.strip(), value.strip()


def key_values(items: Iterable[str], malformed: Callable[[str], str]) -> dict[str, str]:
    """``["fast=12", "slow = 26"]`` -> ``{"fast": "12", "slow": "26"}``; the first malformed
    item (see ``key_value``) or a key given twice (which value was meant is unknowable) raises
    UserInputError and nothing is returned."""
    values: dict[str, str] = {}
    for item in items:
        key, value = key_value(item, malformed)
        if key in values:
            raise UserInputError(f"{key} is given twice ({values[key]} and {value}): give it once")
        values[key] = value
    return values
