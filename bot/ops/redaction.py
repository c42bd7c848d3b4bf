"""Secrets never reach a log: every log record is redacted as it is created.

A record factory (not a handler filter) so that it covers every logger and handler, third-party
ones included (httpx logs each Telegram request URL, and that URL holds the bot token), and the
formatted traceback of a logged exception too.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable
from typing import Any

MASK = "[redacted]"
_MIN_LENGTH = 6  # shorter values would mask ordinary words


def install(secrets: Iterable[str | None]) -> Callable[[], None]:
    """Mask ``secrets`` in every log record from now on; returns the undo."""
    values = sorted({s for s in secrets if s and len(s) >= _MIN_LENGTH}, key=len, reverse=True)
    previous = logging.getLogRecordFactory()
    if not values:
        return lambda: None

    def redact(text: str) -> str:
        for value in values:
            text = text.replace(value, MASK)
        return text

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None  # the redacted text stands in for it
        return record

    logging.setLogRecordFactory(factory)
    return lambda: logging.setLogRecordFactory(previous)
