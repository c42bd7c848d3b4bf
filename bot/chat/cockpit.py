"""What a trader sees and does from a chat, as text: the service behind the Telegram commands.

Everything here is chat-agnostic: views return short texts in Telegram's HTML subset (every
value escaped), actions go through Control and the risk guard and say what happened. Bad
input raises UserInputError / NotFound and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from html import escape
from typing import Any

from bot.alerts.preferences import KINDS, AlertPreferences
from bot.charts.worker import ChartWorker
from bot.chat.one_at_a_time import OneAtATime
from bot.chat.replies import Photo, Progress
from bot.chat.requests import MAX_BACKTEST_DAYS, normalise_pair, number, whole_number
from bot.chat.sweep_desk import SweepDesk
from bot.core.domain import PairRun, RiskLimits, Side, Trade, from_ms
from bot.core.errors import BotError, UserInputError
from bot.core.key_values import key_values
from bot.core.lazy_import import import_off_loop
from bot.core.number_text import amount_text, price_text
from bot.core.pairs import check_quote
from bot.core.ports import (
    AlertBacklog,
    AuditLog,
    CandleHistory,
    Clock,
    EquityHistory,
    FillHistory,
    OrderHistory,
    StateStore,
)
from bot.core.timeframes import timeframe_seconds
from bot.ops.health import CLOCK_KEY, COMMANDS_KEY
from bot.ops.scheduler import Jobs
from bot.portfolio.holdings import accept_preview, accepting, holdings_text
from bot.portfolio.performance import round_trips
from bot.research.account_terms import AccountTerms
from bot.risk.settings import checked_limits
from bot.trading.control import Control
from bot.trading.dust import DustDesk
from bot.trading.engine import Engine
from bot.trading.service import TradingService
from strategies import REGISTRY, StrategyConfigError, build_strategy

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
PROTECTIONS = {"max_drawdown": "drawdown halt", "daily_loss_limit": "daily loss halt"}  # 0: off
PERIODS = {"1d": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30), "all": None}
CHART_CANDLES = 120  # candles on a /chart: readable on a phone


def unknown_precision(pair: str) -> int | None:
    """No market loaded (a replay): prices are shown by their size."""
    return None


@dataclass(frozen=True, slots=True)
class Venue:
    mode: str  # paper or live
    exchange: str
    quote: str
    terms: AccountTerms = AccountTerms()  # the account /backtest and /sweep simulate
    # decimals the exchange quotes a pair's price in, where its markets are loaded
    price_decimals: Callable[[str], int | None] = unknown_precision


class Cockpit:
    def __init__(
        self,
        *,
        venue: Venue,
        service: TradingService,
        engine: Engine,
        control: Control,
        fills: FillHistory,
        orders: OrderHistory,
        audit: AuditLog,
        equity: EquityHistory,
        history: CandleHistory,
        preferences: AlertPreferences,
        alerts: AlertBacklog,
        jobs: Jobs,
        clock: Clock,
        charts: ChartWorker,
        sweeps: SweepDesk | None = None,
        state: StateStore | None = None,
        dust: DustDesk | None = None,
    ) -> None:
        """``state``: where whether chat commands can be received is kept (for health);
        ``dust``: the dust in the books and its conversion (/dust)."""
        self.venue = venue
        self.charts = charts
        self.dust = dust
        self._service = service
        self._engine = engine
        self._control = control
        self._fills = fills
        self._orders = orders
        self._audit = audit
        self._equity = equity
        self._history = history
        self.preferences = preferences
        self._alerts = alerts
        self._jobs = jobs
        self._clock = clock
        self._backtests = OneAtATime("backtest")
        self._sweeps = sweeps
        self._state = state

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
        lines += [
            f"{escape(asset)} {amount_text(amount)}" for asset, amount in sorted(balances.items())
        ]
        return "\n".join(lines)

    async def holdings(self) -> str:
        return holdings_text(await self._control.holdings())

    async def accept_holdings(self) -> str:
        return holdings_text(await self._control.accept_holdings(), accepted=True)

    async def settle_order(self, arguments: list[str], actor: str) -> str:
        """/order (admin, confirmed): settle an order the exchange cannot tell by hand."""
        return escape(await self._control.settle_order(arguments, actor))

    def positions(self) -> str:
        prices = self._service.prices
        positions = self._engine.portfolio.positions()
        if not positions:
            return "No open positions."
        dust = self._engine.exchange.too_small
        return "\n".join(
            f"{escape(p.pair)} {amount_text(p.amount)} @ {self._price(p.pair, p.average_price)}, "
            f"unrealised {p.unrealised_pnl(prices.get(p.pair, p.average_price)):+,.2f}"
            + (
                " (dust: too small to sell, it goes with the next exit)"
                if dust(p.pair, p.amount, prices.get(p.pair, p.average_price))
                else ""
            )
            for p in positions
        )

    async def _closed_trades(self) -> list[Trade]:
        """Every round trip; one that left only dust is closed (the exchange's dust rule, and
        the engine's word on a rest that turned to dust after its exit)."""
        prices = self._service.prices
        dust = {
            p.pair: p.amount
            for p in self._engine.portfolio.positions()
            if await self._engine.is_dust(p, prices.get(p.pair, p.average_price))
        }
        return round_trips(await self._fills.all(), self._engine.exchange.too_small, dust)

    async def trades(self, count: int) -> str:
        trades = (await self._closed_trades())[-count:]
        if not trades:
            return "No closed trades yet."
        return "Closed trades, times UTC:\n" + "\n".join(
            f"{t.exit_time:%m-%d %H:%M} {escape(t.pair)} {t.pnl:+,.2f} ({t.return_pct:+.2%}), "
            f"in {self._price(t.pair, t.entry_price)} out {self._price(t.pair, t.exit_price)}"
            for t in reversed(trades)
        )

    async def recent_orders(self, count: int) -> str:
        orders = await self._orders.recent(count)
        if not orders:
            return "No orders yet."
        return "Orders, times UTC:\n" + "\n".join(
            f"{o.created_at:%m-%d %H:%M} {escape(o.pair)} {o.side.value} {amount_text(o.amount)} "
            f"{o.status.value}"
            + (f" @ {self._price(o.pair, o.average_price)}" if o.average_price else "")
            for o in orders
        )

    def strategies(self) -> str:
        blocks = []  # one parameter a line: readable on a phone
        for name in sorted(REGISTRY):
            blocks.append(f"<b>{escape(name)}</b>")
            blocks += [
                f"  {escape(s.name)}={s.default:g} ({s.minimum:g} to {s.maximum:g})"
                for s in REGISTRY[name].specs()
            ]
        return "\n".join(blocks)

    def risk(self) -> str:
        limits = self._engine.guard.limits
        return "\n".join(
            f"{name} = {value:g}"
            + (
                f" ({value:.4g} {self.venue.quote})"
                if name in MONEY_KEYS
                else f" ({value * 100:.4g}%)"
                if name in FRACTION_KEYS
                else ""
            )
            for name, value in dataclasses.asdict(limits).items()
        )

    async def pnl(self, period: str) -> Photo:
        """The equity curve with its drawdown over ``period`` (1d, 7d, 30d or all)."""
        if period not in PERIODS:
            raise UserInputError(f"period {period!r}: choose 1d, 7d, 30d or all")

        span = PERIODS[period]
        now = self._clock.now()
        snapshots = await self._equity.between(now - span if span else None, now)
        if len(snapshots) < 2:
            raise UserInputError(f"not enough equity recorded for {period} yet; try later")
        times = [s.time for s in snapshots]
        equity = [s.equity for s in snapshots]
        png = await self.charts.draw(
            "equity_chart_png", times=times, equity=equity, title=f"Equity, {period}"
        )
        change = equity[-1] - equity[0]
        peak, worst = equity[0], 0.0
        for value in equity:
            peak = max(peak, value)
            worst = max(worst, 1 - value / peak)
        trades = [t for t in await self._closed_trades() if t.exit_time >= times[0]]
        caption = (
            f"<b>{period}</b>: {equity[0]:,.2f} → {equity[-1]:,.2f} {self.venue.quote} "
            f"({change:+,.2f}, {change / equity[0]:+.2%})\nmax drawdown {worst:.2%}, "
            f"{len(trades)} closed trade(s), {sum(t.pnl for t in trades):+,.2f}"
        )
        return Photo(png, caption)

    async def chart(self, arguments: Sequence[str]) -> Photo:
        """PAIR [TIMEFRAME]: the running pair's candles, its strategy's lines, fills, stop."""
        if not 1 <= len(arguments) <= 2:
            raise UserInputError("usage: /chart PAIR [TIMEFRAME]")

        pair = normalise_pair(arguments[0], self.venue.quote)
        run = self._service.run_for(pair)
        if run is None:
            raise UserInputError(
                f"{pair} is not running; /backtest {pair} STRATEGY charts any pair"
            )
        timeframe = arguments[1] if len(arguments) > 1 else run.timeframe
        step = timeframe_seconds(timeframe)
        strategy = build_strategy(run.strategy, run.params)
        wanted = CHART_CANDLES + strategy.history
        days = max(1, -(-wanted * step // 86_400))
        candles = await self._history.candles(pair, timeframe, days, self._clock.now())
        lines = {
            label: list(values.iloc[-CHART_CANDLES:])
            for label, values in strategy.indicators(candles).items()
        }
        shown = candles.iloc[-CHART_CANDLES:]
        start = from_ms(int(shown["timestamp"].iloc[0]))
        fills = [f for f in await self._fills.all(since=start) if f.pair == pair]
        stop = await self._engine.stop_in_force(run, strategy.exit_policy)
        png = await self.charts.draw(
            "candle_chart_png",
            title=f"{pair} {timeframe} {strategy.name}",
            candles=shown,
            indicators=lines,
            oscillator=strategy.indicator_panel != "price",
            entries=[(f.time, f.price) for f in fills if f.side is Side.BUY],
            exits=[(f.time, f.price) for f in fills if f.side is Side.SELL],
            stop=stop,
        )
        last = float(shown["close"].iloc[-1])
        caption = (
            f"<b>{escape(pair)} {timeframe}</b> {escape(strategy.name)}, last close "
            f"{self._price(pair, last)}" + (f", stop {self._price(pair, stop)}" if stop else "")
        )
        return Photo(png, caption)

    async def daily_report(self) -> Photo:
        """The last 24 hours: equity chart and the day's numbers (it doubles as a heartbeat).
        The caption is plain text: it is pushed through the alerts outbox."""
        now = self._clock.now()
        snapshots = await self._equity.between(now - timedelta(days=1), now)
        equity = self._engine.portfolio.equity(self._service.prices)
        times = [s.time for s in snapshots] or [now]
        values = [s.equity for s in snapshots] or [equity]
        if len(times) == 1:  # a quiet day: a flat line still shows the bot is alive
            times, values = [now - timedelta(days=1), now], [values[0], equity]
        png = await self.charts.draw(
            "equity_chart_png", times=times, equity=values, title=f"Equity, {now:%Y-%m-%d}"
        )
        trades = [t for t in await self._closed_trades() if t.exit_time >= times[0]]
        halt = await self._engine.guard.halted()
        prices = self._service.prices
        dust = [
            p
            for p in self._engine.portfolio.positions()
            if await self._engine.is_dust(p, prices.get(p.pair, p.average_price))
        ]
        caption = (
            f"Daily report {now:%Y-%m-%d %H:%M}: equity {equity:,.2f} {self.venue.quote} "
            f"({equity - values[0]:+,.2f} in 24 h), {len(trades)} trade(s) closed "
            f"({sum(t.pnl for t in trades):+,.2f}), "
            f"{len(self._engine.portfolio.positions()) - len(dust)} open position(s)"
            + (f" (and dust in {len(dust)} pair(s))" if dust else "")
            + f", {len(self._service.runs())} pair(s) running"
            + (f". HALTED: {halt['reason']}" if halt else ".")
        )
        return Photo(png, caption)

    async def backtest(self, arguments: Sequence[str], progress: Progress) -> Photo:
        """PAIR STRATEGY [TIMEFRAME] [DAYS] [key=value ...]: one at a time, off the loop."""
        words = [a for a in arguments if "=" not in a]
        if len(words) < 2:
            raise UserInputError(
                "usage: /backtest PAIR STRATEGY [TIMEFRAME] [DAYS] [key=value ...]"
            )
        pair = normalise_pair(words[0], self.venue.quote)
        timeframe = words[2] if len(words) > 2 else "1h"
        days = whole_number("DAYS", words[3], 1, MAX_BACKTEST_DAYS) if len(words) > 3 else 30
        if len(words) > 4:
            raise UserInputError(f"unexpected {words[4]!r}; parameters go as key=value")
        try:
            strategy = build_strategy(
                words[1], key_values([a for a in arguments if "=" in a], _malformed)
            )
        except StrategyConfigError as error:
            raise UserInputError(str(error)) from None
        timeframe_seconds(timeframe)  # a clear error for a bad timeframe
        with self._backtests.hold(f"{pair} {strategy.name} {timeframe} {days}d") as running:
            # held before the first await, so backtests start in the order they were asked
            await progress(f"Backtest {escape(running)}: loading candles…")
            await import_off_loop("bot.research.backtest")  # numba: loaded on first use
            from bot.research.backtest import run_backtest, setup_for
            from bot.research.report import metric_rows, result_chart_arguments, terms_line

            candles = await self._history.candles(pair, timeframe, days, self._clock.now())
            await progress(f"Backtest {escape(running)}: trading {len(candles):,} candles…")
            setup = setup_for(pair, timeframe, self.venue.terms, self._engine.guard.limits)
            result = await asyncio.to_thread(run_backtest, candles, strategy, setup)
            await progress(f"Backtest {escape(running)}: drawing…")
            drawn = await asyncio.to_thread(result_chart_arguments, result)
            png = await self.charts.draw("backtest_chart_png", **drawn)
        first = from_ms(int(result.close_ms[0]))
        rows = "\n".join(
            f"{escape(name)}: {escape(value)}" for name, value in metric_rows(result)[:9]
        )
        caption = (
            f"<b>{escape(pair)} {escape(strategy.name)} {timeframe}</b>, "
            f"{len(candles):,} candles from {first:%Y-%m-%d}\n"
            f"{escape(terms_line(result))}\n{rows}"
        )
        return Photo(png, caption)

    async def sweep(self, arguments: Sequence[str], progress: Progress) -> Photo | str:
        """PAIR STRATEGY [TIMEFRAME] [DAYS] NAME=LOW:HIGH:STEP ...: see bot.chat.sweep_desk."""
        if self._sweeps is None:
            raise UserInputError("sweeps are not available here")
        return await self._sweeps.run(arguments, progress)

    def checked_risk(self, key: str, value: str) -> RiskLimits:
        """The limits with ``key`` set to ``value``: finite, within the config's bounds, and a
        minimum order no larger than the equity (else every entry would be refused)."""
        try:
            finite = math.isfinite(float(value))
        except ValueError:
            finite = True  # not a number: the bounds check names the problem
        if not finite:
            raise UserInputError(f"/risk set {key}={value}: expected a finite number")
        limits = checked_limits(
            dataclasses.asdict(self._engine.guard.limits), {key: value}, option="/risk set"
        )
        equity = self._engine.portfolio.equity(self._service.prices)
        if key == "min_order_value" and limits.min_order_value > equity:
            raise UserInputError(
                f"/risk set min_order_value={value}: above the equity ({equity:,.2f} "
                f"{self.venue.quote}); no entry could be made"
            )
        return limits

    def switches_off(self, key: str, value: str) -> bool:
        """Whether ``/risk set key value`` turns a protection off or loosens it (0, or a
        larger loss allowed than now): it then needs a Confirm and is alerted."""
        if key not in PROTECTIONS:
            return False
        now: float = getattr(self._engine.guard.limits, key)
        with contextlib.suppress(ValueError):
            new = float(value)
            return now != 0 and (new == 0 or new > now)
        return False

    async def set_risk(self, key: str, value: str, actor: str) -> str:
        limits = self.checked_risk(key, value)
        off = self.switches_off(key, value)
        await self._engine.guard.set_limits(limits, self._clock.now())
        if off and float(value) == 0:
            return f"{escape(key)} = 0: the {PROTECTIONS[key]} is <b>off</b> (kept over restarts)."
        return f"{escape(key)} = {getattr(limits, key):g} from now on (kept over restarts)."

    async def health(self) -> str:
        """Last tick per pair, the scheduler's jobs, the exchange's latency, the outbox."""
        now = self._clock.now()
        lines = []
        for run in self._service.runs():
            seen = self._service.last_ticks.get(run.pair)
            age = f"{(now - seen).total_seconds() / 60:,.0f} min ago" if seen else "not yet"
            waiting = self._engine.executor.unknown.waiting(run.pair)
            named = ", ".join(escape(o.client_order_id) for o in waiting)
            held = (
                f"; <b>not traded</b>: order {named}'s outcome cannot be read from the "
                "exchange (settle it with /order)"
                if waiting
                else ""
            )
            lines.append(f"{escape(run.pair)} {run.timeframe}: last new candle {age}{held}")
        for name, next_run in self._jobs.planned():
            lines.append(
                f"job {escape(name)}: next {next_run:%H:%M:%S} UTC"
                if next_run
                else f"job {escape(name)}: paused"
            )
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await self._engine.exchange.fetch_balances()
            lines.append(f"exchange: {(loop.time() - started) * 1000:,.0f} ms to answer")
        except BotError as error:
            lines.append(f"exchange: <b>unreachable</b> ({escape(str(error)[:120])})")
        lines.append(f"alerts waiting to be delivered: {await self._alerts.backlog()}")
        if self._state is not None:
            chat = await self._state.get(COMMANDS_KEY) or {}
            problem = chat.get("problem")
            lines.append(
                f"chat commands: <b>cannot be received</b> ({escape(problem)})"
                if problem
                else "chat commands: received"
            )
            clock = (await self._state.get(CLOCK_KEY) or {}).get("source")
            if clock:
                lines.append(f"command ages judged by: {escape(clock)}")
        return "\n".join(lines)

    async def alerts(self, user_id: int, arguments: Sequence[str]) -> str:
        """The user's alert choices, or KIND on|silent|off to change one."""
        if arguments:
            if len(arguments) != 2:
                raise UserInputError("usage: /alerts [KIND on|silent|off]")
            await self.preferences.choose(user_id, arguments[0], arguments[1])
        chosen = await self.preferences.of(user_id)
        return "\n".join(
            f"{escape(kind)}: <b>{mode}</b> ({escape(KINDS[kind])})"
            for kind, mode in chosen.items()
        )

    async def audit(self, count: int) -> str:
        entries = await self._audit.latest(count)
        if not entries:
            return "The audit log is empty."
        return "Audit, times UTC:\n" + "\n".join(
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
        check_quote(pair, self.venue.quote)
        words = [a for a in arguments[1:] if "=" not in a]
        params = key_values([a for a in arguments[1:] if "=" in a], _malformed)
        strategy = words[0] if words else "ema_cross"
        timeframe = words[1] if len(words) > 1 else "1h"
        if len(words) > 2:
            raise UserInputError(f"unexpected {words[2]!r}; parameters go as key=value")
        share = params.pop("share", None)
        capital = number("share", share) if share is not None else None  # None: what is left
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
        return (
            "Trading halted: no new entries; exits are still managed."
            if halted
            else ("Trading was already halted.")
        )

    async def halt_since(self) -> str | None:
        """When the standing halt began (ISO), or None: tells one halt from a later one."""
        halted = await self._engine.guard.halted()
        return str(halted["since"]) if halted else None

    async def resume_trading(self) -> str:
        equity = self._engine.portfolio.equity(self._service.prices)
        resumed = await self._engine.guard.resume(equity, self._clock.now())
        return "Trading resumed." if resumed else "Trading was not halted."

    async def flatten(self) -> str:
        report = await self._control.flatten()
        closed = (
            ", ".join(f"{escape(p)} {amount_text(a)}" for p, a in report.closed.items())
            or "nothing"
        )
        lines = [
            f"Flattened: halted{'' if report.halted_now else ' (already)'}, "
            f"{report.cancelled_orders} open order(s) cancelled, sold {closed}."
        ]
        if report.clean:
            lines.append("Verified: the exchange holds no position.")
        elif report.left:
            left = ", ".join(f"{escape(a)} {amount_text(v)}" for a, v in report.left.items())
            lines.append(f"<b>Check the account</b>: the exchange still holds {left}.")
        lines += [
            f"<b>Not done</b>: {escape(what)}: {escape(why)}"
            for what, why in report.problems.items()
        ]
        return "\n".join(lines)

    async def preview(self, command: str, arguments: Sequence[str]) -> str | None:
        """What ``command`` would do now, in words, for a Confirm prompt (plain text); None
        when its summary says it."""
        if command == "flatten":
            held = self._engine.portfolio.positions()
            sold = ", ".join(f"{p.pair} {amount_text(p.amount)}" for p in held)
            return f"halt trading, cancel open orders and sell {sold or 'nothing (flat)'}"
        if command == "stoppair" and arguments:
            pair = normalise_pair(arguments[0], self.venue.quote)
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
            self.checked_risk(arguments[1], arguments[2])
            if self.switches_off(arguments[1], arguments[2]):
                key, value = arguments[1], float(arguments[2])
                if value == 0:
                    return f"switch the {PROTECTIONS[key]} off ({key} = 0)"
                return f"loosen the {PROTECTIONS[key]} to {value:.4g} ({value * 100:.4g}%)"
        return None

    async def chat_receiving(self, problem: str | None) -> None:
        """Keep whether chat commands can be received (``problem`` says why not) for health."""
        if self._state is not None:
            await self._state.set(COMMANDS_KEY, {"problem": problem}, self._clock.now())

    async def chat_clock(self, source: str) -> None:
        """Keep which clock chat commands' ages are judged by (for health)."""
        if self._state is not None:
            await self._state.set(CLOCK_KEY, {"source": source}, self._clock.now())

    async def chat_kept(self, key: str) -> Any:
        """What the chat front end kept under ``key`` across restarts (None: nothing)."""
        return None if self._state is None else await self._state.get(key)

    async def chat_keep(self, key: str, value: Any) -> None:
        """Keep ``value`` (JSON) under ``key`` for the chat front end's next start."""
        if self._state is not None:
            await self._state.set(key, value, self._clock.now())

    async def record(self, actor: str, command: str, arguments: Sequence[str], result: str) -> None:
        await self._audit.add(
            actor=actor,
            command=command,
            arguments=list(arguments),
            result=result[:300],
            now=self._clock.now(),
        )

    async def record_many(self, entries: Sequence[tuple[str, str, Sequence[str], str]]) -> None:
        """Several (actor, command, arguments, result) audit lines in one commit."""
        await self._audit.add_many(
            [
                (actor, command, arguments, result[:300])
                for actor, command, arguments, result in entries
            ],
            self._clock.now(),
        )

    def _price(self, pair: str, value: float) -> str:
        return price_text(value, self.venue.price_decimals(pair))

    def _run_line(self, run: PairRun) -> str:
        position = self._engine.portfolio.position(run.pair)
        price = self._service.prices.get(run.pair)
        if position is None:
            held = "flat"
        else:
            pnl = position.unrealised_pnl(price) if price else 0.0
            held = (
                f"{amount_text(position.amount)} @ "
                f"{self._price(run.pair, position.average_price)}, "
                f"{pnl:+,.2f}"
            )
        state = "" if run.state.value == "running" else f" ({run.state.value})"
        return f"{escape(run.pair)}{state} {escape(run.strategy)} {run.timeframe}: {held}"


def _params(params: Mapping[str, object]) -> str:
    return " ".join(f"{key}={value}" for key, value in params.items())


def _malformed(item: str) -> str:
    return f"{item!r}: expected key=value, like fast=12"
