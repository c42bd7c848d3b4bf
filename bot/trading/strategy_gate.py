"""The live gate (issue 18): in live mode a strategy may trade only when its stored check passed
at its current source hash, or an admin's /allow stands for that hash. Built-ins get no
privilege: the gate asks the same of every strategy.

Paper trading runs whatever the check says, with a warning line; live start-up holds the runs
the gate refuses (not ticked: their position and resting stop stay as they are, /stoppair still
closes them) and alerts; ``release_held`` starts those now allowed (after an /allow, a reload).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from bot.alerts.outbox import AlertOutbox
from bot.core.domain import AlertPriority, PairRun, from_ms
from bot.research.check_status import CheckStatus, StrategyChecks, check_status
from bot.research.receipts import source_hash
from bot.trading.service import TradingService
from strategies.base import Strategy

log = logging.getLogger(__name__)

ALERT_KIND = "strategy_gate"


class StrategyOverrides(Protocol):
    """The standing /allow overrides (storage/strategy_overrides.py)."""

    async def standing(self, strategy: str, source_hash: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """May the strategy start? ``reason``: why not, in one line (refused); ``warning``: the
    line said beside a start the check has not cleared (paper, or live by an override)."""

    allowed: bool
    status: CheckStatus
    reason: str = ""
    warning: str = ""


def check_command(name: str, pair: str = "", timeframe: str = "") -> str:
    """The command that checks ``name`` (on ``pair``'s ``timeframe`` candles when given)."""
    where = f" --pair {pair} --timeframe {timeframe}" if pair and timeframe else ""
    return f"`pairpilot strategy check {name}{where}`"


def refusal(name: str, status: CheckStatus, pair: str = "", timeframe: str = "") -> str:
    """Why ``name`` may not trade real money, and the command that shows why or checks it."""
    head = f"{name} may not trade real money:"
    if status.state == "failed":
        assert status.when_ms is not None  # a failed check has its time
        return (
            f"{head} its check FAILED ({', '.join(status.failed)}) on "
            f"{from_ms(status.when_ms):%Y-%m-%d}; {check_command(name)} shows why"
        )
    if status.state == "changed":
        return (
            f"{head} changed since its check (source edited); "
            f"run {check_command(name, pair, timeframe)}"
        )
    return f"{head} not checked; run {check_command(name, pair, timeframe)}"


async def judge(
    strategy: type[Strategy],
    mode: str,
    checks: StrategyChecks,
    overrides: StrategyOverrides,
    pair: str = "",
    timeframe: str = "",
) -> Verdict:
    """The gate's verdict on ``strategy``'s code as it is now, in ``mode`` ("live" or
    "paper"); ``pair`` and ``timeframe``: the run's, named in the command a refusal gives."""
    name, digest = strategy.name, source_hash(strategy)
    current = await checks.latest(name, digest)
    status = check_status(current, None if current else await checks.newest(name))
    if status.state == "passed":
        return Verdict(True, status)
    if mode != "live":
        return Verdict(
            True,
            status,
            warning=f"warning: {name} has not passed its check ({status.text()}); "
            "live mode would refuse it",
        )
    override = await overrides.standing(name, digest)
    if override is not None:
        return Verdict(
            True,
            status,
            warning=f"warning: {name} trades real money by an admin's /allow "
            f"(its check: {status.text()})",
        )
    return Verdict(False, status, reason=refusal(name, status, pair, timeframe))


@dataclass(frozen=True, slots=True)
class StrategyGate:
    """``judge`` bound to the service's mode and stores."""

    mode: str
    checks: StrategyChecks
    overrides: StrategyOverrides

    async def verdict(
        self, strategy: type[Strategy], pair: str = "", timeframe: str = ""
    ) -> Verdict:
        return await judge(strategy, self.mode, self.checks, self.overrides, pair, timeframe)

    async def of_run(self, service: TradingService, run: PairRun) -> Verdict:
        """The verdict on the code ``run`` trades with (the object the service built)."""
        return await self.verdict(type(service.strategy_of(run)), run.pair, run.timeframe)


async def hold_refused(service: TradingService, gate: StrategyGate, outbox: AlertOutbox) -> None:
    """At start-up: hold every run the gate refuses (live) and alert once, naming each pair,
    its strategy, why, and the way out; in paper mode a warning line per unchecked strategy."""
    held = []
    for run in service.runs():
        verdict = await gate.of_run(service, run)
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
            "Held, not trading (their positions and stops stay as they are):\n"
            + "\n".join(held)
            + "\nRun the check, or an admin's /allow STRATEGY lets it trade unchecked.",
        )


async def release_held(service: TradingService, gate: StrategyGate) -> list[PairRun]:
    """Gate the held runs again (after an /allow, a reload) and start those now allowed: they
    tick from the next candle close on. Takes the tick lock; the runs released."""
    released = []
    async with service.tick_lock:
        for run in service.runs():
            if run.id not in service.held:
                continue
            verdict = await gate.of_run(service, run)
            if verdict.allowed:
                del service.held[run.id]
                await service.start_run(run)
                released.append(run)
            else:
                service.held[run.id] = verdict.reason
    return released


async def hold_again(service: TradingService, gate: StrategyGate, name: str) -> list[PairRun]:
    """Hold the running runs of strategy ``name`` the gate now refuses (an /allow revoked):
    not ticked from now on, their positions and stops left as they are. The runs held."""
    held = []
    async with service.tick_lock:
        for run in service.runs():
            if run.strategy != name or run.id in service.held:
                continue
            verdict = await gate.of_run(service, run)
            if not verdict.allowed:
                service.held[run.id] = verdict.reason
                held.append(run)
    return held
