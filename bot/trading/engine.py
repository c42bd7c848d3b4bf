"""The one trading path: closed candle -> strategy -> risk -> execution -> portfolio.

At each closed candle of a run, in the order the backtest kernel follows too: the day's loss
budget rolls over, protective exits are checked inside the candle, equity is marked and the
loss limits are applied, then the strategy's signal is acted on.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from bot.core.domain import (
    Action,
    AlertPriority,
    Fill,
    OrderIntent,
    OrderStatus,
    PairRun,
    Position,
    RunState,
    Side,
    Signal,
    Trade,
    from_ms,
    to_ms,
)
from bot.core.errors import BotError, ExchangeUnavailable, RiskRejected
from bot.core.ports import Clock, Exchange, StateStore
from bot.core.timeframes import timeframe_delta
from bot.execution.executor import Executor
from bot.execution.resting_stops import RestingStops
from bot.ops.decisions import decision
from bot.portfolio.books import Portfolio
from bot.risk.guard import RiskGuard
from bot.risk.rules import (
    EXIT_REASONS,
    TRAIL_STEP,
    check_exit,
    entry_budget,
    initial_stop_distance,
    stop_level,
    trade_lost,
    volatility_scale,
)
from bot.risk.sizing import client_order_id, size_entry, size_exit
from strategies import ExitPolicy, Strategy
from strategies.base import ENTER, EXIT

log = logging.getLogger(__name__)

UNOWNED_KEY = "unowned_positions"  # pairs held with no run, already alerted
_ACTIONS = {ENTER: Action.ENTER, EXIT: Action.EXIT}


def protection_key(pair: str) -> str:
    """State key of an open position's entry, peak, ATR stop distance and resting stop."""
    return f"protection:{pair}"


def key_of(run: PairRun) -> str:
    return protection_key(run.pair)


def signal_from_candles(pair: str, strategy: Strategy, candles: pd.DataFrame) -> Signal:
    """The strategy's decision on the last closed candle of ``candles``."""
    last = candles.iloc[-1]
    code = int(strategy.signals(candles).iloc[-1])  # the warm-up rule is the strategy's
    return Signal(
        pair=pair,
        candle_time=from_ms(int(last["timestamp"])),
        action=_ACTIONS.get(code, Action.HOLD),
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
        self._state = state
        self._clock = clock
        self._costs = costs
        self._stops = RestingStops(
            executor=executor,
            journal=executor.journal,
            portfolio=portfolio,
            state=state,
            clock=clock,
        )

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
        self, run: PairRun, strategy: Strategy, candles: pd.DataFrame, prices: dict[str, float]
    ) -> list[Fill]:
        """A run's candle just closed (the last of ``candles``): act on it."""
        candle = candles.iloc[-1]
        close_time = from_ms(int(candle["timestamp"])) + timeframe_delta(run.timeframe)
        await self.guard.start_candle(self.portfolio.equity(prices), close_time)
        policy = strategy.exit_policy
        signal = signal_from_candles(run.pair, strategy, candles)
        await self._remember_exit(run, signal)
        atr_distance = _atr_distance(strategy, candles)
        fills = await self._record(run, close_time, *await self._stops.settle(key_of(run)))
        fills += await self._drop_stale_stop(run, close_time)
        fills += await self._finish_exit(run, candle, close_time)
        fills += await self._ensure_protection(run, policy, candle, close_time, atr_distance)
        fills += await self._protect(run, policy, candle, close_time)
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
            atr_distance=atr_distance,
            policy=policy,
            scale=scale,
        )
        return fills

    async def protect_between_candles(
        self, run: PairRun, strategy: Strategy, candles: pd.DataFrame
    ) -> list[Fill]:
        """``run``'s position without its stop (a restart found it: a buy booked by the start-up
        reconciliation, a crash before its stop was placed) gets it now from the last closed
        candle, not at the next close: a day on a daily timeframe."""
        candle = candles.iloc[-1]
        close_time = from_ms(int(candle["timestamp"])) + timeframe_delta(run.timeframe)
        # a stop the venue cancelled or filled while pairpilot was down is booked first
        fills = await self._record(run, close_time, *await self._stops.settle(key_of(run)))
        return fills + await self._ensure_protection(
            run, strategy.exit_policy, candle, close_time, _atr_distance(strategy, candles)
        )

    async def stop_in_force(self, run: PairRun, policy: ExitPolicy) -> float | None:
        """The protective stop of ``run``'s open position now, None when flat or without one."""
        saved = await self._state.get(key_of(run))
        if self.portfolio.position(run.pair) is None or not saved:
            return None
        level, _ = stop_level(
            saved["entry"],
            saved.get("peak", saved["entry"]),
            saved.get("atr_distance", 0.0),
            policy.stop_loss,
            policy.trailing_stop,
        )
        return level if math.isfinite(level) else None

    def history(self, strategy: Strategy) -> int:
        """Candles a tick needs: the strategy's window, or the volatility window if longer."""
        return max(strategy.history, self.guard.limits.volatility_long + 1)

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
            sale = size_exit(signal, run=run, position=position, now=self._clock.now())
            return await self._sell(run, sale, close_time)
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
            await self._state.set(
                key_of(run),
                {"pending_entry": intent.client_order_id, "atr_distance": atr_distance},
                self._clock.now(),
            )
            if await self._halted_since_sized(run):
                await self.forget_entry(run.pair, intent.client_order_id)  # never sent
            else:
                await self._executor.execute(intent)
            return []
        # Remembered first: an entry settled later (its answer lost) keeps its ATR stop.
        await self._state.set(key_of(run), {"atr_distance": atr_distance}, self._clock.now())
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
        await self._state.set(
            key_of(run),
            {"entry": entry, "peak": entry, "atr_distance": atr_distance},
            self._clock.now(),
        )
        level, _ = stop_level(entry, entry, atr_distance, policy.stop_loss, policy.trailing_stop)
        if not (self._stops.enabled and math.isfinite(level)):
            return []
        placed = await self._stops.place(run, key_of(run), level, candle_time)
        return await self._record(run, close_time, *placed)

    async def _settle_entry(
        self, run: PairRun, policy: ExitPolicy, candle: pd.Series, close_time: datetime
    ) -> list[Fill]:
        """The limit entry placed at the last close: filled during this candle, or cancelled.
        A fill booked elsewhere (start-up reconciliation after a restart) is protected too."""
        saved = await self._state.get(key_of(run)) or {}
        fills = await self.cancel_pending_entry(run)
        if (
            not saved.get("pending_entry")
            or await self.holding(run, float(candle["close"])) is None
        ):
            return fills
        candle_time = from_ms(int(candle["timestamp"]))
        atr_distance = saved.get("atr_distance", 0.0)
        opened = await self._opened(run, policy, atr_distance, candle_time, close_time)
        position = self.portfolio.position(run.pair)
        if not fills or position is None:
            return fills + opened
        # Filled in this candle: protected in it too, from the fill price down to its low.
        entry = position.average_price
        since_fill = pd.Series({**candle.to_dict(), "open": entry, "high": entry})
        return fills + opened + await self._protect(run, policy, since_fill, close_time)

    async def cancel_pending_entry(self, run: PairRun) -> list[Fill]:
        """Take ``run``'s resting limit entry off the exchange (good for one candle, or the run
        stops) and book what of it filled. Raises ExchangeUnavailable while that is unknown."""
        saved = await self._state.get(key_of(run)) or {}
        coid = saved.get("pending_entry")
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
        await self._state.set(
            key_of(run), {"atr_distance": saved.get("atr_distance", 0.0)}, self._clock.now()
        )
        if report is None:
            return []
        fills, _ = await self._executor.settle(report)
        return fills

    async def pending_entry(self, pair: str) -> str | None:
        """The client order id of ``pair``'s limit entry still pending, if any."""
        saved = await self._state.get(protection_key(pair)) or {}
        return saved.get("pending_entry")

    async def resting_stop(self, pair: str) -> tuple[str, float] | None:
        """The client order id and level of ``pair``'s position's resting stop, if any."""
        return await self._stops.named(protection_key(pair))

    async def forget_entry(self, pair: str, client_order_id: str) -> None:
        """``pair``'s limit entry ``client_order_id`` is final in the journal (settled by hand
        with /order, or found filled): it is no longer pending. Its ATR distance stays, so the
        position it opened gets its stops back (``_ensure_protection``)."""
        saved = await self._state.get(protection_key(pair)) or {}
        if saved.get("pending_entry") != client_order_id:
            return
        rest = {key: value for key, value in saved.items() if key != "pending_entry"}
        await self._state.set(protection_key(pair), rest, self._clock.now())

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

    async def is_dust(self, position: Position, price: float) -> bool:
        """Too small for the exchange to sell: shown, but no position (see ``holding``). Once
        declared dust (the amount saved), it stays dust until an entry or an exit sweeps it,
        whatever the price does: worth more than the exchange's minimum at a higher price, it
        would turn back into a position that blocks entries and counts as open."""
        if self.exchange.too_small(position.pair, position.amount, price) is not None:
            return True
        saved = await self._state.get(protection_key(position.pair)) or {}
        return _declared_dust(saved, position.amount)

    async def _pending_entries(self, run: PairRun) -> dict[str, float]:
        """Entries of other pairs still resting on the exchange (pair: amount): they count
        toward the open positions and the exposure as if filled."""
        pending: dict[str, float] = {}
        for order in await self._executor.journal.not_final():
            if order.side is Side.BUY and order.pair != run.pair:
                pending[order.pair] = pending.get(order.pair, 0.0) + order.amount - order.filled
        return pending

    async def _protect(
        self, run: PairRun, policy: ExitPolicy, candle: pd.Series, close_time: datetime
    ) -> list[Fill]:
        position = await self.holding(run, float(candle["close"]))
        if position is None or not _any_exit(policy):
            return []
        key = key_of(run)
        saved = await self._state.get(key) or {}
        entry = saved.get("entry", position.average_price)
        peak = saved.get("peak", entry)
        _, trigger, reason, both = check_exit(
            entry,
            peak,
            saved.get("atr_distance", 0.0),
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
                await self._state.set(key, {**saved, "peak": new_peak}, self._clock.now())
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

    async def close_position(self, run: PairRun, purpose: str, price: float) -> list[Fill]:
        """Sell all of ``run``'s pair at market now (stopping a run, the kill switch); dust, too
        small for the exchange to sell, is left as it is."""
        position = await self.holding(run, price)
        if position is None:
            return []
        now = self._clock.now()
        signal = Signal(run.pair, now, Action.EXIT, price, purpose)
        intent = size_exit(signal, run=run, position=position, now=now)
        intent = dataclasses.replace(
            intent, client_order_id=client_order_id(run.id, now, Side.SELL, purpose)
        )
        return await self._sell(run, intent, now)

    async def holding(self, run: PairRun, price: float) -> Position | None:
        """``run``'s position, unless it is dust: too small for the exchange to sell (what a
        partly filled exit or a fee in the coin bought leaves). Dust is treated as flat and
        shown in /positions; it stays in the books, the next entry adds to it and the next exit
        sells it along. Announced the first time a pair leaves dust, not after every trade."""
        position = self.portfolio.position(run.pair)
        if position is None:
            return None
        saved = await self._state.get(key_of(run)) or {}
        if _declared_dust(saved, position.amount):
            return None
        why = self.exchange.too_small(run.pair, position.amount, price)
        if why is None:
            return position
        await self._state.set(
            key_of(run),
            {**saved, "dust": position.amount, "exit_pending": None, "exit_due": None},
            self._clock.now(),
        )
        decision(run.pair, "hold", f"dust left, treated as flat: {why}")
        # The rest of a sale (the engine's, or one booked later: a lost answer, /order, a stop
        # found at start-up) that is dust now: its trade closed at that sale. Declared once.
        trade = await self._executor.closed_as_dust(position)
        await self._record(run, self._clock.now(), [], trade)
        if not await self._state.get(f"dust_announced:{run.pair}"):
            await self._state.set(f"dust_announced:{run.pair}", True, self._clock.now())
            await self._executor.notify(
                "dust",
                AlertPriority.INFO,
                f"{run.pair}: {position.amount:.8g} left unsold, too small for the exchange "
                f"({why}); it is sold along with the next exit. Dust like this is said once "
                "and shown in /positions.",
            )
        return None

    async def _drop_stale_stop(self, run: PairRun, close_time: datetime) -> list[Fill]:
        """A stop resting for more than the books hold (the position was sold by a sale whose
        outcome was settled later; dust may be left) would sell coins that are not
        pairpilot's: it is taken off."""
        resting = await self._stops.amount(key_of(run))
        position = self.portfolio.position(run.pair)
        if resting is None or (position is not None and resting <= position.amount * (1 + 1e-6)):
            return []
        log.warning("%s: flat, but a stop still rests; cancelling it", run.pair)
        return await self._record(run, close_time, *await self._stops.cancel(key_of(run)))

    async def _remember_exit(self, run: PairRun, signal: Signal) -> None:
        """An exit signal is written down before anything is sent: when the exchange fails at
        this close, the next tick still sells (a crossover exit lasts one candle)."""
        if signal.action is not Action.EXIT or self.portfolio.position(run.pair) is None:
            return
        saved = await self._state.get(key_of(run)) or {}
        if not saved.get("exit_due"):
            due = {"reason": signal.reason, "candle": to_ms(signal.candle_time)}
            await self._state.set(key_of(run), {**saved, "exit_due": due}, self._clock.now())

    async def alert_unowned(self, active_pairs: set[str]) -> None:
        """Coins held for a pair no run trades (an order of a stopped run that filled later)
        are neither ticked nor protected: alerted once per arrival, /flatten sells them."""
        unowned = {
            p.pair: p
            for p in self.portfolio.positions()
            if p.pair not in active_pairs
            and self.exchange.too_small(p.pair, p.amount, p.average_price) is None
        }
        alerted = set(await self._state.get(UNOWNED_KEY) or [])
        for pair in sorted(set(unowned) - alerted):
            await self._executor.notify(
                "reconciliation_drift",
                AlertPriority.ERROR,
                f"{pair}: {unowned[pair].amount:.8g} held with no run trading it, so nothing "
                "protects it. /flatten sells it, or /startpair trades it again.",
            )
        if alerted != set(unowned):
            await self._state.set(UNOWNED_KEY, sorted(unowned), self._clock.now())

    async def _finish_exit(
        self, run: PairRun, candle: pd.Series, close_time: datetime
    ) -> list[Fill]:
        """Sell what a partly filled exit left, or an exit an earlier close decided but could not
        send, at this close: an exit is never half done nor lost."""
        position = await self.holding(run, float(candle["close"]))
        saved = await self._state.get(key_of(run)) or {}
        due = saved.get("exit_due") or {}
        late = bool(due) and due.get("candle") != int(candle["timestamp"])
        if position is None or not (saved.get("exit_pending") or late):
            return []
        reason = saved.get("exit_pending") or due.get("reason", "exit")
        if not saved.get("exit_pending"):
            log.warning(
                "%s: the exit decided at %s was not sent then; selling now",
                run.pair,
                from_ms(int(due["candle"])),
            )
        candle_time = from_ms(int(candle["timestamp"]))
        signal = Signal(
            run.pair, candle_time, Action.EXIT, float(candle["close"]), f"rest of {reason}"
        )
        intent = dataclasses.replace(
            size_exit(signal, run=run, position=position, now=self._clock.now()),
            client_order_id=client_order_id(run.id, candle_time, Side.SELL, "rest"),
        )
        return await self._sell(run, intent, close_time)

    async def _ensure_protection(
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
        position = await self.holding(run, float(candle["close"]))
        saved = await self._state.get(key_of(run)) or {}
        if position is None or saved.get("pending_entry") or not _any_exit(policy):
            return []
        if "entry" not in saved:
            atr_distance = saved.get("atr_distance") or atr_now
            entry = position.average_price
            saved = {**saved, "entry": entry, "peak": entry, "atr_distance": atr_distance}
            await self._state.set(key_of(run), saved, self._clock.now())
            decision(
                run.pair,
                "hold",
                "position booked outside the entry path: stops restored",
                entry=entry,
                atr_distance=atr_distance,
            )
        if not self._stops.enabled or await self._stops.level(key_of(run)) is not None:
            return []
        level, _ = stop_level(
            saved["entry"],
            saved.get("peak", saved["entry"]),
            saved.get("atr_distance", 0.0),
            policy.stop_loss,
            policy.trailing_stop,
        )
        if not math.isfinite(level) or level >= float(candle["close"]):
            return []  # at or above the price: the per-candle check sells it instead
        log.warning("%s: no stop rests on the exchange; placing it at %.8g", run.pair, level)
        placed = await self._stops.place(run, key_of(run), level, from_ms(int(candle["timestamp"])))
        return await self._record(run, close_time, *placed)

    async def _trail(
        self,
        run: PairRun,
        candle: pd.Series,
        close_time: datetime,
        policy: ExitPolicy,
        peak: float,
    ) -> list[Fill]:
        """Raise a resting trailing stop once it has moved ``TRAIL_STEP`` (cancel, re-place)."""
        resting = await self._stops.level(key_of(run))
        if resting is None or not policy.trailing_stop:
            return []
        saved = await self._state.get(key_of(run)) or {}
        level, _ = stop_level(
            saved["entry"],
            peak,
            saved.get("atr_distance", 0.0),
            policy.stop_loss,
            policy.trailing_stop,
        )
        if level < resting * (1 + TRAIL_STEP):
            return []
        fills = await self._record(run, close_time, *await self._stops.cancel(key_of(run)))
        if self.portfolio.position(run.pair) is None:
            return fills
        placed = await self._stops.place(
            run, key_of(run), level, from_ms(int(candle["timestamp"])), "trail"
        )
        return fills + await self._record(run, close_time, *placed)

    async def _never_sold(self, run: PairRun, sale: str) -> bool:
        """Whether a sale that failed is known not to have happened: refused before it was sent,
        or looked up again and absent. One that filled after all is booked here; while its
        outcome is unknown, no stop is put back (it could sell coins already sold: the next
        tick settles the sale, then places a stop if the position is still held)."""
        order = await self._executor.journal.get(sale)
        if order is None or order.status is OrderStatus.REJECTED:
            return True
        if order.status.is_final:  # booked already (by hand, or found): never looked up again
            return False
        try:
            report = await self.exchange.lookup(order)
        except BotError:
            return False
        if report is not None:
            await self._record(run, self._clock.now(), *await self._executor.settle(report))
        return report is None and self.portfolio.position(run.pair) is not None

    async def _restore_stop(self, run: PairRun, level: float, sale: str) -> None:
        """Put back the stop a failed or refused sell took off; if the exchange refuses now too,
        the next tick places it (``_ensure_protection``)."""
        try:
            placed = await self._stops.place(
                run, key_of(run), level, self._clock.now(), f"restore{sale}"
            )  # one id per sale
        except BotError as error:
            log.warning("%s: the stop could not be placed again yet: %s", run.pair, error)
            return
        await self._record(run, self._clock.now(), *placed)

    async def count_trade(self, run: PairRun, trade: Trade) -> None:
        """A trade closed away from a tick (a stop that fired while pairpilot was down, found
        at start-up) counts toward the cooldown like any other."""
        await self._record(run, self._clock.now(), [], trade)

    async def _record(
        self, run: PairRun, close_time: datetime, fills: list[Fill], trade: Trade | None
    ) -> list[Fill]:
        """Count a closed trade toward the cooldown; pass the fills on."""
        if trade is not None:
            lost = trade_lost(trade.amount, trade.entry_price, trade.exit_price, trade.fee)
            await self.guard.trade_closed(run, lost, close_time, timeframe_delta(run.timeframe))
        return fills

    async def _sell(self, run: PairRun, intent: OrderIntent, close_time: datetime) -> list[Fill]:
        """Sell at market; a resting stop is cancelled first (booked instead if it filled), and
        placed again when the sell fails to reach the exchange."""
        level = await self._stops.level(key_of(run))
        cancelled = await self._record(run, close_time, *await self._stops.cancel(key_of(run)))
        position = self.portfolio.position(run.pair)
        if position is None:
            return cancelled
        if position.amount != intent.amount:  # the stop filled in part before it was cancelled
            intent = dataclasses.replace(intent, amount=position.amount)
        try:
            fills, trade = await self._executor.execute(intent)
        except BotError:
            if level is not None and await self._never_sold(run, intent.client_order_id):
                await self._restore_stop(run, level, intent.client_order_id)
            raise
        if not fills and level is not None and self.portfolio.position(run.pair) is not None:
            await self._restore_stop(run, level, intent.client_order_id)  # the sale was refused
        rest = self.portfolio.position(run.pair)
        if fills and rest is not None:  # partly filled: the rest is sold at the next close
            saved = await self._state.get(key_of(run)) or {}
            reason = intent.reason.removeprefix("rest of ")
            await self._state.set(key_of(run), {**saved, "exit_pending": reason}, self._clock.now())
            if level is not None and not await self.is_dust(rest, intent.reference_price):
                await self._restore_stop(run, level, intent.client_order_id)  # until then
        return cancelled + await self._record(run, close_time, fills, trade)


def _declared_dust(saved: Mapping[str, object], amount: float) -> bool:
    """The position's state says it was declared dust at this amount (or more): an entry
    resets the state, an exit sells it along."""
    declared = saved.get("dust")
    return type(declared) is float and amount <= declared * (1 + 1e-9)


def _atr_distance(strategy: Strategy, candles: pd.DataFrame) -> float:
    """The ATR stop's distance from the entry at the last candle (0: none)."""
    policy = strategy.exit_policy
    atr = float(strategy.atr(candles).iloc[-1]) if policy.atr_stop else math.nan
    return policy.atr_stop * atr if math.isfinite(atr) else 0.0


def _any_exit(policy: ExitPolicy) -> bool:
    return bool(policy.stop_loss or policy.take_profit or policy.trailing_stop or policy.atr_stop)
