"""The one trading path: closed candle -> strategy -> risk -> execution -> portfolio.

At each closed candle of a run, in the order the backtest kernel follows too: the day's loss
budget rolls over, protective exits are checked inside the candle, equity is marked and the
loss limits are applied, then the strategy's signal is acted on.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from bot.core.domain import Action, Fill, OrderIntent, PairRun, RunState, Side, Signal, from_ms
from bot.core.errors import ExchangeUnavailable, RiskRejected
from bot.core.ports import Clock, Exchange, StateStore
from bot.core.timeframes import timeframe_delta
from bot.execution.executor import Executor
from bot.execution.resting_stops import RestingStops
from bot.ops.decisions import decision
from bot.portfolio.books import Portfolio
from bot.risk.guard import RiskGuard
from bot.risk.rules import entry_budget, initial_stop_distance, volatility_scale
from bot.risk.sizing import size_entry
from bot.trading.exits import Exits
from bot.trading.protection import Protection, ProtectionStore, Protector
from bot.trading.strategy_calls import Decision
from strategies import ExitPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EngineCosts:
    """What the risk step assumes an order costs beyond its price."""

    fee_rate: float
    slippage: float


class Engine:
    def __init__(
        self,
        *,
        executor: Executor,
        portfolio: Portfolio,
        guard: RiskGuard,
        state: StateStore,
        clock: Clock,
        costs: EngineCosts,
    ) -> None:
        self._executor = executor
        self.portfolio = portfolio
        self.guard = guard
        self.state = state  # where its parts keep their state (protections, trade counts)
        self._clock = clock
        self._costs = costs
        self._protections = ProtectionStore(state, clock)
        self._stops = RestingStops(
            executor=executor,
            journal=executor.journal,
            portfolio=portfolio,
            book=self._protections,
            clock=clock,
        )
        self._exits = exits = Exits(
            executor=executor,
            portfolio=portfolio,
            guard=guard,
            protections=self._protections,
            stops=self._stops,
            state=state,
            clock=clock,
        )
        self._protector = Protector(
            store=self._protections,
            stops=self._stops,
            portfolio=portfolio,
            guard=guard,
            clock=clock,
            holding=exits.holding,
            sell=exits.sell,
        )
        # what the control, the chat, the service and the start-up ask of the engine
        self.holding = exits.holding
        self.is_dust = exits.is_dust
        self.close_position = exits.close_position
        self.count_trade = exits.count_trade
        self.alert_unowned = exits.alert_unowned
        self.stop_in_force = self._protector.stop_in_force

    @property
    def exchange(self) -> Exchange:
        return self._executor.exchange

    @property
    def executor(self) -> Executor:
        return self._executor

    @property
    def costs(self) -> EngineCosts:
        return self._costs

    async def on_candles(
        self,
        run: PairRun,
        decided: Decision,
        candles: pd.DataFrame,
        prices: dict[str, float],
    ) -> list[Fill]:
        """A run's candle just closed (the last of ``candles``): act on it, with what its
        strategy ``decided`` on it (asked first, before anything is written or sent:
        bot/trading/strategy_calls.py; HOLD when its pair is faulted, its protective exits
        still checked)."""
        candle = candles.iloc[-1]
        close_time = from_ms(int(candle["timestamp"])) + timeframe_delta(run.timeframe)
        policy, signal, atr = decided.policy, decided.signal, decided.atr
        await self.guard.start_candle(self.portfolio.equity(prices), close_time)
        await self._exits.remember_exit(run, signal)
        fills = await self.guard.booked(run, close_time, *await self._stops.settle(run.pair))
        fills += await self._protector.drop_stale_stop(run, close_time)
        fills += await self._exits.finish_exit(run, candle, close_time)
        fills += await self._protector.ensure(run, policy, candle, close_time, atr)
        fills += await self._protector.protect(run, policy, candle, close_time)
        fills += await self._settle_entry(run, policy, candle, close_time)
        await self.guard.mark(self.portfolio.equity(prices), close_time)
        limits = self.guard.limits
        scale = volatility_scale(
            np.ascontiguousarray(candles["close"].to_numpy(np.float64)),
            len(candles) - 1,
            limits.volatility_short,
            limits.volatility_long,
            limits.volatility_floor,
        )
        fills += await self.on_signal(
            run,
            signal,
            prices,
            close_time=close_time,
            atr_distance=atr,
            policy=policy,
            scale=scale,
        )
        return fills

    async def protect_between_candles(
        self, run: PairRun, policy: ExitPolicy, atr: float, candles: pd.DataFrame
    ) -> list[Fill]:
        """``run``'s position without its stop (a restart found it: a buy booked by the start-up
        reconciliation, a crash before its stop was placed) gets it now from the last closed
        candle, not at the next close: a day on a daily timeframe. ``policy`` and ``atr``: its
        strategy's (``strategy_calls.stop_inputs``)."""
        candle = candles.iloc[-1]
        close_time = from_ms(int(candle["timestamp"])) + timeframe_delta(run.timeframe)
        # a stop the venue cancelled or filled while pairpilot was down is booked first
        fills = await self.guard.booked(run, close_time, *await self._stops.settle(run.pair))
        return fills + await self._protector.ensure(run, policy, candle, close_time, atr)

    def history(self, wanted: int) -> int:
        """Candles a tick needs: the strategy's window (``wanted``; 0 for a faulted strategy's
        pair, not asked), or the volatility window if longer."""
        return max(wanted, self.guard.limits.volatility_long + 1)

    async def on_signal(
        self,
        run: PairRun,
        signal: Signal,
        prices: dict[str, float],
        *,
        close_time: datetime | None = None,
        atr_distance: float = 0.0,
        policy: ExitPolicy | None = None,
        scale: float = 1.0,
    ) -> list[Fill]:
        """Act on one signal for one run; returns the fills it caused (often none).
        ``scale`` shrinks an entry (``rules.volatility_scale``)."""
        close_time = close_time or self._clock.now()
        position = await self.holding(run, signal.price)
        if signal.action is Action.EXIT and position is not None:
            decision(run.pair, "exit", f"{signal.reason} exit signal", price=signal.price)
            return await self._exits.sell_on_signal(run, signal, position, close_time)
        if signal.action is not Action.ENTER or position is not None:
            held = "in a position" if position else "flat"
            decision(run.pair, "hold", f"{signal.reason}: {signal.action.value} signal, {held}")
            return []
        if run.state is not RunState.RUNNING:
            decision(run.pair, "hold", f"entry signal, but the run is {run.state.value}")
            return []
        policy = policy or ExitPolicy()
        intent = await self._size_entry(
            run, signal, prices, close_time, atr_distance, policy, scale
        )
        if intent is None:
            return []
        decision(
            run.pair,
            "enter",
            f"{signal.reason} entry signal",
            price=signal.price,
            quote_amount=intent.quote_amount,
            scale=scale,
        )
        if policy.entry_offset > 0:  # a limit buy for the next candle, settled at its close
            intent = dataclasses.replace(
                intent, limit_price=signal.price * (1 - policy.entry_offset)
            )
            # Remembered first: a placement with an unknown outcome is still cancelled later.
            await self._protections.set(
                run.pair,
                Protection(pending_entry=intent.client_order_id, atr_distance=atr_distance),
            )
            if await self._halted_since_sized(run):
                await self.forget_entry(run.pair, intent.client_order_id)  # never sent
            else:
                await self._executor.execute(intent)
            return []
        # Remembered first: an entry settled later (its answer lost) keeps its ATR stop.
        await self._protections.set(run.pair, Protection(atr_distance=atr_distance))
        if await self._halted_since_sized(run):
            return []
        fills, _ = await self._executor.execute(intent)
        return fills + await self._opened(run, policy, atr_distance, signal.candle_time, close_time)

    async def _halted_since_sized(self, run: PairRun) -> bool:
        """Whether a halt (/halt, the kill switch: neither waits for the tick) came while
        the entry was sized and remembered: its buy is then not sent, as the halt's reply
        promised ("no new entries")."""
        halted = await self.guard.halted()
        if halted is not None:
            decision(run.pair, "skip", f"halted while its entry was prepared ({halted['reason']})")
        return halted is not None

    async def _opened(
        self,
        run: PairRun,
        policy: ExitPolicy,
        atr_distance: float,
        candle_time: datetime,
        close_time: datetime,
    ) -> list[Fill]:
        """A position just opened: remember its entry and peak, rest its stop where possible.
        Dust an entry that did not fill left as it was opens nothing."""
        position = self.portfolio.position(run.pair)
        if position is None or await self.is_dust(position, position.average_price):
            return []
        entry = position.average_price
        opened = Protection(entry=entry, peak=entry, atr_distance=atr_distance)
        await self._protections.set(run.pair, opened)
        level = opened.stop(policy)
        if not (self._stops.enabled and math.isfinite(level)):
            return []
        placed = await self._stops.place(run, level, candle_time)
        return await self.guard.booked(run, close_time, *placed)

    async def _settle_entry(
        self, run: PairRun, policy: ExitPolicy, candle: pd.Series, close_time: datetime
    ) -> list[Fill]:
        """The limit entry placed at the last close: filled during this candle, or cancelled.
        A fill booked elsewhere (start-up reconciliation after a restart) is protected too."""
        saved = await self._protections.get(run.pair)
        fills = await self.cancel_pending_entry(run)
        if not saved.pending_entry or await self.holding(run, float(candle["close"])) is None:
            return fills
        candle_time = from_ms(int(candle["timestamp"]))
        opened = await self._opened(run, policy, saved.atr, candle_time, close_time)
        position = self.portfolio.position(run.pair)
        if not fills or position is None:
            return fills + opened
        # Filled in this candle: protected in it too, from the fill price down to its low.
        entry = position.average_price
        since_fill = pd.Series({**candle.to_dict(), "open": entry, "high": entry})
        return fills + opened + await self._protector.protect(run, policy, since_fill, close_time)

    async def cancel_pending_entry(self, run: PairRun) -> list[Fill]:
        """Take ``run``'s resting limit entry off the exchange (good for one candle, or the run
        stops) and book what of it filled. Raises ExchangeUnavailable while that is unknown."""
        saved = await self._protections.get(run.pair)
        coid = saved.pending_entry
        order = await self._executor.journal.get(coid) if coid else None
        if order is None:
            return []
        if order.status.is_final:  # settled already (by hand, /order): never looked up again
            await self.forget_entry(run.pair, order.client_order_id)
            return []
        exchange = self._executor.exchange
        report = await exchange.lookup(order)
        if report is not None and not report.status.is_final:
            report = await exchange.cancel_order(order)
            if report is not None and not report.status.is_final:
                raise ExchangeUnavailable(f"{run.pair}: the cancel of entry {coid} is unconfirmed")
        await self._protections.set(run.pair, Protection(atr_distance=saved.atr))
        if report is None:
            return []
        fills, _ = await self._executor.settle(report)
        return fills

    async def pending_entry(self, pair: str) -> str | None:
        """The client order id of ``pair``'s limit entry still pending, if any."""
        return (await self._protections.get(pair)).pending_entry

    async def resting_stop(self, pair: str) -> tuple[str, float] | None:
        """The client order id and level of ``pair``'s position's resting stop, if any."""
        return await self._stops.named(pair)

    async def forget_entry(self, pair: str, client_order_id: str) -> None:
        """``pair``'s limit entry ``client_order_id`` is final in the journal (settled by hand
        with /order, or found filled): it is no longer pending. Its ATR distance stays, so the
        position it opened gets its stops back (``Protector.ensure``)."""
        saved = await self._protections.get(pair)
        if saved.pending_entry == client_order_id:
            await self._protections.set(pair, dataclasses.replace(saved, pending_entry=None))

    async def _size_entry(
        self,
        run: PairRun,
        signal: Signal,
        prices: dict[str, float],
        close_time: datetime,
        atr_distance: float,
        policy: ExitPolicy,
        scale: float,
    ) -> OrderIntent | None:
        limits = self.guard.limits
        reason = await self.guard.entry_block(run, close_time)
        open_positions = []
        for held in self.portfolio.positions():
            if not await self.is_dust(held, prices.get(held.pair, held.average_price)):
                open_positions.append(held)
        pending = await self._pending_entries(run)
        waiting = len(set(pending) - {p.pair for p in open_positions})
        if reason is None and len(open_positions) + waiting >= limits.max_open_positions:
            reason = (
                f"{len(open_positions)} positions open and {waiting} entries resting, "
                "the most allowed"
            )
        if reason is None:
            equity = self.portfolio.equity(prices)
            exposure = sum(p.amount * prices.get(p.pair, p.average_price) for p in open_positions)
            exposure += sum(amount * prices.get(pair, 0.0) for pair, amount in pending.items())
            distance = initial_stop_distance(
                signal.price, policy.stop_loss, atr_distance, policy.trailing_stop
            )
            budget = entry_budget(
                equity,
                self.portfolio.cash,
                exposure,
                run.capital_share,
                limits.position_fraction,
                limits.max_position_fraction,
                limits.max_total_exposure,
                limits.risk_per_trade,
                distance,
                scale,
            )
            try:
                return size_entry(
                    signal,
                    run=run,
                    budget=budget,
                    limits=limits,
                    fee_rate=self._costs.fee_rate,
                    slippage=self._costs.slippage,
                    now=self._clock.now(),
                )
            except RiskRejected as veto:
                reason = str(veto)
        await self.guard.veto(run, reason, self._clock.now())
        return None

    async def _pending_entries(self, run: PairRun) -> dict[str, float]:
        """Entries of other pairs still resting on the exchange (pair: amount): they count
        toward the open positions and the exposure as if filled."""
        pending: dict[str, float] = {}
        for order in await self._executor.journal.not_final():
            if order.side is Side.BUY and order.pair != run.pair:
                pending[order.pair] = pending.get(order.pair, 0.0) + order.amount - order.filled
        return pending
