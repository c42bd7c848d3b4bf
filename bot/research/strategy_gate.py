"""The live gate's verdict (issue 18): in live mode a strategy may trade only when its stored
check passed at its current source hash, or an admin's /allow stands for that hash. Built-ins
get no privilege: the gate asks the same of every strategy. Paper trading runs whatever the
check says, with a warning line. What the service does with a verdict: bot/trading/held_runs.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from bot.core.domain import from_ms
from bot.research.check_status import CheckStatus, StrategyChecks, check_status
from bot.research.receipts import source_hash
from strategies.base import Strategy


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
