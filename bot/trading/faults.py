"""Pairs whose strategy failed while trading: paused, alerted once, kept across restarts.

A strategy is the user's code. When it raises or returns garbage during a tick or at start-up
(``StrategyFailed``, bot/trading/strategy_calls.py), only its pair stops deciding: the service
ticks every other pair on, and never stops for it.

The fault. The pair's run is paused (``RunState.PAUSED`` in the runs table, as /pause leaves
it), the fault is kept in the state store with its reason (the exception's last line, or what
is wrong with the output) and one ``strategy_failed`` alert says so, all in one transaction: a
crash keeps the three or none. /pairs and /status show "paused: strategy error: ...".

What a faulted pair does. Its strategy is not called again (no warm-up, no signals, no ATR):
no new entries (it is paused) and no exit signals (they are the failing code's), so nothing
repeats and no alert repeats. It is still ticked at each close, on the candles the risk step
needs, so the protection that needs no strategy code goes on: the stop-loss, take-profit and
trailing stop of its parameters (inside each candle, and resting on the exchange), an ATR stop
at the distance saved at its entry, a limit entry left from before cancelled at its close. The
candle the strategy failed on is acted on that way too, so that candle's stops are checked.

/resume PAIR clears the fault: the next close asks the strategy again, and a new failure
pauses the pair again with one new alert. /stoppair clears it with the run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.core.domain import AlertPriority, PairRun, RunState
from bot.core.errors import StrategyFailed
from bot.core.ports import Clock, PairRunRepository, StateStore, Transactions

if TYPE_CHECKING:  # the outbox brings the metrics server: config loading needs neither
    from bot.alerts.outbox import AlertOutbox

log = logging.getLogger(__name__)

# {run id: {"pair": str, "strategy": str, "reason": str}}
STATE_KEY = "strategy.faults"


@dataclass(frozen=True, slots=True)
class Fault:
    """Why a run's strategy stopped deciding."""

    pair: str
    strategy: str
    reason: str  # "ValueError: boom", "NaN action at candle 199 (1 in all)"

    @property
    def text(self) -> str:
        return f"strategy error: {self.reason}"


class StrategyFaults:
    def __init__(
        self,
        *,
        transactions: Transactions,
        runs: PairRunRepository,
        state: StateStore,
        alerts: AlertOutbox,
        clock: Clock,
    ) -> None:
        """``transactions``: the database ``runs``, ``state`` and ``alerts`` write to (a fault,
        its pause and its alert are kept together)."""
        self._transactions = transactions
        self._runs = runs
        self._state = state
        self._alerts = alerts
        self._clock = clock
        self._faults: dict[int, Fault] | None = None  # read from the state store at first use

    async def load(self) -> None:
        """Read the faults kept (once; the service does before it ticks)."""
        if self._faults is not None:
            return
        saved = await self._state.get(STATE_KEY) or {}
        self._faults = {
            int(run_id): Fault(str(entry["pair"]), str(entry["strategy"]), str(entry["reason"]))
            for run_id, entry in saved.items()
        }

    def of(self, run_id: int) -> Fault | None:
        """``run_id``'s fault, None when its strategy decides (or nothing was read yet)."""
        return (self._faults or {}).get(run_id)

    async def fault(self, run: PairRun, failure: StrategyFailed) -> PairRun:
        """Pause ``run``, keep why and alert, in one transaction; returns the paused run."""
        await self.load()
        now = self._clock.now()
        fault = Fault(run.pair, failure.strategy, failure.reason)
        faults = {**(self._faults or {}), run.id: fault}
        async with self._transactions.transaction():
            await self._save(faults)
            paused = await self._runs.set_state(run.id, RunState.PAUSED, now)
            await self._alerts.push("strategy_failed", AlertPriority.ERROR, _alert(fault))
        self._faults = faults  # in memory once it committed
        log.error("%s paused: %s", run.pair, failure)
        return paused

    async def clear(self, run_id: int) -> None:
        """``run_id``'s strategy decides again from the next close (/resume, /stoppair)."""
        await self.load()
        if self._faults is None or run_id not in self._faults:
            return
        faults = {key: fault for key, fault in self._faults.items() if key != run_id}
        await self._save(faults)
        self._faults = faults

    async def _save(self, faults: dict[int, Fault]) -> None:
        await self._state.set(
            STATE_KEY,
            {
                str(run_id): {
                    "pair": fault.pair,
                    "strategy": fault.strategy,
                    "reason": fault.reason,
                }
                for run_id, fault in faults.items()
            },
            self._clock.now(),
        )


def _alert(fault: Fault) -> str:
    return (
        f"{fault.pair} paused: its strategy {fault.strategy} failed: {fault.reason}\n"
        "Its stop-loss and resting stops keep working; no entries and no exit signals until "
        f"it is fixed. Fix the strategy, then /resume {fault.pair} (or /stoppair {fault.pair} "
        "to sell and stop). The other pairs trade on."
    )
