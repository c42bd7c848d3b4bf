"""Telegram's clock as the bot sees it: bounds on its offset from the host's clock.

A command's age is Telegram's time at its arrival minus the message's ``date``, which is in
Telegram's clock. Judged against the host's clock, a host 90 s fast turned every fresh /halt
into a Confirm, and a slow host let old commands run by themselves. Judged against a single
"reading" of Telegram's now, an old update taken for a fresh one (a backlog page, a late
delivery) or a wrong ``Date`` header (a self-hosted Bot API on a host with a bad clock, a
proxy) made old commands look fresh. So the offset (Telegram's clock minus the host's) is
only ever bounded, never guessed:

- every update's date is a LOWER bound: Telegram dated it before it reached the host;
- every message the bot sends bounds it on both sides: Telegram dated it after the send
  left and before its answer came (dates are whole seconds, hence the second added). These
  are Telegram's own clock, and the only source of the UPPER bound;
- a ``Date`` header is used (for the alert's estimate, never for ages) only while it lies
  within those bounds; one that contradicts them is ignored and told once.

A command's age is judged by the upper bound, so it is never underestimated: an old command
never looks fresh. Without a recent send there is no upper bound: ``latest`` says so, and the
caller sends first (the command's first message) and judges after. Readings are kept for
``READING_SECONDS`` (the offset drifts slowly).
``source`` says which clock ages are judged by.

The host's side of every reading (a send asked and answered, an update's arrival) is its
MONOTONIC clock, never its wall clock: NTP stepping the wall clock back 100 s during a run
otherwise left the bounds 100 s too small (an old /stoppair ran by itself), and stepped
forward, every fresh command looked old until the next send. Telegram's offset against the
monotonic clock does not move when the wall clock steps; the wall clock is only read to
show times and to tell the admins how far it is off. That monotonic clock counts a host's
suspend (``SystemClock`` reads CLOCK_BOOTTIME on Linux). One that stopped during a suspend
(CLOCK_MONOTONIC) would leave every upper bound too SMALL by the suspend's length after the
resume: Telegram's now underestimated, so old commands would look fresh, until a newer
reading contradicted the old bounds and replaced them.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from weakref import WeakKeyDictionary

import httpx

from bot.core.ports import Clock

log = logging.getLogger(__name__)

SKEW_ALERT_SECONDS = 10.0  # the host's clock this far off Telegram's: the admins are told
PLAUSIBLE_SECONDS = 86400.0  # a date this far off the host's is not a reading of a clock
READING_SECONDS = 600.0  # bounds older than this are forgotten
SLACK_SECONDS = 2.0  # a Date header this far outside the bounds contradicts them
_READINGS = 8  # the last few of each kind are kept


class TelegramClock:
    """Bounds on how far Telegram's clock is ahead of the host's monotonic clock (seconds);
    ``on_skew`` hears the estimate of the host's WALL clock's offset when it passes the alert
    threshold, and None when it is back within half of it; ``on_date_wrong`` hears (once) that
    the Date header contradicts Telegram's message dates."""

    def __init__(
        self,
        clock: Clock,
        on_skew: Callable[[float | None], object] = lambda s: None,
        alert_after: float = SKEW_ALERT_SECONDS,
        on_source: Callable[[str], object] = lambda s: None,
        on_date_wrong: Callable[[str], object] = lambda s: None,
    ) -> None:
        """``on_source`` hears ``source`` whenever it changes; ``clock``: the host's (its
        monotonic reading for every bound, its wall clock only for showing)."""
        self._clock = clock
        self._on_skew = on_skew
        self._on_source = on_source
        self._on_date_wrong = on_date_wrong
        self._alert_after = alert_after
        # (monotonic seconds when read, lower bound, upper bound), against the monotonic clock
        self._sent: deque[tuple[float, float, float]] = deque(maxlen=_READINGS)
        self._seen: deque[tuple[float, float]] = deque(maxlen=_READINGS)  # updates: lower only
        self._header: tuple[float, float, float] | None = None
        self._date_wrong = False
        self._skewed = False
        self._asked: WeakKeyDictionary[httpx.Request, float] = WeakKeyDictionary()  # monotonic

    def bounds(self) -> tuple[float | None, float | None]:
        """The offset's known (lower, upper) bounds against the host's wall clock as it reads
        now (for showing and the alert); None where none is known."""
        low, high = self._bounds()
        lead = self._wall_lead()
        return (None if low is None else low - lead), (None if high is None else high - lead)

    @property
    def offset(self) -> float:
        """The best estimate of how far Telegram's clock is ahead of the host's wall clock
        (0: nothing known), for the alert and for showing times; never for judging a
        command's age (``latest`` is)."""
        return self._estimate(default=self._wall_lead()) - self._wall_lead()

    def latest(self, at: float) -> datetime | None:
        """The latest Telegram's clock can read when the host's monotonic clock reads ``at``
        (None: no upper bound known: send something first)."""
        high = self._bounds()[1]
        return None if high is None else _utc(at + high)

    def earliest(self, at: float) -> datetime | None:
        """The earliest Telegram's clock can read when the host's monotonic clock reads
        ``at`` (None: no lower bound known)."""
        low = self._bounds()[0]
        return None if low is None else _utc(at + low)

    def telegram_time(self, at: float) -> datetime:
        """Telegram's time (the estimate) when the host's monotonic clock read ``at``."""
        return _utc(at + self._estimate(default=self._wall_lead()))

    def steady_time(self, telegram: datetime) -> float:
        """The host's monotonic reading when Telegram's clock read ``telegram`` (the
        estimate)."""
        return telegram.timestamp() - self._estimate(default=self._wall_lead())

    @property
    def source(self) -> str:
        """Which clock commands' ages are judged by, for /health and `pairpilot health`."""
        if self._bounds()[1] is None:
            return "Telegram's clock, read by a command's first message (no recent reading)"
        return f"Telegram's clock, read from {self.read_from}"

    @property
    def read_from(self) -> str:
        return "Telegram's own message dates"

    async def on_request(self, request: httpx.Request) -> None:
        """An httpx request hook: the host's (monotonic) time when each call left."""
        self._asked[request] = self._clock.monotonic()

    async def on_response(self, response: httpx.Response) -> None:
        """An httpx response hook: the Date header and the dates of what the answer carries
        bound Telegram's clock."""
        answered = self._clock.monotonic()
        asked = self._asked.pop(response.request, answered)
        source = self.source
        self._observe_header(response.headers.get("date"), asked, answered)
        method = response.request.url.path.rsplit("/", 1)[-1]
        if method.startswith("send"):  # getUpdates' dates: ``updates_arrived``
            await response.aread()
            try:
                dates = _dates(response.json().get("result"))
            except (ValueError, AttributeError):  # not the Bot API's JSON: no reading
                dates = []
            if dates:
                self.sent_dated(max(dates), asked, answered)
        if self.source != source:
            self._on_source(self.source)
        self._check_skew()

    def updates_arrived(self, result: Any) -> None:
        """getUpdates answered ``result`` (the JSON already decoded by PTB: decoding a page
        of 100 updates again here delayed an admin's /halt behind each page of a stranger's
        flood, bench/RESULTS.md): its newest update's date is a lower bound."""
        dates = _dates(result)
        if dates:
            self.update_dated(max(dates), self._clock.monotonic())
            self._check_skew()

    def update_dated(self, date: float, arrived: float) -> None:
        """An update dated ``date`` (Telegram's Unix seconds) reached the host at ``arrived``
        (its monotonic seconds): Telegram's clock read at least ``date`` then."""
        if self._plausible(date, arrived):
            self._seen.append((self._clock.monotonic(), date - arrived))
            self._agree(self._seen)

    def sent_dated(self, date: float, asked: float, answered: float) -> None:
        """A message the bot sent (asked at ``asked``, answered at ``answered``, the host's
        monotonic seconds) was dated ``date`` by Telegram, somewhere in between."""
        low, high = date - answered, date + 1 - asked
        if self._plausible(date, answered):
            self._sent.append((self._clock.monotonic(), low, high))
            self._agree(self._sent)

    def _bounds(self) -> tuple[float | None, float | None]:
        """The bounds against the monotonic clock."""
        fresh = self._clock.monotonic() - READING_SECONDS
        lows = [low for at, low, _ in self._sent if at >= fresh]
        lows += [low for at, low in self._seen if at >= fresh]
        highs = [high for at, _, high in self._sent if at >= fresh]
        return (max(lows) if lows else None), (min(highs) if highs else None)

    def _estimate(self, default: float) -> float:
        """The best estimate against the monotonic clock (``default`` when nothing is
        known): the Date header's while it agrees, else the middle of the bounds."""
        low, high = self._bounds()
        header = self._usable_header()
        if header is not None:
            guess = (header[1] + header[2]) / 2
        elif low is not None and high is not None:
            guess = (low + high) / 2
        else:
            guess = default
        if high is not None:
            guess = min(guess, high)
        return max(guess, low) if low is not None else guess

    def _wall_lead(self) -> float:
        """How far the host's wall clock is ahead of its monotonic clock, now."""
        return self._clock.now().timestamp() - self._clock.monotonic()

    def _observe_header(self, header: str | None, asked: float, answered: float) -> None:
        if not header:
            return
        try:
            telegram = parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        if telegram.tzinfo is None:
            return
        date = telegram.timestamp()
        if self._plausible(date, answered):
            self._header = (self._clock.monotonic(), date - answered, date + 1 - asked)

    def _usable_header(self) -> tuple[float, float, float] | None:
        """The last Date header's reading while it agrees with the bounds; one that
        contradicts them is told once and ignored."""
        if self._header is None or self._header[0] < self._clock.monotonic() - READING_SECONDS:
            return None
        low, high = self._bounds()
        wrong = (low is not None and self._header[2] < low - SLACK_SECONDS) or (
            high is not None and self._header[1] > high + SLACK_SECONDS
        )
        if not wrong:
            return self._header
        if not self._date_wrong:
            self._date_wrong = True
            lead = self._wall_lead()
            text = (
                f"the Bot API's Date header disagrees with Telegram's message dates (it "
                f"reads {self._header[1] - lead:+.0f} s off the host; they bound it to "
                f"{_shown(low, lead)}..{_shown(high, lead)} s): it is ignored"
            )
            log.warning("%s", text)
            self._on_date_wrong(text)
        return None

    def _agree(self, newest: deque[Any]) -> None:
        """Bounds that contradict each other mean the monotonic clock lost time against
        Telegram's (the host was suspended) or Telegram's clock was stepped: only the newest
        reading (the last of ``newest``) is kept."""
        low, high = self._bounds()
        if low is None or high is None or low <= high + SLACK_SECONDS:
            return
        log.warning(
            "Telegram's clock bounds contradict (%+.1f > %+.1f s against the monotonic "
            "clock): older readings dropped",
            low,
            high,
        )
        kept = newest[-1]
        self._sent.clear()
        self._seen.clear()
        newest.append(kept)

    def _plausible(self, date: float, at: float) -> bool:
        """Whether ``date`` (Telegram's) read at ``at`` (monotonic) is near the host's wall
        clock: far off, it is not a reading of a clock."""
        offset = date - (at + self._wall_lead())
        if abs(offset) <= PLAUSIBLE_SECONDS:
            return True
        log.warning("Telegram's time read as %.0f s off the host's is ignored", offset)
        return False

    def _check_skew(self) -> None:
        """Told only once Telegram's own dates bound the offset (a header alone may lie)."""
        if self._bounds()[1] is None:
            return
        offset = self.offset
        if not self._skewed and abs(offset) > self._alert_after:
            self._skewed = True
            log.warning("the host's clock is %.0f s off Telegram's", offset)
            self._on_skew(offset)
        elif self._skewed and abs(offset) < self._alert_after / 2:
            self._skewed = False
            self._on_skew(None)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _shown(bound: float | None, lead: float) -> str:
    return "?" if bound is None else f"{bound - lead:+.0f}"


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
