"""/risk set from chat: a limit checked against the config's bounds and the equity, whether it
switches a protection off (then it needs a Confirm and is alerted), and the change kept."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass

from bot.core.domain import RiskLimits
from bot.core.errors import UserInputError
from bot.core.ports import Clock
from bot.risk.settings import checked_limits
from bot.trading.engine import Engine
from bot.trading.service import TradingService

PROTECTIONS = {"max_drawdown": "drawdown halt", "daily_loss_limit": "daily loss halt"}  # 0: off


@dataclass(frozen=True, slots=True)
class RiskChange:
    """A limit set from chat: ``off`` when it switched a protection off (set to 0)."""

    key: str
    value: float
    off: bool
    protection: str | None  # what it protects, for a protection (PROTECTIONS)


class LimitsDesk:
    def __init__(
        self, *, quote: str, service: TradingService, engine: Engine, clock: Clock
    ) -> None:
        self._quote = quote
        self._service = service
        self._engine = engine
        self._clock = clock

    def checked(self, key: str, value: str) -> RiskLimits:
        """The limits with ``key`` set to ``value``: finite, within the config's bounds, and a
        minimum order no larger than the equity (else every entry would be refused)."""
        try:
            finite = math.isfinite(float(value))
        except ValueError:
            finite = True  # not a number: the bounds check names the problem
        if not finite:
            raise UserInputError(f"/risk set {key}={value}: expected a finite number")
        limits = checked_limits(
            dataclasses.asdict(self._engine.guard.limits), {key: value}, option="/risk set"
        )
        equity = self._engine.portfolio.equity(self._service.prices)
        if key == "min_order_value" and limits.min_order_value > equity:
            raise UserInputError(
                f"/risk set min_order_value={value}: above the equity ({equity:,.2f} "
                f"{self._quote}); no entry could be made"
            )
        return limits

    def switches_off(self, key: str, value: str) -> bool:
        """Whether ``/risk set key value`` turns a protection off or loosens it (0, or a
        larger loss allowed than now): it then needs a Confirm and is alerted."""
        if key not in PROTECTIONS:
            return False
        now: float = getattr(self._engine.guard.limits, key)
        with contextlib.suppress(ValueError):
            new = float(value)
            return now != 0 and (new == 0 or new > now)
        return False

    def preview(self, key: str, value: str) -> str | None:
        """What setting ``key`` to ``value`` would switch off or loosen (plain text), None
        when it does neither; bad input raises, as the change would."""
        self.checked(key, value)
        if not self.switches_off(key, value):
            return None
        new = float(value)
        if new == 0:
            return f"switch the {PROTECTIONS[key]} off ({key} = 0)"
        return f"loosen the {PROTECTIONS[key]} to {new:.4g} ({new * 100:.4g}%)"

    async def set(self, key: str, value: str) -> RiskChange:
        limits = self.checked(key, value)
        off = self.switches_off(key, value) and float(value) == 0
        await self._engine.guard.set_limits(limits, self._clock.now())
        return RiskChange(key, float(getattr(limits, key)), off, PROTECTIONS.get(key))
