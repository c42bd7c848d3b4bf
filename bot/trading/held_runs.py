"""What the trading does with the live gate's verdicts (bot/research/strategy_gate.py): live
start-up holds the runs the gate refuses and alerts: a held run is ticked as a faulted one is
(bot/trading/faults.py): its strategy never asked, no entries, its stop-loss, take-profit and
trailing stop still checked; /stoppair still closes it; ``release_held`` starts those now allowed
(after an /allow, a reload); ``hold_again`` holds a strategy's runs once refused (a revoke)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from bot.alerts.outbox import AlertOutbox
from bot.core.domain import AlertPriority, PairRun
from bot.trading.service import TradingService
from strategies.base import Strategy

log = logging.getLogger(__name__)

ALERT_KIND = "strategy_gate"


class GateVerdict(Protocol):
    """May a strategy start; ``reason``: why not; ``warning``: the line beside a start."""

    @property
    def allowed(self) -> bool: ...

    @property
    def reason(self) -> str: ...

    @property
    def warning(self) -> str: ...


class StartGate(Protocol):
    """The live gate, as the trading asks it."""

    @property
    def mode(self) -> str: ...

    async def verdict(
        self,
        strategy: type[Strategy],
        pair: str = "",
        timeframe: str = "",
        params: Mapping[str, Any] | None = None,
    ) -> GateVerdict: ...


async def run_verdict(gate: StartGate, service: TradingService, run: PairRun) -> GateVerdict | None:
    """The verdict on the code ``run`` trades with (the object the service built); None when
    it has none (it could not be built: its fault pauses it, bot/trading/faults.py)."""
    strategy = service.strategy_of(run)
    if strategy is None:
        return None
    return await gate.verdict(type(strategy), run.pair, run.timeframe, strategy.params)


async def hold_refused(service: TradingService, gate: StartGate, outbox: AlertOutbox) -> None:
    """At start-up: hold every run the gate refuses (live) and alert once, naming each pair,
    its strategy, why, and the way out; in paper mode a warning line per unchecked strategy."""
    held = []
    for run in service.runs():
        verdict = await run_verdict(gate, service, run)
        if verdict is None:
            continue
        if verdict.warning:
            log.warning("%s: %s", run.pair, verdict.warning)
        if not verdict.allowed:
            service.held[run.id] = verdict.reason
            held.append(f"{run.pair} ({run.strategy}): {verdict.reason}")
    if held:
        log.error("runs held by the strategy gate: %s", "; ".join(held))
        await outbox.push(
            ALERT_KIND,
            AlertPriority.ERROR,
            "Held: their strategies are not asked, no new trades (their stops are still "
            "checked):\n"
            + "\n".join(held)
            + "\nRun the check, then /allow STRATEGY starts it; without a passed check, an "
            "admin's /allow lets it trade unchecked.",
        )


async def release_held(service: TradingService, gate: StartGate) -> list[PairRun]:
    """Gate the held runs again (after an /allow, a reload) and start those now allowed: they
    tick from the next candle close on. Takes the tick lock; the runs released."""
    released = []
    async with service.tick_lock:
        for run in service.runs():
            if run.id not in service.held:
                continue
            verdict = await run_verdict(gate, service, run)
            if verdict is None:
                continue
            if verdict.allowed:
                del service.held[run.id]
                await service.start_run(run)
                released.append(run)
            else:
                service.held[run.id] = verdict.reason
    return released


async def release_after_reload(service: TradingService, gate: StartGate) -> list[PairRun]:
    """After a /reload, or an /allow: the held runs take the registry's code and are gated
    again on it (a strategy fixed, checked and reloaded starts without a restart; an /allow
    is of the registry's code, the one its check or override names); the runs released. With
    none held it returns at once: a reload never waits on a tick it has no business with."""
    if not service.held:
        return []
    async with service.tick_lock:
        service.rebuild_held()
    return await release_held(service, gate)


async def hold_again(service: TradingService, gate: StartGate, name: str) -> list[PairRun]:
    """Hold the running runs of strategy ``name`` the gate now refuses (an /allow revoked):
    their strategies not asked from the next close on (their stops still checked). The runs
    held."""
    held = []
    async with service.tick_lock:
        for run in service.runs():
            if run.strategy != name or run.id in service.held:
                continue
            verdict = await run_verdict(gate, service, run)
            if verdict is not None and not verdict.allowed:
                service.held[run.id] = verdict.reason
                held.append(run)
    return held
