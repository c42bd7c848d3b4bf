"""How KEY=VALUE options word an error, and one-line JSON output: shared by the `pairpilot`
command modules.

A leaf: bot/cli/main.py imports the command modules, so what they share cannot live there.
"""

from __future__ import annotations

import json
from collections.abc import Callable


def malformed(option: str) -> Callable[[str], str]:
    """How a KEY=VALUE ``option`` words a bad item (for bot.core.key_values)."""
    return lambda item: f"{option} {item!r}: expected KEY=VALUE, like fast=12"


def json_text(document: object) -> str:
    """Compact JSON on one line (the C encoder; indenting is several times slower)."""
    return json.dumps(document, separators=(",", ":"))
