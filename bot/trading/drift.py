"""The drift monitor: a live pair's closed trades against its paper twin's, and what follows.

The measure. For each live pair, the window starts when the monitor first saw the pair (the
twin started trading it) or when the pair was last promoted back to live (``/promote``). The
closed trades of the live books and of the twin's books in that window are matched by the
candle their entry was decided on (the entry time floored to the run's timeframe: both act in
the same tick, the twin just after the live pair). The gap is measured on the rows both sides
traded: the live PnL less the twin's scaled to the live trade's size (a partial live fill at
the right price is no drift), and the relative gap is that over the live trades' cost. Its
size, either way, is compared with ``[drift] threshold``: a fraction of the cost, 0.01 = the
live trades made 1% of what they cost more or less than the paper model says they should have.
A trade only one side made is shown and counted apart, not measured: the twin books its own
fills after the live pair's, so a crash between the two, a lost twin file, /halt (which the
twin does not share) or the live venue refusing an order leave one side alone, and none of
those is the venue's price.

Alert once: when the relative gap first exceeds the threshold, one "drift" alert; not again
while it stays over (across restarts: kept in the state store), and again only after it came
back under the threshold and crossed it anew.

Demotion (``[drift] demote_to_paper``, off by default): at that alert the pair is also demoted
to paper. The live run of a demoted pair then ticks as paused: no new live entries, while an
open live position keeps its stops and its strategy's exit (it is never left unmanaged, and
never dumped at market by the monitor); the twin goes on trading the pair on paper. The gap
of a demoted pair is frozen at its demotion (the twin's later trades are shown, not measured),
and no more alerts come for it until it is promoted. The
demotion is kept in the state store, in one transaction with its audit row and its alert (the
alerts' outbox table is in the same database), so a crash keeps all three or none: a restart
keeps it, audited and alerted, or measures again and demotes anew;
``promote`` (the admin's ``/promote PAIR``, confirmed) puts the pair back to live and starts a
new window, so the old gap does not demote it again at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from bot.core.domain import AlertPriority, Trade, from_ms, to_ms
from bot.core.errors import UserInputError
from bot.core.ports import AuditLog, Clock, FillHistory, StateStore, Transactions
from bot.core.timeframes import timeframe_seconds
from bot.portfolio.performance import round_trips

if TYPE_CHECKING:  # the outbox brings the metrics server: config loading needs neither
    from bot.alerts.outbox import AlertOutbox

log = logging.getLogger(__name__)

# {pair: {"since": ms, "alerted": bool, "demoted": bool, "demoted_at": ms}}
STATE_KEY = "drift.pairs"
TooSmall = Callable[[str, float, float], str | None]


async def _none() -> None:
    """Nothing more to write."""


class DriftSettings(BaseModel):
    """[drift]: the paper twin of each live pair and what its drift sets off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True  # in live mode: a paper twin per pair, /drift, the alert
    threshold: float = Field(0.01, gt=0, le=1)  # |live - twin PnL| / the trades' cost
    demote_to_paper: bool = False  # at the alert, the pair trades on paper until /promote


@dataclass(frozen=True, slots=True)
class TradeRow:
    """The trades live and twin entered on one candle (either may be missing)."""

    candle: datetime  # the entry's candle
    live: Trade | None
    twin: Trade | None

    @property
    def matched(self) -> bool:
        """Both sides traded on this candle: the row is measured."""
        return self.live is not None and self.twin is not None

    @property
    def gap(self) -> float:
        """Live PnL less the twin's at the live trade's size (0 for a one-sided row)."""
        if self.live is None or self.twin is None or not self.twin.cost:
            return 0.0
        return self.live.pnl - self.twin.pnl * self.live.cost / self.twin.cost

    @property
    def cost(self) -> float:
        """The live trade's cost, where the row is measured."""
        return self.live.cost if self.live is not None and self.twin is not None else 0.0


@dataclass(frozen=True, slots=True)
class Drift:
    """A pair's live trades against its twin's over the window since ``since``."""

    pair: str
    since: datetime
    rows: tuple[TradeRow, ...]
    until: datetime | None = None  # when it was demoted: the trades after are the twin's alone

    @property
    def measured(self) -> tuple[TradeRow, ...]:
        """The rows the gap is measured on: both sides traded, entered before a demotion."""
        return tuple(
            row
            for row in self.rows
            if row.matched and (self.until is None or row.candle < self.until)
        )

    @property
    def one_sided(self) -> tuple[TradeRow, ...]:
        """Trades only one side made (shown, not measured)."""
        return tuple(row for row in self.rows if not row.matched)

    @property
    def live_pnl(self) -> float:
        return sum(row.live.pnl for row in self.measured if row.live)

    @property
    def twin_pnl(self) -> float:
        return sum(row.twin.pnl for row in self.measured if row.twin)

    @property
    def gap(self) -> float:
        return sum(row.gap for row in self.measured)

    @property
    def relative(self) -> float:
        cost = sum(row.cost for row in self.measured)
        return self.gap / cost if cost else 0.0

    def first_apart(self, tolerance: float) -> TradeRow | None:
        """The first measured row whose gap is over ``tolerance`` of its cost."""
        for row in self.measured:
            if abs(row.gap) > tolerance * row.cost:
                return row
        return None


def entry_candle(trade: Trade, timeframe: str) -> datetime:
    """The candle ``trade`` entered in (its entry time floored to ``timeframe``): the same for
    live, twin and backtest trades decided on the same closed candle."""
    step = timeframe_seconds(timeframe) * 1000
    return from_ms(to_ms(trade.entry_time) // step * step)


def match_trades(live: Sequence[Trade], twin: Sequence[Trade], timeframe: str) -> list[TradeRow]:
    """Rows of ``live`` and ``twin`` trades keyed by their entry's candle, oldest first."""
    lives = {entry_candle(trade, timeframe): trade for trade in live}
    twins = {entry_candle(trade, timeframe): trade for trade in twin}
    return [
        TradeRow(key, lives.get(key), twins.get(key)) for key in sorted(set(lives) | set(twins))
    ]


class DriftMonitor:
    """Measures each live pair's drift, alerts once per crossing, demotes and promotes."""

    def __init__(
        self,
        *,
        settings: DriftSettings,
        live_fills: FillHistory,
        twin_fills: FillHistory,
        live_small: TooSmall,
        twin_small: TooSmall,
        state: StateStore,
        outbox: AlertOutbox,
        audit: AuditLog,
        transactions: Transactions,
        clock: Clock,
    ) -> None:
        """``state``, ``outbox`` and ``audit``: the live books' (the twin's are its own), whose
        ``transactions`` they join: a demotion, its audit row and its alert are kept together
        or not at all (a crash between them would leave a pair demoted unannounced)."""
        self.settings = settings
        self._live_fills, self._twin_fills = live_fills, twin_fills
        self._live_small, self._twin_small = live_small, twin_small
        self._state, self._outbox, self._audit, self._clock = state, outbox, audit, clock
        self._transactions = transactions
        self._pairs: dict[str, dict[str, object]] = {}

    async def load(self) -> None:
        """The pairs' windows, alerts and demotions as the state store kept them."""
        self._pairs = dict(await self._state.get(STATE_KEY) or {})

    def demoted(self, pair: str) -> bool:
        return bool(self._pairs.get(pair, {}).get("demoted"))

    def demotions(self) -> list[str]:
        return sorted(pair for pair in self._pairs if self.demoted(pair))

    def watched(self) -> list[str]:
        return sorted(self._pairs)

    async def start(self, pair: str) -> None:
        """``pair``'s window starts now, unless it has one."""
        if pair not in self._pairs:
            await self._save(pair, {"since": to_ms(self._clock.now()), "alerted": False})

    async def drift(self, pair: str, timeframe: str) -> Drift:
        """``pair``'s closed live and twin trades in its window, matched."""
        entry = self._pairs.get(pair)
        if entry is None:
            raise UserInputError(f"{pair} has no paper twin: it is not trading live here")
        since = from_ms(int(str(entry["since"])))
        demoted = entry.get("demoted_at")
        until = from_ms(int(str(demoted))) if demoted is not None else None
        live = await self._trades(self._live_fills, self._live_small, pair, since)
        twin = await self._trades(self._twin_fills, self._twin_small, pair, since)
        return Drift(pair, since, tuple(match_trades(live, twin, timeframe)), until)

    async def check(self, pair: str, timeframe: str) -> Drift:
        """Measure ``pair``; alert (and demote) at a crossing, re-arm once back under."""
        drift = await self.drift(pair, timeframe)
        entry = self._pairs[pair]
        if self.demoted(pair):  # measured no more: it trades on paper only, until promoted
            return drift
        over = abs(drift.relative) > self.settings.threshold
        if over and not entry.get("alerted"):
            demote = self.settings.demote_to_paper
            if demote:
                entry = {**entry, "demoted": True, "demoted_at": to_ms(self._clock.now())}
            await self._save(pair, {**entry, "alerted": True}, lambda: self._alert(drift, demote))
        elif not over and entry.get("alerted"):
            await self._save(pair, {**entry, "alerted": False})
        return drift

    async def promote(self, pair: str) -> None:
        """``pair`` trades live again, from a new window. UserInputError: not demoted."""
        if not self.demoted(pair):
            raise not_demoted(pair)
        now = self._clock.now()
        text = f"{pair} promoted back to live trading; its drift is measured anew from now"
        entry: dict[str, object] = {"since": to_ms(now), "alerted": False, "demoted": False}
        await self._save(pair, entry, lambda: self._outbox.push("drift", AlertPriority.INFO, text))

    async def _alert(self, drift: Drift, demoted: bool) -> None:
        gap = f"{drift.gap:+,.2f} ({drift.relative:+.2%} of the trades' cost)"
        text = (
            f"{drift.pair}: live trading departs from its paper twin by {gap}, over the "
            f"{self.settings.threshold:.2%} threshold, over {len(drift.measured)} trade(s); /drift "
            f"{drift.pair} shows where."
        )
        if demoted:
            text += (
                " Demoted to paper: no new live entries (an open position keeps its exits); "
                f"/promote {drift.pair} puts it back."
            )
            await self._audit.add(
                actor="pairpilot",
                command="demote",
                arguments=[drift.pair],
                result=f"demoted to paper: drift {gap}",
                now=self._clock.now(),
            )
        await self._outbox.push("drift", AlertPriority.ERROR, text)

    async def _trades(
        self, fills: FillHistory, small: TooSmall, pair: str, since: datetime
    ) -> list[Trade]:
        booked = await fills.all(since=since, pair=pair)  # the pair's only: inside the tick
        return round_trips(booked, small)

    async def _save(
        self, pair: str, entry: dict[str, object], then: Callable[[], Awaitable[object]] = _none
    ) -> None:
        """Keep ``pair``'s ``entry`` and write ``then``'s rows (its alert, its audit row) in
        one transaction; in memory once it committed, so a failure leaves both as they were.
        The other pairs are read once the transaction is held: a save that waited for it
        (a /promote while the tick demotes another pair) must not undo the one before."""
        async with self._transactions.transaction():
            pairs = {**self._pairs, pair: entry}
            await self._state.set(STATE_KEY, pairs, self._clock.now())
            await then()
        self._pairs = pairs


def not_demoted(pair: str) -> UserInputError:
    """/promote's refusal of a pair the monitor has not demoted (it may trade live, or not at
    all: the monitor cannot tell, so the refusal says what /promote takes)."""
    return UserInputError(
        f"{pair} is not demoted: /promote takes a pair the drift monitor demoted to paper"
    )
