"""How KEY=VALUE options word an error, and one-line JSON output: shared by the `pairpilot`
command modules.

A leaf: bot/cli/main.py imports the command modules, so what they share cannot live there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from bot.core.errors import UserInputError


def malformed(option: str) -> Callable[[str], str]:
    """How a KEY=VALUE ``option`` words a bad item (for bot.core.key_values)."""
    return lambda item: f"{option} {item!r}: expected KEY=VALUE, like fast=12"


def json_text(document: object) -> str:
    """Compact JSON on one line (the C encoder; indenting is several times slower)."""
    return json.dumps(document, separators=(",", ":"))


def write_chart(path: Path, png: bytes) -> None:
    """``png`` written to ``path``, or one clear line (UserInputError) saying why not. A command
    writes its chart before it stores its receipt, so a chart that cannot be written leaves
    no receipt whose id was never shown."""
    try:
        path.write_bytes(png)
    except OSError as error:
        raise UserInputError(f"--chart {path}: cannot write it ({error.strerror})") from None
