"""/reload: the strategies folder and entry points the service started with, loaded again
without a restart (issue 18, docs/strategies.md).

The new registry is installed whole (strategies/registry.py): /startpair, /backtest and /sweep
after it build the new code; a running pair keeps the strategy object it was started with
(bot/trading/service.py) until /stoppair, and /pairs says when a newer version waits. A file
that no longer loads drops its strategies from the registry, as at start-up; a pair running
one of them keeps its object and is alerted. When loading fails as a whole (the configured
folder is gone) nothing is installed and the registry before stays.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.chat.one_at_a_time import OneAtATime
from bot.core.daemon_threads import in_daemon_thread
from bot.core.domain import AlertPriority
from bot.core.errors import BotError, UserInputError
from bot.research.loaded_code import behind, loaded_hash
from bot.trading.service import TradingService
from strategies import strategy_registry
from strategies.registry import StrategyRegistry, install


class Problem(Protocol):
    """A strategy not loaded (bot/app/strategy_loading.py LoadProblem)."""

    @property
    def where(self) -> str: ...  # file:line, or the entry point

    @property
    def message(self) -> str: ...


class Loaded(Protocol):
    @property
    def registry(self) -> StrategyRegistry: ...

    @property
    def problems(self) -> Sequence[Problem]: ...


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    new: tuple[str, ...]
    changed: tuple[str, ...]  # another source hash than the registry's before
    removed: tuple[str, ...]  # gone from the registry: file removed, or it no longer loads
    unchanged: int
    problems: tuple[str, ...]  # "file:line: error", each strategy not loaded
    kept: tuple[tuple[str, str], ...]  # (pair, strategy): running code the registry no longer has
    registry: StrategyRegistry  # the one installed


Alert = Callable[[str, AlertPriority, str], Awaitable[object]]  # kind, priority, text
AfterReload = Callable[[ReloadOutcome], Awaitable[object]]


class ReloadDesk:
    """``load``: the loading the service started with (same folder, same entry-point group);
    ``alert``: the outbox's push."""

    def __init__(
        self, *, load: Callable[[], Loaded], service: TradingService, alert: Alert
    ) -> None:
        self._load = load
        self._service = service
        self._alert = alert
        self._one = OneAtATime("reload")
        # Run after each reload that installed a registry, in order, with its outcome: the
        # hook point for what must follow new code (the live gate's held runs, when wired).
        self.after_reload: list[AfterReload] = []

    async def reload(self) -> ReloadOutcome:
        """Load, compare with the registry before, install. One at a time: a second /reload
        while one loads is refused (OneAtATime), never interleaved with it.

        Loading runs in a thread: a user module may take long to import and the event loop
        must go on ticking and answering. It never takes the tick lock: a tick in progress
        holds the strategy objects of its pairs, which a reload does not touch, and installing
        the registry is one assignment, so a tick (or a /startpair) sees the old registry or
        the new one whole. Waiting for the lock would only hold a reload behind a slow tick."""
        with self._one.hold("/reload"):
            before = strategy_registry()
            try:
                loaded = await in_daemon_thread(self._load)
            except BotError as error:
                raise UserInputError(
                    f"Nothing reloaded: {error}. The strategies loaded before stay."
                ) from None
            after = loaded.registry
            install(after)
            outcome = self._outcome(before, loaded)
            await self._alert_unloaded(before, after, loaded.problems)
            for hook in self.after_reload:
                await hook(outcome)
            return outcome

    def _outcome(self, before: StrategyRegistry, loaded: Loaded) -> ReloadOutcome:
        after = loaded.registry
        both = [name for name in after if name in before]
        changed = tuple(sorted(n for n in both if loaded_hash(after[n]) != loaded_hash(before[n])))
        kept = tuple(
            (run.pair, run.strategy)
            for run in self._service.runs()
            if (running := self._service.strategy_of(run)) is not None
            and behind(running, after) is not None
        )
        return ReloadOutcome(
            new=tuple(sorted(set(after) - set(before))),
            changed=changed,
            removed=tuple(sorted(set(before) - set(after))),
            unchanged=len(both) - len(changed),
            problems=tuple(str(problem) for problem in loaded.problems),
            kept=kept,
            registry=after,
        )

    async def _alert_unloaded(
        self, before: StrategyRegistry, after: StrategyRegistry, problems: Sequence[Problem]
    ) -> None:
        """An alert for each running pair whose strategy this reload dropped: its file broke
        or went, and a restart would not start the pair."""
        for run in self._service.runs():
            if run.strategy not in before or run.strategy in after:
                continue
            where = before.origin(run.strategy).where
            why = next(
                (str(p) for p in problems if p.where == where or p.where.startswith(f"{where}:")),
                "its file is gone",
            )
            await self._alert(
                "strategy",
                AlertPriority.ERROR,
                f"/reload: {run.pair} runs strategy {run.strategy}, which is not loaded any more "
                f"({why}); the pair keeps running the code it started with until /stoppair (a "
                "restart would not start it)",
            )
