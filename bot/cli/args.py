"""KEY=VALUE options and one-line JSON output, shared by the `pairpilot` command modules.

A leaf: bot/cli/main.py imports the command modules, so what they share cannot live there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from bot.core.errors import UserInputError


def parse_params(pairs: Sequence[str], option: str = "--param") -> dict[str, str]:
    """``["fast=12", "slow=26"]`` -> ``{"fast": "12", "slow": "26"}``."""
    params: dict[str, str] = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UserInputError(f"{option} {item!r}: expected KEY=VALUE, like fast=12")
        params[key.strip()] = value.strip()
    return params


def json_text(document: object) -> str:
    """Compact JSON on one line (the C encoder; indenting is several times slower)."""
    return json.dumps(document, separators=(",", ":"))
