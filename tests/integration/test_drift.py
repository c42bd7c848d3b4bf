"""The drift monitor: each live pair's paper twin, the alert when live departs from it, and the
demotion to paper and back. The live stack (ccxt, SQLite) on the Binance fake with slippage
injected into its market fills; the twin's books in twin.sqlite.

EMA 12/26 on the BTC/USDT sample enters on the candle of 2025-06-27 04:00 (acted on at 05:00)
and exits on the candle of 07:00 (acted on at 08:00), then trades 06-28 03:00 to 06-30 11:00
and 07-02 08:00 to 07-04 07:00. The tests tick at those closes (``SIGNALS``): an hourly tick
between them changes nothing, and the suite stays quick.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bot.app.bootstrap import Trading
from bot.app.chat_root import chat_venue
from bot.app.serve import run_service
from bot.core.clock import FakeClock, SystemClock
from bot.core.ports import CandleHistory
from bot.market.history import ExchangeHistory
from storage.alerts import SqliteAlertRepository
from storage.audit import SqliteAuditRepository
from storage.candles import SqliteCandleRepository
from storage.db import open_database
from storage.orders import SqliteOrderRepository
from storage.twin_mark import TWIN_APPLICATION_ID
from tests.doubles.fake_exchange import FakeBinance, serve
from tests.doubles.telegram_emulator import TelegramEmulator
from tests.rigs.chat_rig import ADMIN, TRADER, VIEWER, Chat, chat_on
from tests.rigs.live_rig import (
    PAIR,
    SECRETS,
    Market,
    funded_fake,
    hourly,
    live_settings,
    live_stack,
    venue_client,
)

START = datetime(2025, 6, 27, 4, 30, tzinfo=UTC)
FIRST_TICK = datetime(2025, 6, 27, 5, 0, 5, tzinfo=UTC)
FIRST_EXIT = datetime(2025, 6, 27, 8, 0, 5, tzinfo=UTC)
DAY = timedelta(days=1)
SIGNALS = [
    datetime(2025, 6, 27, 5, 0, 5, tzinfo=UTC),
    datetime(2025, 6, 27, 8, 0, 5, tzinfo=UTC),
    datetime(2025, 6, 28, 4, 0, 5, tzinfo=UTC),
    datetime(2025, 6, 30, 12, 0, 5, tzinfo=UTC),
    datetime(2025, 7, 2, 9, 0, 5, tzinfo=UTC),
    datetime(2025, 7, 4, 8, 0, 5, tzinfo=UTC),
]
SLIPPAGE = 0.01  # the venue fills market orders 1% worse than the price
DRIFT = {"threshold": 0.01}


def slipping_fake(candles: pd.DataFrame) -> FakeBinance:
    fake = funded_fake(candles)
    fake.slippage = SLIPPAGE
    return fake


async def tick_at(trading: Trading, market: Market, moments: list[datetime]) -> None:
    for moment in moments:
        market.at(moment)
        await trading.service.tick("1h")


async def drift_alerts(tmp_path: Path) -> list[str]:
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        alerts = await SqliteAlertRepository(db).pending(10_000)
    return [a.text for a in alerts if a.kind == "drift"]


async def journal_ids(path: Path) -> set[str]:
    async with open_database(path) as db:
        return {o.client_order_id for o in await SqliteOrderRepository(db).recent(10_000)}


async def test_injected_slippage_is_the_drift_and_alerted_once_across_a_restart(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = slipping_fake(btc_candles)
    async with live_stack(tmp_path, fake, START, drift=DRIFT) as (trading, market, _):
        await hourly(trading, market, FIRST_TICK, SIGNALS[2])  # hour by hour: the first trade
        await tick_at(trading, market, SIGNALS[2:4])
        twin = trading.service.twin
        assert twin is not None
        drift = await twin.monitor.drift(PAIR, "1h")
    assert len(drift.rows) == 2
    for row in drift.rows:  # the same trades, on the same candles, at different prices
        assert row.live is not None
        assert row.twin is not None
        assert row.live.entry_time == row.twin.entry_time
        assert row.live.entry_price / row.twin.entry_price == pytest.approx(1.01 / 1.0005)
        assert row.live.exit_price / row.twin.exit_price == pytest.approx(0.99 / 0.9995)
        assert row.gap < 0
    assert drift.relative == pytest.approx(-0.0195, abs=0.001)
    assert drift.first_apart(0.001) == drift.rows[0]
    (alert,) = await drift_alerts(tmp_path)
    assert alert.startswith(f"{PAIR}: live trading departs from its paper twin by -")
    assert "over the 1.00% threshold" in alert
    # still over the threshold, after a restart and another trade: no second alert
    async with live_stack(tmp_path, fake, SIGNALS[3], drift=DRIFT) as (again, market, _):
        await tick_at(again, market, SIGNALS[4:])
        assert again.service.twin is not None
        assert len((await again.service.twin.monitor.drift(PAIR, "1h")).rows) == 3
    assert len(await drift_alerts(tmp_path)) == 1
    # the twin never reached the venue: every order the fake saw is in the live journal
    live = await journal_ids(tmp_path / "pairpilot.sqlite")
    assert len(await journal_ids(tmp_path / "twin.sqlite")) == 6  # it traded, on paper
    assert {o.client_id for o in fake.orders.values()} == live
    assert fake.order_posts == len(live) == 6


async def test_without_slippage_there_is_no_alert(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    async with live_stack(tmp_path, fake, START, drift=DRIFT) as (trading, market, _):
        await tick_at(trading, market, SIGNALS)
        assert trading.service.twin is not None
        drift = await trading.service.twin.monitor.drift(PAIR, "1h")
    assert len(drift.rows) == 3
    assert abs(drift.relative) < 0.002  # the paper model's own slippage only
    assert await drift_alerts(tmp_path) == []


async def test_a_stopped_pair_stops_its_twin_too(tmp_path: Path, btc_candles: pd.DataFrame) -> None:
    fake = funded_fake(btc_candles)
    async with live_stack(tmp_path, fake, START, drift=DRIFT) as (trading, market, _):
        await tick_at(trading, market, SIGNALS[:1])  # both sides bought
        twin = trading.service.twin
        assert twin is not None
        assert twin.engine.portfolio.position(PAIR) is not None
        await trading.control.stop(PAIR)
        assert trading.engine.portfolio.position(PAIR) is None
        assert twin.engine.portfolio.position(PAIR) is None  # sold on paper too
        (row,) = (await twin.monitor.drift(PAIR, "1h")).rows
    assert row.live is not None
    assert row.twin is not None
    assert row.twin.exit_time == row.live.exit_time


async def test_a_demotion_and_a_promotion_persist_across_restarts(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = slipping_fake(btc_candles)
    demoting = {**DRIFT, "demote_to_paper": True}
    async with live_stack(tmp_path, fake, START, drift=demoting) as (trading, market, _):
        await tick_at(trading, market, SIGNALS[:2])  # one trade, 2% off: demoted
        assert trading.service.twin is not None
        assert trading.service.twin.monitor.demotions() == [PAIR]
    (alert,) = await drift_alerts(tmp_path)
    assert "Demoted to paper: no new live entries" in alert
    assert fake.order_posts == 2
    async with live_stack(tmp_path, fake, SIGNALS[1], drift=demoting) as (again, market, _):
        twin = again.service.twin
        assert twin is not None
        assert twin.monitor.demoted(PAIR)
        await tick_at(again, market, SIGNALS[2:4])
        assert fake.order_posts == 2  # no live entry while demoted
        assert len((await twin.monitor.drift(PAIR, "1h")).rows) == 2  # paper trades it
        await twin.monitor.promote(PAIR)
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        audited = [e.command for e in await SqliteAuditRepository(db).latest(10)]
    assert "demote" in audited
    async with live_stack(tmp_path, fake, SIGNALS[3], drift=demoting) as (again, market, _):
        assert again.service.twin is not None
        assert again.service.twin.monitor.demotions() == []  # the promotion kept too
        await tick_at(again, market, SIGNALS[4:])
    assert fake.order_posts == 4  # live again


@asynccontextmanager
async def drift_chat(
    tmp_path: Path,
    fake: FakeBinance,
    drift: dict[str, Any],
    ticks: list[datetime],
    history: Callable[[CandleHistory], CandleHistory] = lambda history: history,
) -> AsyncIterator[Chat]:
    """The live stack with its twin on ``fake`` ticked at ``ticks``, and the chat on it,
    reading candles through ``history`` (given /backtest's: the candle store and the venue)."""
    settings = live_settings(tmp_path, "http://127.0.0.1:1", drift=drift)
    wall = FakeClock(SystemClock().now())
    emulator = TelegramEmulator()
    emulator.clock = lambda: wall.now().timestamp()
    async with (
        live_stack(tmp_path, fake, START, drift=drift) as (trading, market, _),
        open_database(tmp_path / "pairpilot.sqlite") as db,
        venue_client("binance", fake) as (_, exchange),
    ):
        await tick_at(trading, market, ticks)
        venue = chat_venue(settings, "binance", trading, exchange.price_decimals)
        candles = history(ExchangeHistory(exchange, SqliteCandleRepository(db)))
        async with chat_on(db, trading, venue, candles, emulator, wall) as chat:
            yield chat


async def test_drift_and_promote_from_the_chat(tmp_path: Path, btc_candles: pd.DataFrame) -> None:
    fake = slipping_fake(btc_candles)
    demoting = {**DRIFT, "demote_to_paper": True}
    # demoted at the first trade
    async with drift_chat(tmp_path, fake, demoting, SIGNALS[:4]) as chat:
        shown = await chat.ask(VIEWER, "/drift btcusdt")
        assert shown.startswith(f"{PAIR} since 06-27 05:00 UTC, 2 trade(s)\nlive -")
        assert "gap at the live size -9.33 (-1.87% of cost; threshold 1.00%)" in shown
        assert "They part at the trade of 06-27 05:00." in shown
        assert "Demoted to paper: no new live entries; /promote BTC/USDT" in shown
        first, second = shown.split("06-27 05:00 → ")[1], shown.split("06-28 04:00 → ")[1]
        # live at the venue's price (the next open) + 1%, the twin at the close + 0.05%
        assert " live 108,572.04 → 105,801.02 fee 0.99 PnL -13.73 (-2.75%)" in first
        assert " twin 107,550.81 → 106,816.28 fee 0.99 PnL -4.36 (-0.88%)" in first
        # the backtest sizes by the pair's capital share too: the twin's trade at its own prices
        assert " test 107,550.82 → 106,816.29 fee 0.99 PnL -4.36 (-0.88%)" in first
        assert " slippage vs twin: in +0.95%, out +0.95%" in first
        assert " live: no trade" in second  # demoted: paper only
        assert " twin 107,353.78 → 107,600.37 fee 0.99 PnL +0.15" in second
        assert " test 107,353.78 → still open" in second  # exits at the next open
        assert "needs the admin role" in await chat.ask(VIEWER, "/promote BTCUSDT")
        question = await chat.sent_back(ADMIN, "/promote BTCUSDT")
        assert "put BTC/USDT back to live trading" in question.text
        before = len(chat.emulator.to(ADMIN))
        button = question.reply_markup["inline_keyboard"][0][0]["callback_data"]
        chat.emulator.press(ADMIN, question, button)
        result = await chat.emulator.reply(ADMIN, after=before)
        assert result.text.startswith("BTC/USDT trades live again")
        refused = await chat.ask(ADMIN, "/promote BTCUSDT")
        assert "is not demoted: /promote takes a pair the drift monitor demoted" in refused
    async with live_stack(tmp_path, fake, SIGNALS[3], drift=demoting) as (again, _, _):
        assert again.service.twin is not None
        assert again.service.twin.monitor.demotions() == []
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        audited = [(e.command, e.arguments) for e in await SqliteAuditRepository(db).latest(10)]
    assert ("promote", ["BTCUSDT"]) in audited
    assert ("demote", [PAIR]) in audited


class Held:
    """The chat's candle history (``on``), each read held until ``go`` is set."""

    def __init__(self) -> None:
        self._history: CandleHistory | None = None
        self.reading, self.go = asyncio.Event(), asyncio.Event()

    def on(self, history: CandleHistory) -> Held:
        self._history = history
        return self

    async def candles(self, pair: str, timeframe: str, days: int, now: datetime) -> pd.DataFrame:
        self.reading.set()
        await self.go.wait()
        assert self._history is not None
        return await self._history.candles(pair, timeframe, days, now)


async def test_the_drifts_backtest_is_research_like_backtest(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    """/drift's backtest holds /backtest's one-at-a-time gate, reading /backtest's candles;
    it runs beside the chat's next commands."""
    held = Held()
    async with drift_chat(
        tmp_path, slipping_fake(btc_candles), DRIFT, SIGNALS[:2], held.on
    ) as chat:
        before = len(chat.emulator.to(VIEWER))
        chat.emulator.say(VIEWER, "/drift btcusdt")
        await asyncio.wait_for(held.reading.wait(), 30)  # its backtest reads candles
        refused = await chat.ask(TRADER, "/backtest BTCUSDT ema_cross 1h 5")
        gate = "a backtest is running (/drift BTC/USDT); send yours again when it has finished"
        assert refused == f"⚠️ {gate}"
        beside = await chat.ask(VIEWER, "/drift")  # the chat goes on meanwhile
        assert "test: none (a backtest is running (/drift BTC/USDT); send" in beside
        assert " live 108,572.04 → 105,801.02 fee 0.99 PnL -13.73 (-2.75%)" in beside
        held.go.set()
        shown = (await chat.reply(VIEWER, after=before + 1)).text
        assert " test 107,550.82 → still open" in shown  # its exit: at the next open
        assert "test: none" not in shown

        held.go.clear()
        held.reading.clear()
        before = len(chat.emulator.to(TRADER))
        chat.emulator.say(TRADER, "/backtest BTCUSDT ema_cross 1h 5")
        await asyncio.wait_for(held.reading.wait(), 30)
        waiting = await chat.ask(VIEWER, "/drift btcusdt")
        assert "test: none (a backtest is running (BTC/USDT ema_cross 1h 5d); send" in waiting
        held.go.set()
        for _ in range(300):
            if any(m.photo for m in chat.emulator.to(TRADER)[before:]):
                break
            await chat.emulator.quiet(0.1)
        assert any(m.photo for m in chat.emulator.to(TRADER)[before:])


@pytest.mark.parametrize("enabled", [True, False])
async def test_the_live_service_keeps_its_twins_books_beside_its_own(
    tmp_path: Path, btc_candles: pd.DataFrame, enabled: bool
) -> None:
    fake = FakeBinance(now_ms=int(btc_candles["timestamp"].iloc[-1]) + 60_000)
    fake.add_candles("BTCUSDT", "1h", btc_candles)
    async with serve(fake) as base:
        settings = live_settings(tmp_path, base, drift={**DRIFT, "enabled": enabled})
        stop = asyncio.Event()
        lines: list[str] = []
        service = asyncio.create_task(run_service(settings, SECRETS, stop=stop, write=lines.append))
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.wait_for(service, timeout=5)
    assert "pairpilot stopped" in "\n".join(lines)
    assert (tmp_path / "twin.sqlite").exists() is enabled
    if enabled:
        assert await journal_ids(tmp_path / "twin.sqlite") == set()  # books, no orders yet
        # marked as the twin's (a restore refuses it as the live database); the live one not
        marks = [application_id(tmp_path / name) for name in ("twin.sqlite", "pairpilot.sqlite")]
        assert marks == [TWIN_APPLICATION_ID, 0]


def application_id(path: Path) -> int:
    with closing(sqlite3.connect(path)) as connection:
        return int(connection.execute("PRAGMA application_id").fetchone()[0])
