"""An open position's protection: what is remembered of it between ticks, and its stops.

``Protection`` is the typed state of one pair's position (or of the entry opening it), kept
under the state key ``protection:{pair}``; ``ProtectionStore`` is the one reader and writer of
that key, and stores exactly the JSON pairpilot always stored there (no migration: an older
database loads as it is). ``Protector`` keeps the protective exits of a position: it restores
them on a position booked outside the entry path, checks them inside every candle, trails the
stop resting on the exchange and takes off a stop that would sell more than the books hold.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from bot.core.domain import Action, Fill, OrderIntent, PairRun, Position, Signal, from_ms
from bot.core.ports import Clock, StateStore
from bot.execution.resting_stops import RestingStops
from bot.ops.decisions import decision
from bot.portfolio.books import Portfolio
from bot.risk.guard import RiskGuard
from bot.risk.rules import EXIT_REASONS, TRAIL_STEP, check_exit, stop_level
from bot.risk.sizing import size_exit
from strategies import ExitPolicy

log = logging.getLogger(__name__)

Holding = Callable[[PairRun, float], Awaitable[Position | None]]
Sell = Callable[[PairRun, OrderIntent, datetime], Awaitable[list[Fill]]]


def protection_key(pair: str) -> str:
    """State key of an open position's entry, peak, ATR stop distance and resting stop."""
    return f"protection:{pair}"


@dataclass(frozen=True, slots=True)
class ExitDue:
    """An exit signal written down before anything was sent (its candle's open, in ms)."""

    reason: str
    candle: int


@dataclass(frozen=True, slots=True)
class Protection:
    """What is remembered of one pair's position. None: not known (absent from the JSON)."""

    entry: float | None = None  # the price the stops are measured from
    peak: float | None = None  # the highest high since the entry (the trailing stop's)
    atr_distance: float | None = None  # the ATR stop's distance below the entry (0: none)
    pending_entry: str | None = None  # the limit entry resting for one candle (client id)
    resting_stop: str | None = None  # the stop resting on the exchange (client order id)
    resting_level: float | None = None  # ... and its level
    dust: float | None = None  # the amount declared dust: treated as flat
    exit_pending: str | None = None  # a partly filled exit's reason: the rest is sold next
    exit_due: ExitDue | None = None
    # Keys this version does not know (a newer version's, read after a rollback): kept as they
    # were and written back, so the state a newer version needs is never lost.
    others: tuple[tuple[str, Any], ...] = ()

    @property
    def atr(self) -> float:
        return 0.0 if self.atr_distance is None else self.atr_distance

    def to_json(self) -> dict[str, Any]:
        """The stored shape: the known fields only. Declaring dust cleared the exits, which
        were stored as null from then on: written the same way, so the JSON is unchanged."""
        raw = {
            key: value
            for key, value in dataclasses.asdict(self).items()
            if value is not None and key != "others"
        }
        if self.dust is not None:
            raw.setdefault("exit_pending", None)
            raw.setdefault("exit_due", None)
        return {**raw, **dict(self.others)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> Protection:
        """The stored shape back (None or {}: nothing known); keys this version does not know
        are kept in ``others``."""
        raw = raw or {}
        others = tuple(sorted((key, raw[key]) for key in set(raw) - set(_FIELDS)))
        due = raw.get("exit_due")
        return cls(
            entry=_number(raw.get("entry")),
            peak=_number(raw.get("peak")),
            atr_distance=_number(raw.get("atr_distance")),
            pending_entry=raw.get("pending_entry"),
            resting_stop=raw.get("resting_stop"),
            resting_level=_number(raw.get("resting_level")),
            dust=raw.get("dust") if type(raw.get("dust")) is float else None,
            exit_pending=raw.get("exit_pending"),
            exit_due=ExitDue(str(due["reason"]), int(due["candle"])) if due else None,
            others=others,
        )

    def stop(self, policy: ExitPolicy, peak: float | None = None) -> float:
        """The level of the stop in force (-inf: none), from the peak given or the saved one
        (the entry when none is saved). Only a position whose entry is known has one."""
        if self.entry is None:
            raise ValueError("no stop level without the position's entry")
        peak = peak if peak is not None else self.peak if self.peak is not None else self.entry
        level: float  # stop_level is compiled by numba: typed Any for mypy
        level, _ = stop_level(self.entry, peak, self.atr, policy.stop_loss, policy.trailing_stop)
        return level


_FIELDS = tuple(field.name for field in dataclasses.fields(Protection) if field.name != "others")


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def declared_dust(protection: Protection, amount: float) -> bool:
    """The position was declared dust at this amount (or more): an entry resets the state,
    an exit sells it along."""
    return protection.dust is not None and amount <= protection.dust * (1 + 1e-9)


def any_exit(policy: ExitPolicy) -> bool:
    return bool(policy.stop_loss or policy.take_profit or policy.trailing_stop or policy.atr_stop)


class ProtectionStore:
    """The one reader and writer of the ``protection:{pair}`` keys; the ``StopBook`` of the
    resting stops too."""

    def __init__(self, state: StateStore, clock: Clock) -> None:
        self._state = state
        self._clock = clock

    async def get(self, pair: str) -> Protection:
        return Protection.from_json(await self._state.get(protection_key(pair)))

    async def set(self, pair: str, protection: Protection) -> None:
        await self._state.set(protection_key(pair), protection.to_json(), self._clock.now())

    async def stop_of(self, pair: str) -> tuple[str, float | None] | None:
        saved = await self.get(pair)
        return None if not saved.resting_stop else (saved.resting_stop, saved.resting_level)

    async def remember_stop(self, pair: str, client_order_id: str, level: float) -> None:
        saved = await self.get(pair)
        await self.set(
            pair, dataclasses.replace(saved, resting_stop=client_order_id, resting_level=level)
        )

    async def forget_stop(self, pair: str) -> None:
        saved = await self.get(pair)
        await self.set(pair, dataclasses.replace(saved, resting_stop=None, resting_level=None))


class Protector:
    """The protective exits of each run's open position."""

    def __init__(
        self,
        *,
        store: ProtectionStore,
        stops: RestingStops,
        portfolio: Portfolio,
        guard: RiskGuard,
        clock: Clock,
        holding: Holding,
        sell: Sell,
    ) -> None:
        self._store = store
        self._stops = stops
        self._portfolio = portfolio
        self._guard = guard
        self._clock = clock
        self._holding = holding
        self._sell = sell

    async def stop_in_force(self, run: PairRun, policy: ExitPolicy) -> float | None:
        """The protective stop of ``run``'s open position now, None when flat or without one."""
        saved = await self._store.get(run.pair)
        if self._portfolio.position(run.pair) is None or saved.entry is None:
            return None
        level = saved.stop(policy)
        return level if math.isfinite(level) else None

    async def protect(
        self, run: PairRun, policy: ExitPolicy, candle: pd.Series, close_time: datetime
    ) -> list[Fill]:
        """Sell inside ``candle`` what its stop or target reached; else follow the peak."""
        position = await self._holding(run, float(candle["close"]))
        if position is None or not any_exit(policy):
            return []
        saved = await self._store.get(run.pair)
        entry = saved.entry if saved.entry is not None else position.average_price
        peak = saved.peak if saved.peak is not None else entry
        _, trigger, reason, both = check_exit(
            entry,
            peak,
            saved.atr,
            policy.stop_loss,
            policy.take_profit,
            policy.trailing_stop,
            float(candle["open"]),
            float(candle["high"]),
            float(candle["low"]),
        )
        if math.isnan(trigger):
            new_peak = max(peak, float(candle["high"]))
            if new_peak != peak:
                await self._store.set(run.pair, dataclasses.replace(saved, peak=new_peak))
                return await self._trail(run, candle, close_time, policy, new_peak)
            return []
        if both:
            log.info("%s: stop and target both inside one candle; assumed the stop", run.pair)
        decision(run.pair, "exit", EXIT_REASONS[reason], trigger=trigger)
        signal = Signal(
            run.pair, from_ms(int(candle["timestamp"])), Action.EXIT, trigger, EXIT_REASONS[reason]
        )
        intent = size_exit(
            signal, run=run, position=position, now=self._clock.now(), trigger_price=trigger
        )
        return await self._sell(run, intent, close_time)

    async def ensure(
        self,
        run: PairRun,
        policy: ExitPolicy,
        candle: pd.Series,
        close_time: datetime,
        atr_now: float,
    ) -> list[Fill]:
        """A position booked outside the entry path (an answer lost and settled later, a fill
        found at start-up) gets its entry, peak and ATR stop; a stop the exchange does not hold
        (refused, lost, or never placed) is placed again."""
        position = await self._holding(run, float(candle["close"]))
        saved = await self._store.get(run.pair)
        if position is None or saved.pending_entry or not any_exit(policy):
            return []
        if saved.entry is None:
            entry = position.average_price
            saved = dataclasses.replace(
                saved, entry=entry, peak=entry, atr_distance=saved.atr_distance or atr_now
            )
            await self._store.set(run.pair, saved)
            decision(
                run.pair,
                "hold",
                "position booked outside the entry path: stops restored",
                entry=entry,
                atr_distance=saved.atr_distance,
            )
        if not self._stops.enabled or await self._stops.level(run.pair) is not None:
            return []
        level = saved.stop(policy)
        if not math.isfinite(level) or level >= float(candle["close"]):
            return []  # at or above the price: the per-candle check sells it instead
        log.warning("%s: no stop rests on the exchange; placing it at %.8g", run.pair, level)
        # Its own purpose: a position bought later in this tick (after this one's rest is sold)
        # rests its stop under "stop" with this candle's time; one id would be sent only once.
        placed = await self._stops.place(run, level, from_ms(int(candle["timestamp"])), "restop")
        return await self._guard.booked(run, close_time, *placed)

    async def _trail(
        self,
        run: PairRun,
        candle: pd.Series,
        close_time: datetime,
        policy: ExitPolicy,
        peak: float,
    ) -> list[Fill]:
        """Raise a resting trailing stop once it has moved ``TRAIL_STEP`` (cancel, re-place)."""
        resting = await self._stops.level(run.pair)
        if resting is None or not policy.trailing_stop:
            return []
        level = (await self._store.get(run.pair)).stop(policy, peak)
        if level < resting * (1 + TRAIL_STEP):
            return []
        fills = await self._guard.booked(run, close_time, *await self._stops.cancel(run.pair))
        if self._portfolio.position(run.pair) is None:
            return fills
        placed = await self._stops.place(run, level, from_ms(int(candle["timestamp"])), "trail")
        return fills + await self._guard.booked(run, close_time, *placed)

    async def drop_stale_stop(self, run: PairRun, close_time: datetime) -> list[Fill]:
        """A stop resting for more than the books hold (the position was sold by a sale whose
        outcome was settled later; dust may be left) would sell coins that are not
        pairpilot's: it is taken off."""
        resting = await self._stops.amount(run.pair)
        position = self._portfolio.position(run.pair)
        if resting is None or (position is not None and resting <= position.amount * (1 + 1e-6)):
            return []
        log.warning("%s: flat, but a stop still rests; cancelling it", run.pair)
        return await self._guard.booked(run, close_time, *await self._stops.cancel(run.pair))
