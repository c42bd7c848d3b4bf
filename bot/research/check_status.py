"""What a strategy's stored checks clear (issue 18): the one reading of them for `pairpilot
strategy list`, the chat's /strategies and the live gate.

From every check at the strategy's current source hash:

- a failed check sticks: a look-ahead, a non-deterministic or bad output, a warm-up too short
  is proof about the code, and a later pass on other data at the same source and parameters
  does not erase it (an edit, a new source hash, does; or an admin's override);
- a pass counts only when made by the current version of the check's own code
  (bot/research/check_version.py; older: "stale") and, for a run, only at the run's
  parameters;
- no check at this source but one of the name at another: the file changed since its check.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bot.core.domain import from_ms
from bot.research.check_version import check_version
from bot.research.receipts import source_hash
from strategies.base import Strategy


class StrategyChecks(Protocol):
    """The stored checks (storage/strategy_checks.py), each with ``created_ms`` and
    ``check_version``."""

    async def at_source(self, strategy: str, source_hash: str) -> list[dict[str, Any]]: ...

    async def newest(self, strategy: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True, slots=True)
class CheckStatus:
    # "passed", "failed", "stale" (passed under an older check), "other params" (checked, not
    # at these parameters), "changed" or "not checked"
    state: str
    when_ms: int | None = None
    pair: str = ""
    timeframe: str = ""
    failed: tuple[str, ...] = ()  # the checks that failed
    params: str = ""  # the parameters checked, as words ("length=60", "defaults")
    data: str = ""  # the candles' first and last day: "2025-11-27..2026-11-27"
    also: str = ""  # a second fact: a pass beside a failure, what was checked instead

    def text(self) -> str:
        """One short line: "passed 2026-11-27 (defaults; BTC/USDT 1h, 2025-11-27..2026-11-27)",
        "FAILED (warm-up, length=60) 2026-11-27: sticks until the source changes", ..."""
        if self.state == "changed":
            return "changed since its check"
        if self.state == "not checked":
            return "not checked"
        if self.state == "other params":
            return f"not checked with these parameters ({self.also})"
        day = f"{from_ms(self.when_ms or 0):%Y-%m-%d}"
        if self.state == "passed":
            return f"passed {day} ({self.params}; {self.pair} {self.timeframe}, {self.data})"
        if self.state == "stale":
            return f"passed {day} ({self.params}) by an older version of the check: run it again"
        also = f"; {self.also}" if self.also else ""
        return (
            f"FAILED ({', '.join(self.failed)}, {self.params}) {day}: sticks until the source "
            f"changes{also}"
        )


NOT_CHECKED = CheckStatus("not checked")


def check_status(
    rows: Sequence[Mapping[str, Any]],
    newest: Mapping[str, Any] | None,
    params: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> CheckStatus:
    """From every check at the current source hash (oldest first) and the newest of the name
    at all; ``params``: a run's (None: any, for a listing); ``defaults``: the strategy's, to
    name parameters by how they differ (module doc)."""
    if not rows:
        return NOT_CHECKED if newest is None else CheckStatus("changed")
    wanted = [row for row in rows if params is None or _key(row["params"]) == _key(params)]
    failed = [row for row in wanted if not row["passed"]]
    current = [row for row in wanted if row["passed"] and row["check_version"] == check_version()]
    if failed:
        passed = f"passed for {_words(current[-1]['params'], defaults)}" if current else ""
        return _status("failed", failed[-1], defaults, passed)
    if current:
        return _status("passed", current[-1], defaults)
    if wanted:
        return _status("stale", wanted[-1], defaults)
    checked = sorted({_words(row["params"], defaults) for row in rows})
    return CheckStatus("other params", also=f"checked for {'; '.join(checked)}")


def _status(
    state: str, row: Mapping[str, Any], defaults: Mapping[str, Any] | None, also: str = ""
) -> CheckStatus:
    first, last = from_ms(int(row["first_ms"])), from_ms(int(row["last_ms"]))
    return CheckStatus(
        state,
        int(row["created_ms"]),
        str(row["pair"]),
        str(row["timeframe"]),
        tuple(str(v["check"]) for v in row["verdicts"] if not v["passed"]),
        _words(row["params"], defaults),
        f"{first:%Y-%m-%d}..{last:%Y-%m-%d}",
        also,
    )


def _key(params: Mapping[str, Any]) -> str:
    return json.dumps(dict(params), sort_keys=True)


def _words(params: Mapping[str, Any], defaults: Mapping[str, Any] | None) -> str:
    """``params`` as "key=value" words, only those that differ from ``defaults``."""
    differ = {k: v for k, v in params.items() if defaults is None or defaults.get(k) != v}
    return ",".join(f"{k}={v}" for k, v in differ.items()) or "defaults"


def param_arguments(strategy: type[Strategy], params: Mapping[str, Any]) -> str:
    """ " --param key=value" for each of ``params`` not at its default: what `pairpilot strategy
    check` needs to check exactly these parameters."""
    defaults = defaults_of(strategy)
    return "".join(f" --param {k}={v}" for k, v in params.items() if defaults.get(k) != v)


def defaults_of(strategy: type[Strategy]) -> dict[str, Any]:
    return {spec.name: spec.default for spec in strategy.specs()}


async def stored_status(
    checks: StrategyChecks, strategy: type[Strategy], params: Mapping[str, Any] | None = None
) -> CheckStatus:
    """``check_status`` of ``strategy``'s code as it is now, from the stored checks."""
    name = strategy.name
    rows = await checks.at_source(name, source_hash(strategy))
    newest = None if rows else await checks.newest(name)
    return check_status(rows, newest, params, defaults_of(strategy))


async def check_statuses(
    checks: StrategyChecks, registry: Mapping[str, type[Strategy]]
) -> dict[str, CheckStatus]:
    """Each strategy of ``registry``'s status, by name."""
    return {name: await stored_status(checks, cls) for name, cls in registry.items()}


def check_note(
    strategy: type[Strategy], status: CheckStatus, params: Mapping[str, Any] | None = None
) -> str | None:
    """The one line a backtest or sweep of ``strategy`` (at ``params``, when given) says when
    its check has not passed at its current source (research runs anyway; live trading would
    refuse it), else None."""
    if status.state == "passed":
        return None
    name = strategy.name
    command = f"pairpilot strategy check {name}{param_arguments(strategy, params or {})}"
    return f"note: {name} {status.text()}; `{command}` before live"


async def stored_note(
    checks: StrategyChecks, strategy: type[Strategy], params: Mapping[str, Any] | None = None
) -> str | None:
    """``check_note`` of ``strategy`` (at ``params``, when given) from the stored checks."""
    return check_note(strategy, await stored_status(checks, strategy, params), params)
