"""Edges of tick isolation (issue 18): "a strategy that raises or returns garbage
during a tick pauses only its pair ... the service never stops for it". Each test breaks a user
strategy in a way the guard does not expect and asserts the promise: the tick returns, the
broken pair is paused with its fault, the pair after it in the tick still trades.

The live stack (ccxt on the Binance fake, real SQLite, the real service); ETH/USDT runs the
hostile user strategy (persisted before BTC/USDT's config run, so it ticks first), BTC/USDT
runs the configured ema_cross. Both checked: the gate lets them trade."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from bot.core.domain import RunState, to_ms
from storage.db import open_database
from strategies.output import REASON_LIMIT, last_line
from tests.review_live_fixtures import HOSTILE, load_folder, strategy_class
from tests.rigs.checked import record_check
from tests.rigs.gated import START, fake_with_pairs, persisted_runs
from tests.rigs.live_rig import HOUR, PAIR, live_stack

ETH = "ETH/USDT"
FIRST_CLOSE = START.replace(minute=0, second=5) + HOUR


async def broken_tick(
    tmp_path: Path, candles: pd.DataFrame, mode: str, *, faulted: bool = True
) -> str:
    """Two clean ticks, then the hostile strategy breaks as ``mode`` says at the third: the
    promise is asserted (the tick returns, ETH/USDT paused, BTC/USDT ticked that candle).
    ``faulted=False``: what the strategy does harms nobody, ETH/USDT trades on unpaused.
    Returns ETH/USDT's fault reason ("" when none)."""
    load_folder(tmp_path / "user_strategies", {"hostile.py": HOSTILE})
    await persisted_runs(tmp_path, {ETH: "hostile"})
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        await record_check(db, "hostile", ETH)
    hostile = strategy_class("hostile")
    async with live_stack(tmp_path, fake_with_pairs(candles), START) as (trading, market, _):
        service = trading.service
        assert [run.pair for run in service.runs()] == [ETH, PAIR]  # ETH ticks first
        moment = FIRST_CLOSE
        for _ in range(2):
            market.at(moment)
            await service.tick("1h")
            moment += HOUR
        assert not service.held
        assert hostile.calls >= 2
        hostile.mode = mode  # type: ignore[attr-defined]
        hostile.from_ms = to_ms(moment - timedelta(hours=2))  # type: ignore[attr-defined]
        market.at(moment)
        escaped: BaseException | None = None
        try:
            await service.tick("1h")
        except BaseException as error:  # what escaped is the finding
            escaped = error
        assert escaped is None, f"the tick raised {escaped!r} out of the service"
        eth = service.run_for(ETH)
        assert eth is not None
        if faulted:
            assert eth.state is RunState.PAUSED
            assert service.faults.of(eth.id), "ETH/USDT is not faulted"
        else:
            assert eth.state is RunState.RUNNING
            assert not service.faults.of(eth.id), service.faults.of(eth.id)
            assert service.last_ticks[ETH] == moment
            cached = await service._source.closed_candles(ETH, moment, 10, "1h")
            assert cached["timestamp"].dtype == "int64", "the source's candles were changed"
        assert service.last_ticks[PAIR] == moment, "BTC/USDT was not ticked after ETH/USDT"
        fault = service.faults.of(eth.id)
        return "" if fault is None else fault.reason


@pytest.mark.parametrize("mode", ["system_exit", "keyboard_interrupt", "generator_exit"])
async def test_a_strategy_raising_a_base_exception_pauses_only_its_pair(
    tmp_path: Path, btc_candles: pd.DataFrame, mode: str
) -> None:
    """``raise SystemExit`` (or ``sys.exit()`` in a helper) in a strategy: the guard catches
    Exception only. In the service the tick runs as a scheduler task; asyncio re-raises
    SystemExit and KeyboardInterrupt out of the event loop: the whole service stops, every
    pair unmanaged, and at the restart the first tick does it again."""
    reason = await broken_tick(tmp_path, btc_candles, mode)
    assert reason.startswith(("SystemExit", "KeyboardInterrupt", "GeneratorExit")), reason


async def test_an_exception_whose_message_cannot_be_made_pauses_only_its_pair(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    """str() of the exception raises: the guard's ``last_line`` raises inside its except,
    the RuntimeError is no StrategyFailed and leaves the tick; nothing faults the pair, so
    every close does it again and the pairs after it are never ticked."""
    reason = await broken_tick(tmp_path, btc_candles, "unprintable")
    assert reason == "Unprintable: <unprintable>"


async def test_a_strategy_converting_its_candles_timestamps_in_place_changes_nothing_else(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    """``candles["timestamp"] = pd.to_datetime(...)`` on the frame it is handed: the frame
    was the candle source's own cache, and the engine then read ``int(last["timestamp"])``
    (TypeError, outside the guard), the next tick's fetch broken too. The strategy now gets
    a copy: its pair trades on, the tick and the source's candles are untouched."""
    await broken_tick(tmp_path, btc_candles, "datetime_stamps", faulted=False)


async def test_a_strategy_smoothing_its_candles_in_place_leaves_the_next_ticks_candles_alone(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    """``candles["close"] = candles["close"].ewm(...).mean()`` on its input: the frame handed
    to the strategy is ExchangeCandleSource's cache itself (closed_candles returns it), so the
    smoothing stays in the history every later tick trades on, smoothed again at each close:
    the live signals drift from the backtest's, and the risk step's volatility window and the
    paper twin read prices the exchange never had. Promise: the candles a tick trades on are
    the exchange's."""
    load_folder(tmp_path / "user_strategies", {"hostile.py": HOSTILE})
    await persisted_runs(tmp_path, {ETH: "hostile"})
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        await record_check(db, "hostile", ETH)
    hostile = strategy_class("hostile")
    hostile.mode = "smooth_in_place"  # type: ignore[attr-defined]
    fake = fake_with_pairs(btc_candles)
    async with live_stack(tmp_path, fake, START) as (trading, market, _):
        moment = FIRST_CLOSE
        for _ in range(3):
            market.at(moment)
            await trading.service.tick("1h")
            moment += HOUR
        frame = await trading.service._source.closed_candles(  # the service's live source
            ETH, trading.clock.now(), 60, "1h"
        )
    truth = btc_candles.set_index("timestamp")["close"]
    seen = frame.set_index("timestamp")["close"]
    assert len(seen) > 10
    wrong = (seen - truth.reindex(seen.index)).abs() > 1e-9
    assert not wrong.any(), (
        f"{int(wrong.sum())} of {len(seen)} closes in the next tick's history are not the "
        f"exchange's (first: {seen[wrong].iloc[0]:.2f} vs {truth[seen[wrong].index[0]]:.2f})"
    )


def test_the_reason_shown_is_one_short_line_and_never_raises() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no message for you")

    assert last_line(Unprintable()) == "Unprintable: <unprintable>"
    assert last_line(ValueError("frame\nlast one")) == "ValueError: last one"
    cut = last_line(ValueError("x" * 10_000_000))
    assert cut.startswith("ValueError: xxx")
    assert "\u2026 (10,000,012 characters)" in cut
    assert len(cut) <= REASON_LIMIT + 30
