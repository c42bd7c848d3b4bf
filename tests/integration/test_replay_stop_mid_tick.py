"""Review finding 11 of issue 18 (session 24): a replay's tick must finish whole on a stop
(bot/app/run.py, ``Market.interrupt``: None for a replay, "a replay's resume point would skip
the pairs it did not tick": the driver saves the candle as done once the tick returns). The
branch's ``serve`` calls ``service.abandon_strategies()`` on every stop, a replay's included:
the pair whose strategy is computing is not acted on, and every pair after it is not ticked,
though each strategy is quick (1 s here), not stuck. A restart of the replay resumes after that
candle: its decisions are lost, and the replay's trades depend on when it was stopped. On
an exchange, the stop drops the decision of the pair in progress however quick its strategy.

Real replay stack (real SQLite, the strategies loaded from a user folder): the stop done as
``serve``'s ``finally`` does it for a replay (no interrupt; abandon; the step awaited)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.app.bootstrap import assemble_replay
from bot.app.startup import load_replay
from bot.trading.replay import POSITION_KEY
from storage.db import open_database
from storage.state import SqliteStateRepository
from tests.slow_strategy_fixtures import BTC, ETH, settings, started


async def test_a_replay_stopped_during_a_tick_still_acts_on_every_pair_of_it(
    tmp_path: Path,
) -> None:
    config = settings(tmp_path, {BTC: "probe", ETH: "steady"})
    async with open_database(config.database_path) as db:
        trading = await assemble_replay(db, config, load_replay(config))
        service, driver = trading.service, trading.driver
        assert driver is not None
        await driver.step()
        run = service.run_for(BTC)
        assert run is not None
        strategy = service.strategy_of(run)
        quick: object = type(strategy)
        quick.mode, quick.seconds, quick.enter = "sleep", 1.0, True  # type: ignore[attr-defined]
        quick.started.clear()  # type: ignore[attr-defined]
        eth_before = service.last_ticks[ETH]
        step = asyncio.create_task(driver.step())
        await started(quick)
        service.abandon_strategies()  # SIGTERM: serve's finally, for a replay
        await step  # jobs.stop(): "the tick in progress finishes first"
        saved = await SqliteStateRepository(db).get(POSITION_KEY)
        entered = trading.engine.portfolio.position(BTC) is not None
        eth_ticked = service.last_ticks[ETH] > eth_before
        assert (entered, eth_ticked) == (True, True), (
            f"stopped mid-tick: BTC's ENTER acted on: {entered}; ETH ticked: {eth_ticked}; "
            f"yet the replay saved its position past that candle ({saved}): a restart skips it"
        )


async def test_a_stop_waits_a_moment_for_a_quick_strategy_of_the_pair_in_progress(
    tmp_path: Path,
) -> None:
    """On an exchange, a stop (SIGTERM: ``Market.interrupt`` -> ``service.request_stop()``)
    used to end the tick after the pair in progress, that pair acted on in full. Now the pair
    whose strategy is computing, even for 0.3 s, is abandoned at once: its ENTER or EXIT of
    that candle is lost, since the next start primes on the latest candle without acting on
    it. A deploy during a close drops the exit the strategy was deciding (its position held
    to the next EXIT signal)."""
    config = settings(tmp_path, {BTC: "probe", ETH: "steady"})
    async with open_database(config.database_path) as db:
        trading = await assemble_replay(db, config, load_replay(config))
        service, driver = trading.service, trading.driver
        assert driver is not None
        await driver.step()
        run = service.run_for(BTC)
        assert run is not None
        quick: object = type(service.strategy_of(run))
        quick.mode, quick.seconds, quick.enter = "sleep", 0.3, True  # type: ignore[attr-defined]
        quick.started.clear()  # type: ignore[attr-defined]
        step = asyncio.create_task(driver.step())
        await started(quick)
        service.request_stop()  # what the exchange market's interrupt does on SIGTERM
        await step
        assert trading.engine.portfolio.position(BTC) is not None, (
            "the ENTER BTC's strategy returned 0.3 s after the stop was asked was dropped"
        )
