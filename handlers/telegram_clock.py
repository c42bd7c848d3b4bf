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

A self-hosted Bot API server (tdlib's telegram-bot-api) sends no Date at all. Then Telegram's
own dates are read instead, on things made just before they reach the host: the messages the
bot sends (dated when Telegram takes them), and the updates of a long poll that either waited
(Telegram answers a poll at once while updates wait, so one answered after ``WAITED_SECONDS``
carries only updates made during it) or was unbroken (asked within ``UNBROKEN_SECONDS`` of the
last one's successful answer: only updates made since). Telegram answers a waiting poll as
soon as an update comes, so the newest was made just before the answer (and an update is never
dated after Telegram's "now"). The first, quick answer after a start or a failure is no
reading: it carries whatever waited, however old.
``source`` says which clock ages are judged by.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from weakref import WeakKeyDictionary

import httpx

from bot.ports import Clock

log = logging.getLogger(__name__)

SKEW_ALERT_SECONDS = 10.0  # the host's clock this far off Telegram's: the admins are told
TRUSTED_SECONDS = 180.0  # an offset past this is told, not used to judge commands' ages
PLAUSIBLE_SECONDS = 3600.0  # a Date this far off the host's is not a reading of a clock
_SAMPLES = 5  # the offset is the median of the last few answers (one slow answer is noise)
_HALF_SECOND = 0.5  # a Date header is cut to the second: on average half a second early
UNBROKEN_SECONDS = 0.5  # a poll asked this soon after the last one's answer: its updates are new
WAITED_SECONDS = 0.5  # a poll answered after this long waited: its updates are new


class TelegramClock:
    """How far Telegram's clock is ahead of the host's (seconds; negative: behind), from the
    answers seen; ``on_skew`` hears the offset when it passes the alert threshold, and None
    when it is back within half of it."""

    def __init__(self, wall: Clock, on_skew: Callable[[float | None], object] = lambda s: None,
                 alert_after: float = SKEW_ALERT_SECONDS,
                 on_source: Callable[[str], object] = lambda s: None) -> None:  # fmt: skip
        """``on_source`` hears ``source`` whenever it changes."""
        self._wall = wall
        self._on_skew = on_skew
        self._on_source = on_source
        self._alert_after = alert_after
        self._samples: deque[float] = deque(maxlen=_SAMPLES)
        self._skewed = False
        self._dated = False  # a Date header was read: it is the only source from then on
        # when each call left, and when the last poll was answered (200): monotonic seconds
        self._asked: WeakKeyDictionary[httpx.Request, float] = WeakKeyDictionary()
        self._polled: float | None = None

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

    @property
    def source(self) -> str:
        """Which clock commands' ages are judged by, for /health and `pairpilot health`."""
        if not self._samples:
            return "the host's clock (no reading of Telegram's yet)"
        if not self.trusted:
            return f"the host's clock (Telegram's reads {self.offset:+.0f} s off: not trusted)"
        return f"Telegram's clock, read from {self.read_from}"

    @property
    def read_from(self) -> str:
        return "the Bot API's Date header" if self._dated else "Telegram's own message dates"

    async def on_request(self, request: httpx.Request) -> None:
        """An httpx request hook: when each call left (a long poll's wait is judged by it)."""
        self._asked[request] = time.monotonic()

    async def on_response(self, response: httpx.Response) -> None:
        """An httpx response hook: every Bot API answer is a reading of Telegram's clock,
        by its Date header or, without one, by the dates of what it carries."""
        header = response.headers.get("date")
        if header or self._dated:
            self.observe(header)
            return
        now, answered = self._wall.now(), time.monotonic()
        asked = self._asked.pop(response.request, None)
        method = response.request.url.path.rsplit("/", 1)[-1]
        if method == "getUpdates":
            new = asked is not None and (answered - asked >= WAITED_SECONDS or (
                self._polled is not None and asked - self._polled <= UNBROKEN_SECONDS))  # fmt: skip
            self._polled = answered if response.status_code == httpx.codes.OK else None
            if not new:
                return
        elif not method.startswith("send"):
            return
        await response.aread()
        try:
            dates = _dates(response.json().get("result"))
        except (ValueError, AttributeError):  # not the Bot API's JSON: no reading
            return
        if dates:
            self._add(max(dates) + _HALF_SECOND - now.timestamp(), "message dates")

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
        if not self._dated:  # the header is better than dates: theirs are dropped
            self._dated = True
            self._samples.clear()
        self._add((telegram - self._wall.now()).total_seconds() + _HALF_SECOND, header)

    def _add(self, sample: float, what: str) -> None:
        if abs(sample) > PLAUSIBLE_SECONDS:
            log.warning("Telegram's time read from %r is ignored: %.0f s off", what, sample)
            return
        source = self.source
        self._samples.append(sample)
        if self.source != source:
            self._on_source(self.source)
        off = abs(self.offset)
        if not self._skewed and off > self._alert_after:
            self._skewed = True
            log.warning("the host's clock is %.0f s off Telegram's", self.offset)
            self._on_skew(self.offset)
        elif self._skewed and off < self._alert_after / 2:
            self._skewed = False
            self._on_skew(None)


def _dates(result: Any) -> list[int]:
    """The Unix dates of new messages in a Bot API result: the bot's sent message(s), or the
    updates' messages (a button press carries its old prompt; an edit, its first date)."""
    items = result if isinstance(result, list) else [result]
    dates = []
    for item in items:
        if not isinstance(item, dict):
            continue
        message = item.get("message") if "update_id" in item else item
        if isinstance(message, dict):
            date = message.get("date")
            if isinstance(date, int) and not isinstance(date, bool):
                dates.append(date)
    return dates
