"""The risk guard's state, typed: the equity marks, the halts and each run's cooldown.

``GuardStore`` is the one reader and writer of the state keys ``risk`` and ``cooldown:{run}``,
and stores exactly the JSON the guard always stored there (no migration: an older database
loads as it is).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.core.ports import StateStore

STATE_KEY = "risk"


@dataclass(frozen=True, slots=True)
class Halt:
    """A standing halt: no new entries until trading is resumed."""

    reason: str
    since: int  # ms


@dataclass(frozen=True, slots=True)
class GuardState:
    """The loss limits' marks and the halts. None: not known yet (absent from the JSON)."""

    day: int | None = None  # the local day (days since 1970-01-01) of the last candle
    day_start: float | None = None  # the equity the day's loss budget started from
    peak: float | None = None  # the equity peak the drawdown is measured from
    last_mark: float | None = None  # the equity marked at the last close
    halt: Halt | None = None
    lifted: bool = False  # a halt was lifted (stored as "halt": null from then on)
    daily_halt_day: int | None = None  # the day the daily loss limit was reached
    others: tuple[tuple[str, Any], ...] = ()  # keys this version does not know: kept, written back

    def to_json(self) -> dict[str, Any]:
        raw: dict[str, Any] = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.name not in {"halt", "lifted", "others"}
            and getattr(self, field.name) is not None
        }
        if self.halt is not None or self.lifted:
            raw["halt"] = None if self.halt is None else dataclasses.asdict(self.halt)
        return {**raw, **dict(self.others)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> GuardState:
        """The stored shape back (None or {}: nothing known); keys this version does not know
        (a newer version's, read after a rollback) are kept in ``others``."""
        raw = raw or {}
        known = {"day", "day_start", "peak", "last_mark", "halt", "daily_halt_day"}
        others = tuple(sorted((key, raw[key]) for key in set(raw) - known))
        halt = raw.get("halt")
        return cls(
            day=raw.get("day"),
            day_start=_number(raw.get("day_start")),
            peak=_number(raw.get("peak")),
            last_mark=_number(raw.get("last_mark")),
            halt=Halt(str(halt["reason"]), int(halt["since"])) if halt else None,
            lifted="halt" in raw and not halt,
            daily_halt_day=raw.get("daily_halt_day"),
            others=others,
        )


@dataclass(frozen=True, slots=True)
class Cooldown:
    """A run's losing trades in a row, and the end of its cooldown (ms) once they were many."""

    losses: int = 0
    until_ms: int | None = None
    others: tuple[tuple[str, Any], ...] = ()  # keys this version does not know: kept, written back

    def to_json(self) -> dict[str, Any]:
        raw: dict[str, Any] = {"losses": self.losses}
        if self.until_ms is not None:
            raw["until_ms"] = self.until_ms
        return {**raw, **dict(self.others)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> Cooldown:
        raw = raw or {}
        others = tuple(sorted((key, raw[key]) for key in set(raw) - {"losses", "until_ms"}))
        return cls(losses=int(raw.get("losses", 0)), until_ms=raw.get("until_ms"), others=others)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def cooldown_key(run_id: int) -> str:
    return f"cooldown:{run_id}"


class GuardStore:
    """The one reader and writer of the risk guard's state keys."""

    def __init__(self, state: StateStore) -> None:
        self._state = state

    async def get(self) -> GuardState:
        return GuardState.from_json(await self._state.get(STATE_KEY))

    async def set(self, guard: GuardState, now: datetime) -> None:
        await self._state.set(STATE_KEY, guard.to_json(), now)

    async def cooldown(self, run_id: int) -> Cooldown:
        return Cooldown.from_json(await self._state.get(cooldown_key(run_id)))

    async def set_cooldown(self, run_id: int, cooldown: Cooldown, now: datetime) -> None:
        await self._state.set(cooldown_key(run_id), cooldown.to_json(), now)
