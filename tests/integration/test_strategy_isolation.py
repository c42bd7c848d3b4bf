"""A user strategy that raises or returns garbage while trading (issue 18's isolation) pauses
only its pair, with one alert carrying the exception's last line; the other pair trades on,
the fault survives a restart, /resume tries the strategy again. The real service on a replay
(real SQLite, the strategies folder loaded as a user's), the chat on the Telegram emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.alerts.outbox import AlertDispatcher
from bot.app.bootstrap import Trading, assemble_replay
from bot.app.config import Settings, load_settings
from bot.app.startup import load_replay
from bot.chat.views import PairRow, RunRow, StatusView
from bot.core.domain import Alert, RunState, Side, from_ms, to_ms
from handlers.read_commands import pairs_text, status_text
from storage.alerts import SqliteAlertRepository
from storage.db import Database, open_database
from storage.fills import SqliteFillRepository
from storage.pair_runs import SqlitePairRunRepository
from strategies import strategy_registry
from tests.review_live_fixtures import SIX_HOURLY, STEADY
from tests.rigs.builders import SAMPLES
from tests.rigs.chat_rig import TRADER, chat_stack

BTC, ETH = "BTC/USDT", "ETH/USDT"

# Two strategies in one user file: "flaky" breaks in the way the test tells it, from the candle
# it is told (``fail_at``, epoch ms); "steady" never does. Both enter every 6th hour and exit 3
# hours later, so each trades within a few candles. ``calls`` counts compute_signals.
STRATEGIES = (
    "\n"
    + SIX_HOURLY
    + """

class Flaky(Strategy):
    name = "flaky"
    description = "every six hours; breaks when told"
    param_specs: ClassVar[tuple[ParamSpec, ...]] = ()
    calls = 0
    fail_at: int | None = None
    breaks = "raise"
    warmup_breaks = False

    @property
    def warmup(self) -> int:
        if self.warmup_breaks:
            raise RuntimeError("no warm-up today")
        return 2

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        type(self).calls += 1
        codes = every_six_hours(candles)
        if self.fail_at is None or int(candles["timestamp"].iloc[-1]) < self.fail_at:
            return codes
        if self.breaks == "raise":
            raise ValueError("the indicator went wrong\\nboom")
        if self.breaks == "nan":
            return codes.astype(float).where(codes.index != codes.index[-1])
        return codes.iloc[:-1]  # "short"
"""
    + STEADY
)


def settings_with_strategies(tmp_path: Path) -> Settings:
    """BTC/USDT on "flaky" (a 0.3% stop-loss) and ETH/USDT on "steady", each on half,
    replaying the samples."""
    folder = tmp_path / "user_strategies"
    folder.mkdir(exist_ok=True)
    (folder / "mine.py").write_text(STRATEGIES, encoding="utf-8")
    files = {pair: SAMPLES / f"{pair.replace('/', '_')}-1h.csv.gz" for pair in (BTC, ETH)}
    config = tmp_path / "config.toml"
    config.write_text(
        'data_dir = "data"\n[market_data]\nsource = "replay"\n[market_data.replay_files]\n'
        + "".join(f'"{pair}" = "{path}"\n' for pair, path in files.items())
        + '[[pairs]]\npair = "BTC/USDT"\nstrategy = "flaky"\ncapital_share = 0.5\n'
        "params = { stop_loss = 0.003 }\n"
        '[[pairs]]\npair = "ETH/USDT"\nstrategy = "steady"\ncapital_share = 0.5\n',
        encoding="utf-8",
    )
    return load_settings(config, None)


def flaky() -> Any:
    """The "flaky" class as loaded now (each load of the folder imports it afresh)."""
    return strategy_registry()["flaky"]


@asynccontextmanager
async def replay(tmp_path: Path) -> AsyncIterator[tuple[Trading, Database]]:
    settings = settings_with_strategies(tmp_path)
    async with open_database(settings.database_path) as db:
        yield await assemble_replay(db, settings, load_replay(settings)), db


async def step(trading: Trading, times: int = 1) -> None:
    assert trading.driver is not None
    for _ in range(times):
        await trading.driver.step()


async def failed_alerts(db: Database) -> list[Alert]:
    return [a for a in await SqliteAlertRepository(db).pending(1000) if a.kind == "strategy_failed"]


async def run_until_faulted(trading: Trading, limit: int = 40) -> int:
    """Steps until BTC/USDT's strategy faults; returns the candle (ms) it failed on."""
    for _ in range(limit):
        await step(trading)
        run = trading.service.run_for(BTC)
        assert run is not None
        if trading.service.faults.of(run.id) is not None:
            return to_ms(trading.clock.now())
    raise AssertionError("the strategy never failed")


async def fail_after_good_candles(trading: Trading, kind: str, good: int = 14) -> None:
    """Arms "flaky" to break as ``kind`` ``good`` candles after the replay's start."""
    cls = flaky()
    cls.breaks = kind
    cls.fail_at = to_ms(trading.clock.now()) + good * 3_600_000


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("raise", "ValueError: boom"),
        ("nan", "NaN action at candle"),
        ("short", "wrong length: "),
    ],
)
async def test_a_strategy_failing_mid_tick_pauses_only_its_pair_with_one_alert(
    tmp_path: Path, kind: str, reason: str
) -> None:
    async with replay(tmp_path) as (trading, db):
        await fail_after_good_candles(trading, kind)
        failed_at = await run_until_faulted(trading)
        fills = SqliteFillRepository(db)
        assert await fills.all(pair=BTC), "it traded on its good candles"
        calls = flaky().calls
        await step(trading, 12)  # two of steady's entries and exits

        btc = await SqlitePairRunRepository(db).latest_for(BTC)
        assert btc.state is RunState.PAUSED  # kept as /pause keeps it
        fault = trading.service.faults.of(btc.id)
        assert fault is not None
        assert fault.reason.startswith(reason)
        assert flaky().calls == calls, "a faulted strategy is not asked again"
        (alert,) = await failed_alerts(db)  # one alert, not one per candle
        assert alert.text.startswith(f"{BTC} paused: its strategy flaky failed: {reason}")
        assert f"/resume {BTC}" in alert.text
        assert f"/stoppair {BTC}" in alert.text
        assert "Traceback" not in alert.text
        assert "the indicator went wrong" not in alert.text
        eth = await SqlitePairRunRepository(db).latest_for(ETH)
        assert eth.state is RunState.RUNNING
        assert trading.service.faults.of(eth.id) is None
        later = [f for f in await fills.all(pair=ETH) if f.time >= from_ms(failed_at)]
        assert {f.side.value for f in later} == {"buy", "sell"}, "the other pair trades on"


async def test_a_faulted_pair_keeps_its_stop_loss_without_its_strategy(tmp_path: Path) -> None:
    async with replay(tmp_path) as (trading, db):
        cls = flaky()
        for _ in range(12):  # until BTC/USDT holds a position
            await step(trading)
            if trading.engine.portfolio.position(BTC) is not None:
                break
        assert trading.engine.portfolio.position(BTC) is not None
        cls.fail_at = to_ms(trading.clock.now())  # it breaks now, before its exit signal
        failed_at = await run_until_faulted(trading, limit=3)
        calls = cls.calls
        for _ in range(48):
            if trading.engine.portfolio.position(BTC) is None:
                break
            await step(trading)
        # sold by its stop-loss (0.3%, a parameter): no signal asked of the strategy
        assert trading.engine.portfolio.position(BTC) is None
        sold = [
            f
            for f in await SqliteFillRepository(db).all(pair=BTC)
            if f.side is Side.SELL and f.time >= from_ms(failed_at - 3_600_000)
        ]
        assert sold
        assert cls.calls == calls


async def test_the_fault_survives_a_restart_and_resume_tries_the_strategy_again(
    tmp_path: Path,
) -> None:
    async with replay(tmp_path) as (trading, db):
        await fail_after_good_candles(trading, "raise")
        await run_until_faulted(trading)
    async with replay(tmp_path) as (trading, db):  # a restart: the folder loaded afresh
        cls = flaky()
        cls.fail_at = 0  # still broken
        btc = await SqlitePairRunRepository(db).latest_for(BTC)
        assert trading.service.faults.of(btc.id) is not None  # known before the first step
        await step(trading, 3)
        assert btc.state is RunState.PAUSED
        fault = trading.service.faults.of(btc.id)
        assert fault is not None
        assert fault.reason == "ValueError: boom"
        assert cls.calls == 0, "not asked after the restart either"
        assert len(await failed_alerts(db)) == 1

        await trading.control.resume(BTC)  # not fixed: tried at the next close, fails again
        assert trading.service.faults.of(btc.id) is None
        await step(trading, 4)
        assert cls.calls == 1
        assert len(await failed_alerts(db)) == 2  # one more alert, for the new fault
        assert (await SqlitePairRunRepository(db).latest_for(BTC)).state is RunState.PAUSED

        cls.fail_at = None  # fixed
        await trading.control.resume(BTC)
        before = len(await SqliteFillRepository(db).all(pair=BTC))
        await step(trading, 8)
        assert cls.calls > 1
        assert trading.service.faults.of(btc.id) is None
        assert (await SqlitePairRunRepository(db).latest_for(BTC)).state is RunState.RUNNING
        assert len(await SqliteFillRepository(db).all(pair=BTC)) > before, "it trades again"
        assert len(await failed_alerts(db)) == 2


async def test_a_strategy_failing_at_start_up_pauses_only_its_pair(tmp_path: Path) -> None:
    async with replay(tmp_path) as (trading, db):
        cls = flaky()
        cls.warmup_breaks = True
        await trading.service.prime()  # what the service does at start-up
        btc = await SqlitePairRunRepository(db).latest_for(BTC)
        assert btc.state is RunState.PAUSED
        fault = trading.service.faults.of(btc.id)
        assert fault is not None
        assert fault.reason == "RuntimeError: no warm-up today"
        assert ETH in trading.service.prices  # primed
        await step(trading, 12)
        assert cls.calls == 0
        assert await SqliteFillRepository(db).all(pair=ETH)
        assert len(await failed_alerts(db)) == 1


async def test_the_chat_shows_the_alert_and_why_the_pair_is_paused(tmp_path: Path) -> None:
    async with chat_stack(tmp_path, settings_with_strategies(tmp_path)) as chat:
        await fail_after_good_candles(chat.trading, "raise", good=3)
        await run_until_faulted(chat.trading)
        await AlertDispatcher(chat.alerts, chat.frontend.sink, chat.trading.clock).drain()
        (alert,) = [m.text for m in chat.emulator.to(TRADER) if "paused" in m.text]
        assert alert.startswith(f"{BTC} paused: its strategy flaky failed: ValueError: boom\n")
        pairs = await chat.ask(TRADER, "/pairs")
        assert "strategy error: ValueError: boom" in pairs
        status = await chat.ask(TRADER, "/status")
        assert f"{BTC} (paused: strategy error: ValueError: boom)" in status
        assert f"Resumed {BTC}" in await chat.ask(TRADER, f"/resume {BTC}")
        assert "strategy error" not in await chat.ask(TRADER, "/pairs")


DOOMED = """
from typing import ClassVar

import pandas as pd

from strategies.base import ParamSpec, Strategy, hold_everywhere


class Doomed(Strategy):
    name = "doomed"
    description = "holds"
    param_specs: ClassVar[tuple[ParamSpec, ...]] = ()

    @property
    def warmup(self) -> int:
        return 2

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        return hold_everywhere(candles)
"""


async def test_a_run_whose_strategy_is_gone_at_a_restart_pauses_and_the_rest_starts(
    tmp_path: Path,
) -> None:
    doomed = tmp_path / "user_strategies" / "doomed.py"
    doomed.parent.mkdir()
    doomed.write_text(DOOMED, encoding="utf-8")
    async with replay(tmp_path) as (trading, db):
        await step(trading, 2)
        await trading.control.stop(BTC)
        await trading.control.start_pair(BTC, "doomed", "1h", {}, 0.5)  # as /startpair does
    doomed.unlink()  # while pairpilot was down
    async with replay(tmp_path) as (trading, db):  # it starts
        restarted = trading.clock.now()
        await step(trading, 12)
        btc = await SqlitePairRunRepository(db).latest_for(BTC)
        assert btc.strategy == "doomed"
        assert btc.state is RunState.PAUSED
        fault = trading.service.faults.of(btc.id)
        assert fault is not None
        assert fault.reason.startswith("StrategyConfigError: unknown strategy 'doomed'")
        (alert,) = await failed_alerts(db)
        assert alert.text.startswith(f"{BTC} paused: its strategy doomed failed: ")
        assert await SqliteFillRepository(db).all(since=restarted, pair=ETH), "ETH trades on"
        await trading.control.resume(BTC)  # built again: still gone, paused again
        await step(trading)
        assert (await SqlitePairRunRepository(db).latest_for(BTC)).state is RunState.PAUSED
        assert len(await failed_alerts(db)) == 2


def test_the_reason_shown_in_the_chat_is_escaped() -> None:
    """The reason is the user's exception text: it never becomes markup."""
    fault = "strategy error: KeyError: <vwap> & co"
    row = PairRow(BTC, "paused", "flaky", "1h", 0.5, "", fault)
    assert pairs_text((row,)).endswith("\n  strategy error: KeyError: &lt;vwap&gt; &amp; co")
    status = StatusView(
        "paper",
        "replay",
        None,
        1000.0,
        0.0,
        "USDT",
        (RunRow(BTC, "paused", "flaky", "1h", None, fault),),
    )
    assert f"{BTC} (paused: strategy error: KeyError: &lt;vwap&gt; &amp; co)" in status_text(status)
