"""/allow (admin, confirmed): let a strategy whose check has not passed trade real money, at its
current source only (an edit voids it); ``/allow STRATEGY off`` revokes; ``/allow`` lists the
standing overrides. Each grant and revocation is alerted (and audited by the chat)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bot.alerts.outbox import AlertOutbox
from bot.core.domain import AlertPriority, from_ms, to_ms
from bot.core.errors import UserInputError
from bot.core.ports import Clock
from bot.research.receipts import source_hash
from bot.research.strategy_gate import StrategyGate, Verdict
from bot.research.strategy_source import edited_since_loaded
from bot.trading.held_runs import ALERT_KIND, hold_again, release_after_reload
from bot.trading.service import TradingService
from strategies import Strategy, strategy_registry

USAGE = "usage: /allow [STRATEGY [off]]"
SHOWN = "shown="  # the argument a Confirm adds: what its prompt was shown for (``stamp``)
CHANGED = "the code changed since this was asked (or its check did); send /allow again"


class OverrideStore(Protocol):
    """storage/strategy_overrides.py"""

    async def add(
        self, created_ms: int, strategy: str, source_hash: str, actor: str, overrode: str
    ) -> int: ...

    async def standing(self, strategy: str, source_hash: str) -> dict[str, Any] | None: ...

    async def all_standing(self) -> list[dict[str, Any]]: ...

    async def revoke(self, strategy: str, revoked_ms: int, actor: str) -> int: ...


@dataclass(frozen=True, slots=True)
class OverrideRow:
    strategy: str
    actor: str
    when: datetime
    overrode: str  # the check state it overrode
    void: bool  # the strategy's source changed since (or it is gone): it allows nothing


@dataclass(frozen=True, slots=True)
class AllowOutcome:
    strategy: str
    action: str  # "allowed", "revoked", or "released" (its check passed since: no override)
    overrode: str  # the check state (allowed)
    pairs: tuple[str, ...]  # released to trade (allowed, released), held again (revoked)


class GateDesk:
    def __init__(
        self,
        *,
        gate: StrategyGate,
        overrides: OverrideStore,
        service: TradingService,
        outbox: AlertOutbox,
        clock: Clock,
    ) -> None:
        self._gate = gate
        self._overrides = overrides
        self._service = service
        self._outbox = outbox
        self._clock = clock

    async def standing(self) -> tuple[OverrideRow, ...]:
        registry = strategy_registry()
        rows = []
        for row in await self._overrides.all_standing():
            cls = registry.get(row["strategy"])
            void = cls is None or source_hash(cls) != row["source_hash"]
            when = from_ms(int(row["created_at"]))
            rows.append(OverrideRow(row["strategy"], row["actor"], when, row["overrode"], void))
        return tuple(rows)

    async def preview(self, arguments: Sequence[str]) -> str:
        """What /allow with ``arguments`` would do, for its Confirm (bad input raises)."""
        cls, off = self._parsed(arguments)
        if off:
            await self._revocable(cls.name)
            return (
                f"revoke the /allow of {cls.name}: its live pairs are held (its strategy not "
                "asked, no new trades; their stops still checked)"
            )
        verdict = await self._grantable(cls)
        held = self._held_pairs(cls.name)
        if verdict.allowed:  # passed since its runs were held
            return f"start {cls.name}'s held pairs ({', '.join(held)}): its check passed"
        starts = f"; its held pairs ({', '.join(held)}) start trading" if held else ""
        return (
            f"let {cls.name} trade REAL MONEY although its code has not passed its check "
            f"({verdict.status.text()}): code that has not passed its check will trade real "
            f"money{starts}. Only its current source: loading an edit of the file voids this"
        )

    async def stamp(self, arguments: Sequence[str]) -> list[str]:
        """``arguments`` with what their prompt is shown for (the strategy's source hash and
        check state), for its Confirm to carry: ``allow`` refuses a press once either changed.
        Unchanged when there is nothing to grant (the press then says why)."""
        try:
            cls, off = self._parsed(arguments)
        except UserInputError:
            return list(arguments)
        if off:
            return list(arguments)
        return [*arguments, SHOWN + await self._shown(cls)]

    async def _shown(self, cls: type[Strategy]) -> str:
        verdict = await self._gate.verdict(cls)
        return f"{source_hash(cls)[:16]}/{verdict.status.state}"

    async def allow(self, arguments: Sequence[str], actor: str) -> AllowOutcome:
        """Grant (or revoke, ``off``) an override, alert it, and start (or hold) its pairs;
        a grant confirmed for other code or another check state (``stamp``) is refused."""
        shown = [a.removeprefix(SHOWN) for a in arguments if a.startswith(SHOWN)]
        cls, off = self._parsed([a for a in arguments if not a.startswith(SHOWN)])
        if shown and not off and shown != [await self._shown(cls)]:
            raise UserInputError(CHANGED)
        name, now = cls.name, self._clock.now()
        if off:
            await self._revocable(name)
            await self._overrides.revoke(name, to_ms(now), actor)
            held = await hold_again(self._service, self._gate, name)
            pairs = tuple(run.pair for run in held)
            await self._outbox.push(
                ALERT_KIND,
                AlertPriority.ERROR,
                f"/allow of {name} revoked by {actor}"
                + (f"; held: {', '.join(pairs)}" if pairs else ""),
            )
            return AllowOutcome(name, "revoked", "", pairs)
        verdict = await self._grantable(cls)
        if verdict.allowed:  # its check passed since: nothing to override
            released = await release_after_reload(self._service, self._gate)
            pairs = tuple(run.pair for run in released if run.strategy == name)
            return AllowOutcome(name, "released", "", pairs)
        overrode = verdict.status.text()
        await self._overrides.add(to_ms(now), name, source_hash(cls), actor, overrode)
        await self._outbox.push(
            ALERT_KIND,
            AlertPriority.ERROR,
            f"{name} may trade real money by /allow of {actor}, though its check is: {overrode}",
        )
        released = await release_after_reload(self._service, self._gate)
        pairs = tuple(run.pair for run in released if run.strategy == name)
        return AllowOutcome(name, "allowed", overrode, pairs)

    def _parsed(self, arguments: Sequence[str]) -> tuple[type[Strategy], bool]:
        if self._gate.mode != "live":
            raise UserInputError(
                "not needed in paper mode: paper trading runs any strategy, with a warning "
                "line when its check has not passed"
            )
        if not arguments or len(arguments) > 2 or arguments[1:] not in ([], ["off"]):
            raise UserInputError(USAGE)
        registry = strategy_registry()
        if arguments[0] not in registry:
            raise UserInputError(f"unknown strategy {arguments[0]!r}; /strategies lists them")
        return registry[arguments[0]], len(arguments) == 2

    async def _grantable(self, cls: type[Strategy]) -> Verdict:
        """The verdict an /allow of ``cls`` changes: refused, or passed with pairs still held
        (checked since start-up: /allow starts them, overriding nothing)."""
        verdict = await self._gate.verdict(cls)
        if not verdict.allowed and edited_since_loaded(cls):
            raise UserInputError(
                f"the file of {cls.name} was edited since it was loaded: an /allow is of the "
                "code loaded, not of the file; /reload first, then /allow if still needed"
            )
        if verdict.status.state == "passed" and not self._held_pairs(cls.name):
            raise UserInputError(f"{cls.name} passed its check: it needs no /allow")
        if verdict.allowed and verdict.status.state != "passed":
            raise UserInputError(f"{cls.name} is allowed already (/allow lists the overrides)")
        return verdict

    async def _revocable(self, name: str) -> None:
        if not any(row["strategy"] == name for row in await self._overrides.all_standing()):
            raise UserInputError(f"{name} has no standing /allow")

    def _held_pairs(self, name: str) -> list[str]:
        held = self._service.held
        return [r.pair for r in self._service.runs() if r.strategy == name and r.id in held]
