"""The chat's reads: status, pairs, balances, positions, trades, orders, strategies, limits.

Each returns a typed view (bot/chat/views.py); the front end words and marks it up.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bot.chat.venue import Venue
from bot.chat.views import (
    BalanceView,
    Held,
    OrderRow,
    PairRow,
    ParamRow,
    PositionRow,
    RiskRow,
    RiskView,
    RunRow,
    StatusView,
    StrategyRow,
    TradeRow,
)
from bot.core.domain import PairRun, Trade
from bot.core.ports import FillHistory, OrderHistory
from bot.portfolio.holdings import Holding
from bot.portfolio.performance import round_trips
from bot.research.check_status import StrategyChecks, check_statuses
from bot.research.loaded_code import RunningCode, behind
from bot.trading.control import Control
from bot.trading.engine import Engine
from bot.trading.service import TradingService
from strategies import strategy_registry
from strategies.registry import Origin, StrategyRegistry

FRACTION_KEYS = frozenset(
    {
        "position_fraction",
        "max_position_fraction",
        "max_total_exposure",
        "risk_per_trade",
        "daily_loss_limit",
        "max_drawdown",
        "volatility_floor",
    }
)
MONEY_KEYS = frozenset({"min_order_value"})


async def closed_trades(engine: Engine, service: TradingService, fills: FillHistory) -> list[Trade]:
    """Every round trip; one that left only dust is closed (the exchange's dust rule, and
    the engine's word on a rest that turned to dust after its exit)."""
    prices = service.prices
    dust = {
        p.pair: p.amount
        for p in engine.portfolio.positions()
        if await engine.is_dust(p, prices.get(p.pair, p.average_price))
    }
    return round_trips(await fills.all(), engine.exchange.too_small, dust)


class Overview:
    """Where things stand, read for a chat."""

    def __init__(
        self,
        *,
        venue: Venue,
        service: TradingService,
        engine: Engine,
        control: Control,
        fills: FillHistory,
        orders: OrderHistory,
        checks: StrategyChecks,
    ) -> None:
        self._venue = venue
        self._service = service
        self._engine = engine
        self._control = control
        self._fills = fills
        self._orders = orders
        self._checks = checks

    async def status(self) -> StatusView:
        portfolio, prices = self._engine.portfolio, self._service.prices
        equity = portfolio.equity(prices)
        halt = await self._engine.guard.halted()
        day_start = await self._engine.guard.day_start()
        return StatusView(
            mode=self._venue.mode,
            exchange=self._venue.exchange,
            halt=halt["reason"] if halt else None,
            equity=equity,
            today=equity - day_start if day_start else 0.0,
            quote=self._venue.quote,
            runs=tuple(self._run_row(run) for run in self._service.runs()),
        )

    def pairs(self) -> tuple[PairRow, ...]:
        registry = strategy_registry()
        return tuple(
            PairRow(
                run.pair,
                run.state.value,
                run.strategy,
                run.timeframe,
                run.capital_share,
                " ".join(f"{key}={value}" for key, value in run.params.items()),
                self._fault(run),
                self._behind(run, registry),
                self._service.held.get(run.id, ""),
            )
            for run in self._service.runs()
        )

    async def balance(self) -> BalanceView:
        balances = await self._engine.exchange.fetch_balances()
        return BalanceView(
            self._engine.portfolio.cash, self._venue.quote, tuple(sorted(balances.items()))
        )

    async def holdings(self) -> list[Holding]:
        """Books, exchange and the user's own, per asset (see bot/portfolio/holdings.py)."""
        return await self._control.holdings()

    def positions(self) -> tuple[PositionRow, ...]:
        prices = self._service.prices
        dust = self._engine.exchange.too_small
        rows = []
        for p in self._engine.portfolio.positions():
            price = prices.get(p.pair, p.average_price)
            rows.append(
                PositionRow(
                    p.pair,
                    p.amount,
                    self._venue.price(p.pair, p.average_price),
                    p.unrealised_pnl(price),
                    bool(dust(p.pair, p.amount, price)),
                )
            )
        return tuple(rows)

    async def trades(self, count: int) -> tuple[TradeRow, ...]:
        """The last ``count`` closed trades, newest first."""
        trades = (await closed_trades(self._engine, self._service, self._fills))[-count:]
        price = self._venue.price
        return tuple(
            TradeRow(
                t.exit_time,
                t.pair,
                t.pnl,
                t.return_pct,
                price(t.pair, t.entry_price),
                price(t.pair, t.exit_price),
            )
            for t in reversed(trades)
        )

    async def orders(self, count: int) -> tuple[OrderRow, ...]:
        """The last ``count`` orders, in the order the history gives them."""
        return tuple(
            OrderRow(
                o.created_at,
                o.pair,
                o.side.value,
                o.amount,
                o.status.value,
                self._venue.price(o.pair, o.average_price) if o.average_price else None,
            )
            for o in await self._orders.recent(count)
        )

    async def strategies(self) -> tuple[StrategyRow, ...]:
        """Every strategy (built-in and the user's), where it came from and its check status."""
        registry = strategy_registry()
        statuses = await check_statuses(self._checks, registry)
        return tuple(
            StrategyRow(
                name,
                _origin(registry.origin(name)),
                statuses[name].text(),
                tuple(
                    ParamRow(s.name, s.default, s.minimum, s.maximum)
                    for s in registry[name].specs()
                ),
            )
            for name in sorted(registry)
        )

    def risk(self) -> RiskView:
        limits = self._engine.guard.limits
        return RiskView(
            self._venue.quote,
            tuple(
                RiskRow(
                    name,
                    value,
                    "money"
                    if name in MONEY_KEYS
                    else "fraction"
                    if name in FRACTION_KEYS
                    else None,
                )
                for name, value in dataclasses.asdict(limits).items()
            ),
        )

    def _run_row(self, run: PairRun) -> RunRow:
        position = self._engine.portfolio.position(run.pair)
        price = self._service.prices.get(run.pair)
        held = None
        if position is not None:
            held = Held(
                position.amount,
                self._venue.price(run.pair, position.average_price),
                position.unrealised_pnl(price) if price else 0.0,
            )
        return RunRow(
            run.pair, run.state.value, run.strategy, run.timeframe, held, self._fault(run)
        )

    def _fault(self, run: PairRun) -> str | None:
        """Why ``run`` was paused, when its strategy failed (bot/trading/faults.py)."""
        fault = self._service.faults.of(run.id)
        return fault.text if fault else None

    def _behind(self, run: PairRun, registry: StrategyRegistry) -> RunningCode | None:
        """How the code ``run`` trades with differs from the registry's (None: it is the same,
        or the run has no strategy object: its fault says why)."""
        running = self._service.strategy_of(run)
        return None if running is None else behind(running, registry)


def _origin(origin: Origin) -> str:
    """Short enough for a phone: a file by its name (its folder is the config's), an entry
    point by its target and distribution."""
    if origin.kind == "file":
        return f"file {Path(origin.where).name}"
    if origin.kind == "entry point":
        return f"entry point {origin.where.partition(' = ')[2]}"
    return origin.kind
