"""Log lines an operator's tools parse: ISO 8601 UTC timestamps with a ``Z`` (journald,
Docker and Loki show several machines' lines side by side), and with ``--log-format json`` one
JSON object per line and nothing else on the stream (alerts included)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

NOISY = ("httpx", "apscheduler", "aiosqlite")  # a line per request or job run


def utc_time(record: logging.LogRecord) -> str:
    """``2026-11-25T21:43:44.123Z``."""
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class UtcFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_time(record)


def configure_logging(level: str, form: str) -> None:
    handler = logging.StreamHandler()
    if form == "json":
        from pythonjsonlogger.json import JsonFormatter

        class UtcJsonFormatter(JsonFormatter):
            def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
                return utc_time(record)

        handler.setFormatter(
            UtcJsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(UtcFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))


def alert_logger(line: str) -> None:
    """Where alerts go without Telegram under JSON logs: a log record, not a bare stdout line."""
    logging.getLogger("pairpilot.alerts").info(line, extra={"event": "alert"})
