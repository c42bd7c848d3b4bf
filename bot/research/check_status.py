"""What `pairpilot strategy list` and the chat's /strategies say of a strategy's stored check
(issue 18): passed or failed at its current source, changed since its check (the newest check
of that name is of another source hash: the file was edited since), or not checked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bot.core.domain import from_ms
from bot.research.receipts import source_hash
from strategies.base import Strategy


class StrategyChecks(Protocol):
    """The stored checks (storage/strategy_checks.py), each with its ``created_ms``."""

    async def latest(self, strategy: str, source_hash: str) -> dict[str, Any] | None: ...

    async def newest(self, strategy: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True, slots=True)
class CheckStatus:
    state: str  # "passed", "failed", "changed" or "not checked"
    when_ms: int | None = None  # when the check ran (passed, failed)
    pair: str = ""
    timeframe: str = ""
    failed: tuple[str, ...] = ()  # the checks that failed

    def text(self) -> str:
        """One short line: "passed 2026-11-27 on BTC/USDT 1h", "FAILED (warm-up) 2026-11-27",
        "changed since its check" or "not checked"."""
        if self.state == "changed":
            return "changed since its check"
        if self.when_ms is None:
            return "not checked"
        day = f"{from_ms(self.when_ms):%Y-%m-%d}"
        if self.state == "passed":
            return f"passed {day} on {self.pair} {self.timeframe}"
        return f"FAILED ({', '.join(self.failed)}) {day}"


NOT_CHECKED = CheckStatus("not checked")


def check_status(
    current: Mapping[str, Any] | None, newest: Mapping[str, Any] | None
) -> CheckStatus:
    """From the newest check at the current source hash and the newest of the name at all."""
    if current is None:
        return NOT_CHECKED if newest is None else CheckStatus("changed")
    return CheckStatus(
        "passed" if current["passed"] else "failed",
        int(current["created_ms"]),
        str(current["pair"]),
        str(current["timeframe"]),
        tuple(str(v["check"]) for v in current["verdicts"] if not v["passed"]),
    )


async def check_statuses(
    checks: StrategyChecks, registry: Mapping[str, type[Strategy]]
) -> dict[str, CheckStatus]:
    """Each strategy of ``registry``'s status, by name."""
    statuses = {}
    for name, cls in registry.items():
        current = await checks.latest(name, source_hash(cls))
        statuses[name] = check_status(current, None if current else await checks.newest(name))
    return statuses


def check_note(name: str, status: CheckStatus) -> str | None:
    """The one line a backtest or sweep of ``name`` says when its check has not passed at its
    current source (research runs anyway; live trading would refuse it), else None."""
    if status.state == "passed":
        return None
    return f"note: {name} {status.text()}; `pairpilot strategy check {name}` before live"


async def stored_note(checks: StrategyChecks, strategy: type[Strategy]) -> str | None:
    """``check_note`` of ``strategy`` from the stored checks."""
    status = (await check_statuses(checks, {strategy.name: strategy}))[strategy.name]
    return check_note(strategy.name, status)
