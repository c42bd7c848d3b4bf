"""What a trader sees and does from a chat, as text: the service behind the Telegram commands.

Everything here is chat-agnostic: views return short texts in Telegram's HTML subset (every
value escaped), actions go through Control and the risk guard and say what happened. Bad
input raises UserInputError / NotFound and changes nothing.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from bot.control import Control
from bot.domain import PairRun
from bot.engine import Engine
from bot.errors import UserInputError
from bot.ports import Clock
from bot.service import TradingService
from storage.audit import SqliteAuditRepository
from storage.fills import SqliteFillRepository
from storage.orders import SqliteOrderRepository
from strategies import REGISTRY

_PAIR = re.compile(r"^([A-Za-z0-9]{2,15})[/\-_:]?([A-Za-z0-9]{2,15})?$")
_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "USD", "EUR", "BTC", "ETH", "BNB")


def normalise_pair(text: str, quote: str) -> str:
    """BTC/USDT, BTCUSDT, btc-usdt and btc_usdt all mean BTC/USDT."""
    match = _PAIR.match(text.strip())
    if not match:
        raise UserInputError(f"{text!r} is not a pair; write it like BTC/USDT or BTCUSDT")
    base, second = match.group(1).upper(), (match.group(2) or "").upper()
    if second:
        return f"{base}/{second}"
    for known in (quote, *_QUOTES):
        if base.endswith(known) and len(base) > len(known):
            return f"{base[: -len(known)]}/{known}"
    raise UserInputError(f"{text!r}: say which currency it is quoted in, like {base}/{quote}")


@dataclass(frozen=True, slots=True)
class Venue:
    mode: str  # paper or live
    exchange: str
    quote: str


class Cockpit:
    def __init__(
        self,
        *,
        venue: Venue,
        service: TradingService,
        engine: Engine,
        control: Control,
        fills: SqliteFillRepository,
        orders: SqliteOrderRepository,
        audit: SqliteAuditRepository,
        clock: Clock,
    ) -> None:
        self.venue = venue
        self._service = service
        self._engine = engine
        self._control = control
        self._fills = fills
        self._orders = orders
        self._audit = audit
        self._clock = clock

    # --- views ------------------------------------------------------------------------------

    async def status(self) -> str:
        portfolio, prices = self._engine.portfolio, self._service.prices
        equity = portfolio.equity(prices)
        halt = await self._engine.guard.halted()
        day_start = await self._engine.guard.day_start()
        today = equity - day_start if day_start else 0.0
        lines = [
            f"<b>{escape(self.venue.mode)}</b> on {escape(self.venue.exchange)}",
            f"Trading: {'HALTED: ' + escape(halt['reason']) if halt else 'on'}",
            f"Equity {equity:,.2f} {self.venue.quote}, today {today:+,.2f}",
        ]
        runs = self._service.runs()
        for run in runs:
            lines.append(self._run_line(run))
        if not runs:
            lines.append("No pairs running. /startpair BTC/USDT to start one.")
        return "\n".join(lines)

    def pairs(self) -> str:
        runs = self._service.runs()
        if not runs:
            return "No pairs running."
        return "\n".join(
            f"{escape(run.pair)} {run.state.value}: {escape(run.strategy)} {run.timeframe}, "
            f"{run.capital_share:.0%} of capital"
            + (f", {escape(_params(run.params))}" if run.params else "")
            for run in runs
        )

    async def balance(self) -> str:
        balances = await self._engine.exchange.fetch_balances()
        portfolio = self._engine.portfolio
        lines = [f"Books: cash {portfolio.cash:,.2f} {self.venue.quote}"]
        lines += [f"{escape(asset)} {amount:,.8g}" for asset, amount in sorted(balances.items())]
        return "\n".join(lines)

    def positions(self) -> str:
        prices = self._service.prices
        positions = self._engine.portfolio.positions()
        if not positions:
            return "No open positions."
        return "\n".join(
            f"{escape(p.pair)} {p.amount:.8g} @ {p.average_price:,.2f}, "
            f"unrealised {p.unrealised_pnl(prices.get(p.pair, p.average_price)):+,.2f}"
            for p in positions
        )

    async def trades(self, count: int) -> str:
        from bot.metrics import round_trips

        trades = round_trips(await self._fills.all())[-count:]
        if not trades:
            return "No closed trades yet."
        return "\n".join(
            f"{t.exit_time:%m-%d %H:%M} {escape(t.pair)} {t.pnl:+,.2f} ({t.return_pct:+.2%}), "
            f"in {t.entry_price:,.2f} out {t.exit_price:,.2f}"
            for t in reversed(trades)
        )

    async def recent_orders(self, count: int) -> str:
        orders = await self._orders.recent(count)
        if not orders:
            return "No orders yet."
        return "\n".join(
            f"{o.created_at:%m-%d %H:%M} {escape(o.pair)} {o.side.value} {o.amount:.6g} "
            f"{o.status.value}" + (f" @ {o.average_price:,.2f}" if o.average_price else "")
            for o in orders
        )

    def strategies(self) -> str:
        blocks = []
        for name in sorted(REGISTRY):
            specs = ", ".join(f"{s.name}={s.default:g} [{s.minimum:g}..{s.maximum:g}]"
                              for s in REGISTRY[name].specs())  # fmt: skip
            blocks.append(f"<b>{escape(name)}</b>: {escape(specs)}")
        return "\n".join(blocks)

    def risk(self) -> str:
        limits = self._engine.guard.limits
        return "\n".join(
            f"{name} = {value:g}" for name, value in dataclasses.asdict(limits).items()
        )

    async def audit(self, count: int) -> str:
        entries = await self._audit.latest(count)
        if not entries:
            return "The audit log is empty."
        return "\n".join(
            f"{e.time:%m-%d %H:%M} {escape(e.actor)} /{escape(e.command)} "
            f"{escape(' '.join(e.arguments))}: {escape(e.result)}"
            for e in entries
        )

    # --- actions ----------------------------------------------------------------------------

    async def start_pair(self, arguments: Sequence[str]) -> str:
        """PAIR [STRATEGY] [TIMEFRAME] [key=value ...]"""
        if not arguments:
            raise UserInputError("usage: /startpair PAIR [STRATEGY] [TIMEFRAME] [key=value ...]")
        pair = normalise_pair(arguments[0], self.venue.quote)
        words = [a for a in arguments[1:] if "=" not in a]
        params = _key_values([a for a in arguments[1:] if "=" in a])
        strategy = words[0] if words else "ema_cross"
        timeframe = words[1] if len(words) > 1 else "1h"
        if len(words) > 2:
            raise UserInputError(f"unexpected {words[2]!r}; parameters go as key=value")
        share = params.pop("share", None)
        taken = sum(run.capital_share for run in self._service.runs())
        capital = _number("share", share) if share is not None else round(1 - taken, 6)
        run = await self._control.start_pair(pair, strategy, timeframe, params, capital)
        return (
            f"Started {escape(run.pair)}: {escape(run.strategy)} {run.timeframe}, "
            f"{run.capital_share:.0%} of capital. It acts from the next candle close."
        )

    async def stop_pair(self, argument: str) -> str:
        pair = normalise_pair(argument, self.venue.quote)
        await self._control.stop(pair)
        return f"Stopped {escape(pair)}; its position is closed."

    async def pause(self, argument: str) -> str:
        pair = normalise_pair(argument, self.venue.quote)
        await self._control.pause(pair)
        return f"Paused {escape(pair)}: no new entries; exits are still managed."

    async def resume(self, argument: str) -> str:
        pair = normalise_pair(argument, self.venue.quote)
        await self._control.resume(pair)
        return f"Resumed {escape(pair)}."

    async def halt(self, actor: str) -> str:
        halted = await self._engine.guard.halt(f"halted from chat by {actor}", self._clock.now())
        return "Trading halted: no new entries; exits are still managed." if halted else (
            "Trading was already halted.")  # fmt: skip

    async def resume_trading(self) -> str:
        equity = self._engine.portfolio.equity(self._service.prices)
        resumed = await self._engine.guard.resume(equity, self._clock.now())
        return "Trading resumed." if resumed else "Trading was not halted."

    async def flatten(self) -> str:
        report = await self._control.flatten()
        closed = ", ".join(f"{escape(p)} {a:.8g}" for p, a in report.closed.items()) or "nothing"
        lines = [f"Flattened: halted{'' if report.halted_now else ' (already)'}, "
                 f"{report.cancelled_orders} open order(s) cancelled, sold {closed}."]  # fmt: skip
        if report.clean:
            lines.append("Verified: the exchange holds no position.")
        else:
            left = ", ".join(f"{escape(a)} {v:.8g}" for a, v in report.left.items())
            lines.append(f"<b>Check the account</b>: the exchange still holds {left}.")
        return "\n".join(lines)

    async def record(self, actor: str, command: str, arguments: Sequence[str], result: str) -> None:
        await self._audit.add(actor=actor, command=command, arguments=list(arguments),
                              result=result[:300], now=self._clock.now())  # fmt: skip

    def _run_line(self, run: PairRun) -> str:
        position = self._engine.portfolio.position(run.pair)
        price = self._service.prices.get(run.pair)
        if position is None:
            held = "flat"
        else:
            pnl = position.unrealised_pnl(price) if price else 0.0
            held = f"{position.amount:.6g} @ {position.average_price:,.2f}, {pnl:+,.2f}"
        state = "" if run.state.value == "running" else f" ({run.state.value})"
        return f"{escape(run.pair)}{state} {escape(run.strategy)} {run.timeframe}: {held}"


def _params(params: Mapping[str, object]) -> str:
    return " ".join(f"{key}={value}" for key, value in params.items())


def _key_values(items: Sequence[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key or not value:
            raise UserInputError(f"{item!r}: expected key=value, like fast=12")
        values[key.strip()] = value.strip()
    return values


def _number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UserInputError(f"{name}={text!r}: expected a number") from None
