"""The chat's trading actions: start, stop, pause and resume pairs, halt and resume trading,
flatten, settle an order by hand, accept holdings; and what each would do, for a Confirm.

Actions go through Control and the risk guard and return what happened as values; bad input
raises UserInputError / NotFound and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.chat.limits_desk import LimitsDesk
from bot.chat.requests import normalise_pair, number
from bot.chat.venue import Venue
from bot.core.domain import PairRun
from bot.core.errors import UserInputError
from bot.core.key_values import key_values
from bot.core.number_text import amount_text
from bot.core.pairs import check_quote
from bot.core.ports import Clock
from bot.portfolio.holdings import Holding, accept_preview, accepting
from bot.trading.control import Control
from bot.trading.engine import Engine
from bot.trading.held_runs import run_verdict
from bot.trading.kill_switch import FlattenReport
from bot.trading.service import TradingService

START_USAGE = "usage: /startpair PAIR [STRATEGY] [TIMEFRAME] [key=value ...]"


def malformed(item: str) -> str:
    """How a chat command words a bad key=value item (for bot.core.key_values)."""
    return f"{item!r}: expected key=value, like fast=12"


class PairDesk:
    def __init__(
        self,
        *,
        venue: Venue,
        service: TradingService,
        engine: Engine,
        control: Control,
        limits: LimitsDesk,
        clock: Clock,
    ) -> None:
        self._venue = venue
        self._service = service
        self._engine = engine
        self._control = control
        self._limits = limits
        self._clock = clock

    async def start_pair(self, arguments: Sequence[str]) -> PairRun:
        """PAIR [STRATEGY] [TIMEFRAME] [key=value ...]"""
        if not arguments:
            raise UserInputError(START_USAGE)
        pair = normalise_pair(arguments[0], self._venue.quote)
        check_quote(pair, self._venue.quote)
        words = [a for a in arguments[1:] if "=" not in a]
        params = key_values([a for a in arguments[1:] if "=" in a], malformed)
        strategy = words[0] if words else "ema_cross"
        timeframe = words[1] if len(words) > 1 else "1h"
        if len(words) > 2:
            raise UserInputError(f"unexpected {words[2]!r}; parameters go as key=value")
        share = params.pop("share", None)
        capital = number("share", share) if share is not None else None  # None: what is left
        return await self._control.start_pair(pair, strategy, timeframe, params, capital)

    async def start_warning(self, run: PairRun) -> str:
        """The warning line a start of ``run`` carries when its strategy's check has not
        passed (paper; live by an /allow), else ""."""
        gate = self._control.gate
        verdict = None if gate is None else await run_verdict(gate, self._service, run)
        return "" if verdict is None else verdict.warning

    async def stop_pair(self, argument: str) -> str:
        """Stop the pair (its position is closed); the pair as understood."""
        pair = normalise_pair(argument, self._venue.quote)
        await self._control.stop(pair)
        return pair

    async def pause(self, argument: str) -> str:
        pair = normalise_pair(argument, self._venue.quote)
        await self._control.pause(pair)
        return pair

    async def resume(self, argument: str) -> str:
        pair = normalise_pair(argument, self._venue.quote)
        await self._control.resume(pair)
        return pair

    async def halt(self, actor: str) -> bool:
        """Halt new entries; False when trading was already halted."""
        return await self._engine.guard.halt(f"halted from chat by {actor}", self._clock.now())

    async def halt_since(self) -> str | None:
        """When the standing halt began (ISO), or None: tells one halt from a later one."""
        halted = await self._engine.guard.halted()
        return str(halted["since"]) if halted else None

    async def resume_trading(self) -> bool:
        """Lift the halt; False when trading was not halted."""
        equity = self._engine.portfolio.equity(self._service.prices)
        return await self._engine.guard.resume(equity, self._clock.now())

    async def flatten(self) -> FlattenReport:
        return await self._control.flatten()

    async def settle_order(self, arguments: list[str], actor: str) -> str:
        """/order (admin, confirmed): settle an order the exchange cannot tell by hand; what
        was done, in plain text."""
        return await self._control.settle_order(arguments, actor)

    async def accept_holdings(self) -> list[Holding]:
        return await self._control.accept_holdings()

    async def preview(self, command: str, arguments: Sequence[str]) -> str | None:
        """What ``command`` would do now, in words, for a Confirm prompt (plain text); None
        when its summary says it."""
        if command == "flatten":
            held = self._engine.portfolio.positions()
            sold = ", ".join(f"{p.pair} {amount_text(p.amount)}" for p in held)
            return f"halt trading, cancel open orders and sell {sold or 'nothing (flat)'}"
        if command == "stoppair" and arguments:
            pair = normalise_pair(arguments[0], self._venue.quote)
            position = self._engine.portfolio.position(pair)
            sale = f"sell {amount_text(position.amount)}" if position else "nothing to sell"
            return f"stop {pair} ({sale})"
        if command == "order":
            return await self._control.order_preview(list(arguments))
        if command == "holdings" and accepting(arguments):
            return accept_preview(await self._control.holdings())
        if command == "halt" and await self._engine.guard.halted():
            return "nothing: trading is already halted"
        if command == "risk" and len(arguments) == 3:
            return self._limits.preview(arguments[1], arguments[2])
        return None
