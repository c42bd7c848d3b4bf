"""The live gate's verdict (issue 18): in live mode a strategy may trade only when its stored
check passed at its current source hash, or an admin's /allow stands for that hash. Built-ins
get no privilege: the gate asks the same of every strategy. Paper trading runs whatever the
check says, with a warning line. What the service does with a verdict: bot/trading/held_runs.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bot.core.domain import from_ms
from bot.research.check_status import (
    CheckStatus,
    StrategyChecks,
    param_arguments,
    stored_status,
)
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


def check_command(name: str, pair: str = "", timeframe: str = "", params: str = "") -> str:
    """The command that checks ``name`` (on ``pair``'s ``timeframe`` candles when given, with
    ``params``: "--param key=value" words)."""
    where = f" --pair {pair} --timeframe {timeframe}" if pair and timeframe else ""
    return f"`pairpilot strategy check {name}{where}{params}`"


def refusal(
    name: str, status: CheckStatus, pair: str = "", timeframe: str = "", params: str = ""
) -> str:
    """Why ``name`` may not trade real money, and the command that shows why or checks it;
    ``params``: the run's, as "--param key=value" words (those not at their default)."""
    head = f"{name} may not trade real money:"
    command = check_command(name, pair, timeframe, params)
    if status.state == "failed":
        assert status.when_ms is not None  # a failed check has its time
        return (
            f"{head} its check FAILED ({', '.join(status.failed)}) on "
            f"{from_ms(status.when_ms):%Y-%m-%d}, which sticks until the source changes; "
            f"{check_command(name, params=params)} shows why"
        )
    if status.state == "changed":
        return f"{head} changed since its check (source edited); run {command}"
    if status.state == "stale":
        return f"{head} its pass is from an older version of the check; run {command}"
    if status.state == "other params":
        return f"{head} not checked with these parameters; run {command}"
    return f"{head} not checked; run {command}"


async def judge(
    strategy: type[Strategy],
    mode: str,
    checks: StrategyChecks,
    overrides: StrategyOverrides,
    pair: str = "",
    timeframe: str = "",
    params: Mapping[str, Any] | None = None,
) -> Verdict:
    """The gate's verdict on ``strategy``'s code as it is now, in ``mode`` ("live" or
    "paper"); ``pair``, ``timeframe`` and ``params``: the run's (a pass clears only the
    parameters it was checked with; None: any, for a listing), named in a refusal's command."""
    name, digest = strategy.name, source_hash(strategy)
    status = await stored_status(checks, strategy, params)
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
    words = param_arguments(strategy, params or {})
    return Verdict(False, status, reason=refusal(name, status, pair, timeframe, words))


@dataclass(frozen=True, slots=True)
class StrategyGate:
    """``judge`` bound to the service's mode and stores."""

    mode: str
    checks: StrategyChecks
    overrides: StrategyOverrides

    async def verdict(
        self,
        strategy: type[Strategy],
        pair: str = "",
        timeframe: str = "",
        params: Mapping[str, Any] | None = None,
    ) -> Verdict:
        return await judge(
            strategy, self.mode, self.checks, self.overrides, pair, timeframe, params
        )
