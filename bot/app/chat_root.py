"""The composition root's chat part: the chat's services and the venue they describe.

bot.app.bootstrap builds the trading; this builds what a chat reads and drives on top of it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from bot.alerts.outbox import AlertOutbox
from bot.alerts.preferences import AlertPreferences
from bot.app.bootstrap import Trading
from bot.app.config import Settings
from bot.app.startup import dust_desk, strategy_gate
from bot.app.strategy_loading import DEFAULT_FOLDER, LoadedStrategies, load_strategies
from bot.charts.worker import ChartWorker
from bot.chat.admin_desk import AdminDesk
from bot.chat.chat_state import ChatState
from bot.chat.check_desk import CheckDesk
from bot.chat.cockpit import Cockpit
from bot.chat.drift_desk import DriftDesk
from bot.chat.gate_desk import GateDesk
from bot.chat.limits_desk import LimitsDesk
from bot.chat.one_at_a_time import OneAtATime
from bot.chat.overview import Overview
from bot.chat.pair_desk import PairDesk
from bot.chat.portfolio_desk import PortfolioDesk
from bot.chat.portfolio_sweep_desk import PortfolioSweepDesk
from bot.chat.receipt_desk import ReceiptDesk
from bot.chat.reload_desk import ReloadDesk, ReloadOutcome
from bot.chat.research_desk import ResearchDesk
from bot.chat.sweep_desk import SweepDesk
from bot.chat.venue import Venue, unknown_precision
from bot.core.ports import CandleHistory, Clock
from bot.ops.scheduler import Jobs
from bot.research.account_terms import Overrides, ResearchTerms, research_terms
from bot.research.strategy_gate import StrategyGate
from bot.trading.control import Control
from bot.trading.engine import Engine
from bot.trading.held_runs import release_after_reload
from bot.trading.service import TradingService
from storage.alerts import SqliteAlertRepository
from storage.audit import SqliteAuditRepository
from storage.db import Database
from storage.equity import SqliteEquityRepository
from storage.fills import SqliteFillRepository
from storage.orders import SqliteOrderRepository
from storage.receipts import SqliteReceiptRepository
from storage.state import SqliteStateRepository
from storage.strategy_checks import SqliteStrategyCheckRepository
from storage.strategy_overrides import SqliteStrategyOverrideRepository
from storage.sweeps import SqliteSweepRepository


def chat_venue(
    settings: Settings,
    exchange: str,
    trading: Trading,
    price_decimals: Callable[[str], int | None] = unknown_precision,
) -> Venue:
    """What chat says it trades on; /backtest and /sweep simulate that account, with the
    costs its engine sizes orders with (live: the venue's taker fee), the limits as /risk set
    left them and a running pair's capital share (/startpair's, else [[pairs]]).
    ``price_decimals``: the exchange's price precision per pair, where its markets are loaded."""
    engine = trading.engine

    def terms(pair: str, overrides: Overrides) -> ResearchTerms:
        run = trading.service.run_for(pair)
        return research_terms(
            settings,
            pair,
            overrides,
            flag="",
            fee_rate=engine.costs.fee_rate,
            limits=engine.guard.limits,
            capital_share=None if run is None else run.capital_share,
        )

    return Venue(settings.mode, exchange, settings.quote, terms, price_decimals, settings)


def strategy_reload(settings: Settings) -> Callable[[], LoadedStrategies]:
    """What /reload loads: the strategies folder and entry points start-up loaded. A folder
    that was there at start-up must still be (else nothing is reloaded); the default one,
    absent then, may appear since."""
    loaded = settings.strategies
    folder = settings.strategies_dir or Path(DEFAULT_FOLDER)
    there = loaded is not None and loaded.folder is not None
    return functools.partial(load_strategies, folder, explicit=there)


def build_cockpit(
    db: Database,
    venue: Venue,
    service: TradingService,
    engine: Engine,
    control: Control,
    history: CandleHistory,
    jobs: Jobs,
    clock: Clock,
    scheduler: str | None = None,
    strategies: Callable[[], LoadedStrategies] | None = None,
) -> Cockpit:
    """``scheduler``: the Dask cluster /sweep runs on (None: a LocalCluster per sweep);
    ``strategies``: what /reload loads (``strategy_reload``; None: no /reload)."""
    charts = ChartWorker()
    gate = strategy_gate(db, venue.mode)
    receipts = ReceiptDesk(
        store=SqliteReceiptRepository(db), history=history, exchange=venue.exchange
    )
    sweeps = SweepDesk(
        history=history,
        store=SqliteSweepRepository(db),
        clock=clock,
        quote=venue.quote,
        charts=charts,
        terms=venue.research_terms,
        scheduler=scheduler,
        receipts=receipts,
        portfolio=None
        if venue.portfolio is None
        else PortfolioSweepDesk(
            config=venue.portfolio,
            history=history,
            store=SqliteSweepRepository(db),
            clock=clock,
            limits=lambda: engine.guard.limits,
            receipts=receipts,
        ),
    )
    dust = dust_desk(
        db,
        engine,
        clock,
        venue.exchange if venue.mode == "live" else "the paper exchange",
        prices=lambda: service.prices,
        lock=service.tick_lock,
    )
    fills = SqliteFillRepository(db)
    state = SqliteStateRepository(db)
    preferences = AlertPreferences(state, clock)
    limits = LimitsDesk(quote=venue.quote, service=service, engine=engine, clock=clock)
    backtests = OneAtATime("backtest")  # /backtest, /rerun, /check and /drift's backtest
    return Cockpit(
        venue=venue,
        overview=Overview(
            venue=venue,
            service=service,
            engine=engine,
            control=control,
            fills=fills,
            orders=SqliteOrderRepository(db),
            checks=SqliteStrategyCheckRepository(db),
        ),
        pairs=PairDesk(
            venue=venue,
            service=service,
            engine=engine,
            control=control,
            limits=limits,
            clock=clock,
        ),
        limits=limits,
        research=ResearchDesk(
            venue=venue,
            service=service,
            engine=engine,
            fills=fills,
            equity=SqliteEquityRepository(db),
            history=history,
            charts=charts,
            clock=clock,
            sweeps=sweeps,
            receipts=receipts,
            portfolio=None
            if venue.portfolio is None
            else PortfolioDesk(
                config=venue.portfolio,
                history=history,
                charts=charts,
                clock=clock,
                quote=venue.quote,
                limits=lambda: engine.guard.limits,
                receipts=receipts,
            ),
            backtests=backtests,
            checks=SqliteStrategyCheckRepository(db),
        ),
        admin=AdminDesk(
            service=service,
            engine=engine,
            audit=SqliteAuditRepository(db),
            alerts=SqliteAlertRepository(db),
            preferences=preferences,
            jobs=jobs,
            clock=clock,
            state=state,
        ),
        chat_state=ChatState(state, clock),
        preferences=preferences,
        charts=charts,
        dust=dust,
        drift=DriftDesk(
            venue=venue, service=service, history=history, backtests=backtests, clock=clock
        ),
        gate=GateDesk(
            gate=gate,
            overrides=SqliteStrategyOverrideRepository(db),
            service=service,
            outbox=AlertOutbox(SqliteAlertRepository(db), clock),
            clock=clock,
        ),
        checks=CheckDesk(
            service=service,
            history=history,
            store=SqliteStrategyCheckRepository(db),
            clock=clock,
            quote=venue.quote,
            pairs=() if venue.portfolio is None else venue.portfolio.pairs,
            backtests=backtests,
        ),
        reload=None if strategies is None else _reload_desk(strategies, service, gate, db, clock),
    )


def _reload_desk(
    load: Callable[[], LoadedStrategies],
    service: TradingService,
    gate: StrategyGate,
    db: Database,
    clock: Clock,
) -> ReloadDesk:
    """/reload, and after each reload the held runs take the new code and are gated again."""
    desk = ReloadDesk(
        load=load, service=service, alert=AlertOutbox(SqliteAlertRepository(db), clock).push
    )

    async def release(_: ReloadOutcome) -> None:
        await release_after_reload(service, gate)

    desk.after_reload.append(release)
    return desk
