"""The risk guard: loss limits, halts and cooldowns that outlive a restart.

It keeps the equity peak, the day's starting equity, the halts and each run's run of losses
in the state store, and refuses entries (recording every veto with its reason). The backtest
kernel applies the same rules from ``bot.risk.rules`` in the same order.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.alerts.outbox import AlertOutbox
from bot.core.domain import AlertPriority, Fill, PairRun, RiskLimits, Trade, from_ms, to_ms
from bot.core.errors import BotError, ExchangeAuthFailed
from bot.core.ports import StateStore, VetoRecorder
from bot.core.timeframes import timeframe_delta
from bot.ops.decisions import decision
from bot.risk.guard_state import GuardState, GuardStore, Halt
from bot.risk.rules import GATE_DAILY_LOSS, GATE_DRAWDOWN, loss_gate, trade_lost

log = logging.getLogger(__name__)

LIMITS_KEY = "risk.limits"  # limits changed from chat; they override the config's
_EPOCH = datetime(1970, 1, 1)  # noqa: DTZ001 - a calendar origin for local day numbers


def local_day(moment: datetime, timezone: ZoneInfo) -> int:
    """Days since 1970-01-01 of ``moment``'s calendar date in ``timezone``."""
    return (moment.astimezone(timezone).replace(tzinfo=None) - _EPOCH).days


class RiskGuard:
    def __init__(
        self,
        *,
        state: StateStore,
        vetoes: VetoRecorder,
        alerts: AlertOutbox,
        limits: RiskLimits,
        timezone: ZoneInfo,
    ) -> None:
        self._state = state
        self._vetoes = vetoes
        self._alerts = alerts
        self.limits = limits
        self._timezone = timezone
        self._store = GuardStore(state)
        self._risk: GuardState | None = None
        self._outage: str | None = None  # the exchange error that started the current outage

    async def _load(self) -> GuardState:
        if self._risk is None:
            self._risk = await self._store.get()
        return self._risk

    async def _save(self, now: datetime) -> None:
        await self._store.set(await self._load(), now)

    async def start_candle(self, equity: float, close_time: datetime) -> None:
        """A new local day starts its loss budget from the equity marked at the previous close
        (``equity`` before any), so the first candle closing in a day counts against it too."""
        risk = await self._load()
        day = local_day(close_time, self._timezone)
        if risk.day != day:
            self._risk = dataclasses.replace(
                risk,
                day=day,
                day_start=equity if risk.last_mark is None else risk.last_mark,
                peak=equity if risk.peak is None else risk.peak,
            )
            await self._save(close_time)

    async def mark(self, equity: float, close_time: datetime) -> None:
        """Follow the equity peak and trip the loss limits (persisted, alerted once)."""
        risk = await self._load()
        peak = max(equity if risk.peak is None else risk.peak, equity)
        changed = peak != risk.peak or risk.last_mark != equity
        # the last mark is where the next day's loss budget starts
        self._risk = risk = dataclasses.replace(risk, peak=peak, last_mark=equity)
        day_start = equity if risk.day_start is None else risk.day_start
        gate = loss_gate(
            equity, peak, day_start, self.limits.daily_loss_limit, self.limits.max_drawdown
        )
        if gate == GATE_DRAWDOWN and not risk.halt:
            reason = (
                f"equity {equity:,.2f} is more than {self.limits.max_drawdown:.0%} below "
                f"its peak {peak:,.2f}"
            )
            self._risk = dataclasses.replace(
                risk, halt=Halt(f"max drawdown: {reason}", to_ms(close_time))
            )
            await self._alerts.push(
                "risk_halt",
                AlertPriority.CRITICAL,
                f"Trading halted, max drawdown: {reason}. New entries stop "
                "until trading is resumed; exits are still managed.",
            )
            changed = True
        elif gate == GATE_DAILY_LOSS and risk.daily_halt_day != risk.day:
            self._risk = dataclasses.replace(risk, daily_halt_day=risk.day)
            await self._alerts.push(
                "risk_halt",
                AlertPriority.CRITICAL,
                f"Daily loss limit: equity {equity:,.2f} is more than "
                f"{self.limits.daily_loss_limit:.0%} below today's start "
                f"{day_start:,.2f}. No new entries today.",
            )
            changed = True
        if changed:
            await self._save(close_time)

    async def entry_block(self, run: PairRun, close_time: datetime) -> str | None:
        """Why ``run`` may not enter now, or None."""
        risk = await self._load()
        if risk.halt:
            return f"halted ({risk.halt.reason})"
        if risk.daily_halt_day is not None and risk.daily_halt_day == risk.day:
            return "daily loss limit reached; no new entries until tomorrow"
        until = (await self._store.cooldown(run.id)).until_ms
        if until is not None and to_ms(close_time) <= until:
            return f"cooling down after losses until {from_ms(until):%Y-%m-%d %H:%M} UTC"
        return None

    async def trade_closed(
        self, run: PairRun, lost: bool, close_time: datetime, candle: timedelta
    ) -> None:
        """Count losing trades in a row; enough of them start the run's cooldown."""
        cooldown = await self._store.cooldown(run.id)
        losses = cooldown.losses + 1 if lost else 0
        if lost and self.limits.cooldown_losses and losses >= self.limits.cooldown_losses:
            until = close_time + candle * self.limits.cooldown_candles
            cooldown = dataclasses.replace(cooldown, losses=0, until_ms=to_ms(until))
            log.info("%s: %d losses in a row, no entries until %s", run.pair, losses, until)
        else:
            cooldown = dataclasses.replace(cooldown, losses=losses)
        await self._store.set_cooldown(run.id, cooldown, close_time)

    async def booked(
        self, run: PairRun, close_time: datetime, fills: list[Fill], trade: Trade | None
    ) -> list[Fill]:
        """Fills just booked for ``run``: the trade they closed, if any, counts toward its
        cooldown. The fills are passed on."""
        if trade is not None:
            lost = trade_lost(trade.amount, trade.entry_price, trade.exit_price, trade.fee)
            await self.trade_closed(run, lost, close_time, timeframe_delta(run.timeframe))
        return fills

    async def veto(self, run: PairRun, reason: str, now: datetime) -> None:
        decision(run.pair, "veto", reason)
        await self._vetoes.add(run_id=run.id, pair=run.pair, reason=reason, now=now)

    async def set_limits(self, limits: RiskLimits, now: datetime) -> None:
        """New limits from now on, kept over a restart (they override the config's)."""
        self.limits = limits
        await self._state.set(LIMITS_KEY, dataclasses.asdict(limits), now)

    async def exchange_failed(
        self, error: BotError, now: datetime, *, resting_stops: bool = True
    ) -> None:
        """An exchange call failed during a tick. Refused keys halt trading (they will not fix
        themselves); an outage is alerted once, when it starts. ``resting_stops``: the venue
        holds the stops; else they are checked per candle, which needs the exchange."""
        if isinstance(error, ExchangeAuthFailed):  # the halt's own alert says it
            await self.halt(f"the exchange refused the API keys ({error})", now)
            return
        if self._outage is None:
            self._outage = str(error)
            stops = (
                "open positions keep the stops resting on the exchange"
                if resting_stops
                else "open positions are NOT protected meanwhile: this exchange holds no "
                "stops, and pairpilot's per-candle stop checks need it"
            )
            await self._alerts.push(
                "exchange_error",
                AlertPriority.ERROR,
                f"Exchange trouble: {error}. Retrying every tick; {stops}.",
            )

    async def exchange_answered(self) -> None:
        """A tick reached the exchange again: the outage, if any, is over (alerted once)."""
        if self._outage is not None:
            self._outage = None
            await self._alerts.push(
                "exchange_error", AlertPriority.ERROR, "The exchange answers again."
            )

    async def day_start(self) -> float | None:
        """Equity at the first close of the current local day (what today's PnL is against)."""
        return (await self._load()).day_start

    async def halted(self) -> dict[str, Any] | None:
        """The standing halt ({"reason", "since"}), or None."""
        halt = (await self._load()).halt
        return None if halt is None else dataclasses.asdict(halt)

    async def halt(self, reason: str, now: datetime) -> bool:
        """Stop new entries until resumed; False when a halt already stood (it is kept)."""
        risk = await self._load()
        if risk.halt:
            return False
        self._risk = dataclasses.replace(risk, halt=Halt(reason, to_ms(now)))
        await self._save(now)
        await self._alerts.push(
            "risk_halt",
            AlertPriority.CRITICAL,
            f"Trading halted: {reason}. Exits are still managed.",
        )
        return True

    async def resume(self, equity: float, now: datetime) -> bool:
        """Lift the halt and restart the drawdown count from today's equity."""
        risk = await self._load()
        if not risk.halt:
            return False
        self._risk = dataclasses.replace(risk, halt=None, lifted=True, peak=equity)
        await self._save(now)
        await self._alerts.push("risk_resume", AlertPriority.CRITICAL, "Trading resumed.")
        return True
