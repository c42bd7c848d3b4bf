"""The one trading path: signal -> risk -> execution -> portfolio -> storage.

The live service and the backtester both call ``Engine.on_signal``; the live service gets its
signal from ``signal_from_candles`` on the closed candles, the backtester reads the same
strategy's whole signal series at once (strategies are tested to never look ahead).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from bot.alerts import AlertOutbox
from bot.domain import (
    Action,
    AlertPriority,
    ExecutionReport,
    Fill,
    OrderIntent,
    OrderStatus,
    PairRun,
    RiskLimits,
    RunState,
    Side,
    Signal,
    from_ms,
)
from bot.errors import ExchangeRejected, RiskRejected
from bot.kernel import EXIT_REASONS, check_exit
from bot.metrics import round_trips
from bot.portfolio import CASH_KEY, Portfolio
from bot.ports import (
    Clock,
    Exchange,
    FillRepository,
    OrderJournal,
    PositionRepository,
    StateStore,
    Transactions,
)
from bot.risk import size_entry, size_exit
from strategies import ExitPolicy, Strategy
from strategies.base import ENTER, EXIT

log = logging.getLogger(__name__)

_ACTIONS = {ENTER: Action.ENTER, EXIT: Action.EXIT}


def action_for(code: int) -> Action:
    """The Action for a strategy's signal code."""
    return _ACTIONS.get(code, Action.HOLD)


def protection_key(pair: str) -> str:
    """State key of an open position's entry, peak and ATR stop distance."""
    return f"protection:{pair}"


def _any_exit(policy: ExitPolicy) -> bool:
    return bool(policy.stop_loss or policy.take_profit or policy.trailing_stop or policy.atr_stop)


def signal_from_candles(pair: str, strategy: Strategy, candles: pd.DataFrame) -> Signal:
    """The strategy's decision on the last closed candle of ``candles``."""
    last = candles.iloc[-1]
    code = int(strategy.signals(candles).iloc[-1]) if len(candles) >= strategy.warmup else 0
    return Signal(
        pair=pair,
        candle_time=from_ms(int(last["timestamp"])),
        action=action_for(code),
        price=float(last["close"]),
        reason=strategy.name,
    )


@dataclass(frozen=True, slots=True)
class EngineCosts:
    """What the risk step assumes an order costs beyond its price."""

    fee_rate: float
    slippage: float


class Engine:
    def __init__(
        self,
        *,
        transactions: Transactions,
        exchange: Exchange,
        portfolio: Portfolio,
        orders: OrderJournal,
        fills: FillRepository,
        positions: PositionRepository,
        state: StateStore,
        alerts: AlertOutbox,
        clock: Clock,
        limits: RiskLimits,
        costs: EngineCosts,
    ) -> None:
        self._transactions = transactions
        self._exchange = exchange
        self.portfolio = portfolio
        self._orders = orders
        self._fills = fills
        self._positions = positions
        self._state = state
        self._alerts = alerts
        self._clock = clock
        self._limits = limits
        self._costs = costs

    async def on_candles(
        self, run: PairRun, strategy: Strategy, candles: pd.DataFrame, prices: dict[str, float]
    ) -> list[Fill]:
        """A run's candle just closed: protective exits inside it first, then the signal."""
        policy = strategy.exit_policy
        fills = await self._protect(run, policy, candles.iloc[-1])
        signal = signal_from_candles(run.pair, strategy, candles)
        acted = await self.on_signal(run, signal, prices)
        position = self.portfolio.position(run.pair)
        if acted and position is not None and signal.action is Action.ENTER:
            atr = float(strategy.atr(candles).iloc[-1]) if policy.atr_stop else 0.0
            distance = policy.atr_stop * atr if math.isfinite(atr) else 0.0
            await self._state.set(
                protection_key(run.pair),
                {"entry": position.average_price, "peak": position.average_price,
                 "atr_distance": distance},
                self._clock.now(),
            )  # fmt: skip
        return fills + acted

    async def _protect(self, run: PairRun, policy: ExitPolicy, candle: pd.Series) -> list[Fill]:
        position = self.portfolio.position(run.pair)
        if position is None or not _any_exit(policy):
            return []
        key = protection_key(run.pair)
        saved = await self._state.get(key) or {}
        entry = saved.get("entry", position.average_price)
        peak = saved.get("peak", entry)
        _, trigger, reason, both = check_exit(
            entry, peak, saved.get("atr_distance", 0.0), policy.stop_loss, policy.take_profit,
            policy.trailing_stop, float(candle["open"]), float(candle["high"]),
            float(candle["low"]),
        )  # fmt: skip
        if math.isnan(trigger):
            new_peak = max(peak, float(candle["high"]))
            if new_peak != peak:
                await self._state.set(key, {**saved, "peak": new_peak}, self._clock.now())
            return []
        if both:
            log.info("%s: stop and target both inside one candle; assumed the stop", run.pair)
        signal = Signal(
            run.pair, from_ms(int(candle["timestamp"])), Action.EXIT, trigger, EXIT_REASONS[reason]
        )
        intent = size_exit(
            signal, run=run, position=position, now=self._clock.now(), trigger_price=trigger
        )
        return await self._execute(intent)

    async def on_signal(self, run: PairRun, signal: Signal, prices: dict[str, float]) -> list[Fill]:
        """Act on one signal for one run; returns the fills it caused (often none)."""
        position = self.portfolio.position(run.pair)
        try:
            if signal.action is Action.ENTER and position is None and run.state is RunState.RUNNING:
                intent = size_entry(
                    signal,
                    run=run,
                    equity=self.portfolio.equity(prices),
                    cash=self.portfolio.cash,
                    fee_rate=self._costs.fee_rate,
                    slippage=self._costs.slippage,
                    limits=self._limits,
                    now=self._clock.now(),
                )
            elif signal.action is Action.EXIT and position is not None:
                intent = size_exit(signal, run=run, position=position, now=self._clock.now())
            else:
                return []
        except RiskRejected as veto:
            log.info("risk veto: %s", veto)
            await self._alerts.push("risk_veto", AlertPriority.TRADE, f"Order vetoed: {veto}")
            return []
        return await self._execute(intent)

    async def _execute(self, intent: OrderIntent) -> list[Fill]:
        if await self._orders.get(intent.client_order_id) is not None:
            log.info("order %s was journaled before; not sending again", intent.client_order_id)
            return []
        await self._orders.add(intent)  # journaled before the exchange hears of it
        try:
            report = await self._exchange.create_market_order(intent)
        except (ExchangeRejected, RiskRejected) as error:
            await self._orders.update(
                intent.client_order_id, OrderStatus.REJECTED, self._clock.now(), note=str(error)
            )
            await self._alerts.push(
                "order_rejected", AlertPriority.ERROR, f"Order rejected: {error}"
            )
            return []
        position = self.portfolio.position(intent.pair)
        opened_at = position.opened_at if position else None
        fills = await self._book(report)
        await self._announce(intent, report, opened_at)
        return fills

    async def _book(self, report: ExecutionReport) -> list[Fill]:
        booked = []
        async with self._transactions.transaction():
            bookings = []
            for fill in report.fills:
                if await self._fills.add(fill):
                    booking = self.portfolio.book(fill)
                    await self._positions.save(booking.position)
                    bookings.append(booking)
                    booked.append(fill)
            if bookings:
                await self._state.set(CASH_KEY, bookings[-1].cash, self._clock.now())
            await self._orders.update(
                report.client_order_id,
                report.status,
                self._clock.now(),
                filled=report.filled,
                average_price=report.average_price,
                exchange_order_id=report.exchange_order_id,
            )
        for booking in bookings:
            self.portfolio.accept(booking)
        return booked

    async def _announce(
        self, intent: OrderIntent, report: ExecutionReport, opened_at: datetime | None
    ) -> None:
        if not report.filled or report.average_price is None:
            return
        text = (
            f"{intent.pair} {intent.side.value.upper()} {report.filled:.6g} @ "
            f"{report.average_price:,.2f} (fee {sum(f.fee for f in report.fills):.2f})"
        )
        if intent.side is Side.SELL and opened_at is not None:
            fills = [f for f in await self._fills.all(since=opened_at) if f.pair == intent.pair]
            closed = round_trips(fills)
            if closed:
                trade = closed[-1]
                text += f", trade PnL {trade.pnl:+,.2f} ({trade.pnl / trade.cost:+.2%})"
        await self._alerts.push("trade", AlertPriority.TRADE, text)
