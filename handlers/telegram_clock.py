"""Telegram's clock as the bot sees it, from the ``Date`` header of the Bot API's answers.

A command's age is Telegram's time at its arrival minus the message's ``date``, which is in
Telegram's clock. Judged against the host's clock instead, a host 90 s fast turned every
fresh /halt into a Confirm saying "sent 1 min ago", and a slow host let old commands run by
themselves. Every answer of the Bot API carries a ``Date`` header (whole seconds), so the
offset is known from the first call (getMe) on; the admins are told when the host's clock is
off by more than ``SKEW_ALERT_SECONDS``, and when it agrees again.

The header is only as good as whatever wrote it (a self-hosted Bot API server on a host with
a bad clock, an egress proxy): a Date more than ``PLAUSIBLE_SECONDS`` off, or out of range,
is no reading at all; an offset past ``TRUSTED_SECONDS`` is told to the admins but commands'
ages are then judged by the host's clock (a wrong Date must not refuse fresh commands).
"""

from __future__ import annotations

import logging
import statistics
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx

from bot.ports import Clock

log = logging.getLogger(__name__)

SKEW_ALERT_SECONDS = 10.0  # the host's clock this far off Telegram's: the admins are told
TRUSTED_SECONDS = 180.0  # an offset past this is told, not used to judge commands' ages
PLAUSIBLE_SECONDS = 3600.0  # a Date this far off the host's is not a reading of a clock
_SAMPLES = 5  # the offset is the median of the last few answers (one slow answer is noise)
_HALF_SECOND = 0.5  # a Date header is cut to the second: on average half a second early


class TelegramClock:
    """How far Telegram's clock is ahead of the host's (seconds; negative: behind), from the
    answers seen; ``on_skew`` hears the offset when it passes the alert threshold, and None
    when it is back within half of it."""

    def __init__(self, wall: Clock, on_skew: Callable[[float | None], object] = lambda s: None,
                 alert_after: float = SKEW_ALERT_SECONDS) -> None:  # fmt: skip
        self._wall = wall
        self._on_skew = on_skew
        self._alert_after = alert_after
        self._samples: deque[float] = deque(maxlen=_SAMPLES)
        self._skewed = False

    @property
    def offset(self) -> float:
        return statistics.median(self._samples) if self._samples else 0.0

    @property
    def trusted(self) -> bool:
        """Whether the offset is small enough to judge commands' ages by."""
        return abs(self.offset) <= TRUSTED_SECONDS

    def telegram_time(self, host: datetime) -> datetime:
        """The time on Telegram's clock when the host's read ``host`` (the host's own
        reading while the offset is not trusted)."""
        return host + timedelta(seconds=self.offset) if self.trusted else host

    def host_time(self, telegram: datetime) -> datetime:
        """The host's reading when Telegram's clock read ``telegram`` (inverse of
        ``telegram_time``)."""
        return telegram - timedelta(seconds=self.offset) if self.trusted else telegram

    async def on_response(self, response: httpx.Response) -> None:
        """An httpx response hook: every Bot API answer is a reading of Telegram's clock."""
        self.observe(response.headers.get("date"))

    def observe(self, header: str | None) -> None:
        """One ``Date`` header, read now; a missing or malformed one is ignored."""
        if not header:
            return
        try:
            telegram = parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        if telegram.tzinfo is None:
            return
        sample = (telegram - self._wall.now()).total_seconds() + _HALF_SECOND
        if abs(sample) > PLAUSIBLE_SECONDS:
            log.warning("a Bot API answer's Date %r is ignored: %.0f s off", header, sample)
            return
        self._samples.append(sample)
        off = abs(self.offset)
        if not self._skewed and off > self._alert_after:
            self._skewed = True
            log.warning("the host's clock is %.0f s off Telegram's", self.offset)
            self._on_skew(self.offset)
        elif self._skewed and off < self._alert_after / 2:
            self._skewed = False
            self._on_skew(None)
