"""Every repository round-trips through a real SQLite file."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosqlite
import pandas as pd
import pytest

import storage.db
from bot.core.domain import (
    AlertPriority,
    EquitySnapshot,
    Fill,
    OrderIntent,
    OrderStatus,
    Position,
    RunState,
    Side,
)
from storage.alerts import SqliteAlertRepository
from storage.audit import SqliteAuditRepository
from storage.candles import SqliteCandleRepository
from storage.db import Database, migrations, open_database, schema_version
from storage.equity import SqliteEquityRepository
from storage.fills import SqliteFillRepository
from storage.orders import SqliteOrderRepository
from storage.pair_runs import DuplicateRun, SqlitePairRunRepository
from storage.positions import SqlitePositionRepository
from storage.state import SqliteStateRepository

T0 = datetime(2025, 7, 1, 12, tzinfo=UTC)
TABLES = {
    "pair_runs",
    "orders",
    "order_status_history",
    "fills",
    "positions",
    "equity_snapshots",
    "alerts",
    "audit_log",
    "candles",
    "bot_state",
}


async def test_migrations_apply_from_empty_and_again_do_nothing(tmp_path: Path) -> None:
    path = tmp_path / "fresh.sqlite"
    async with open_database(path) as db:
        assert await schema_version(db.connection) == migrations()[-1][0]
        rows = await db.fetch_all("SELECT name FROM sqlite_master WHERE type = 'table'")
        assert {row["name"] for row in rows} >= TABLES
        await SqliteStateRepository(db).set("halt", True, T0)
        mode = await db.fetch_one("PRAGMA journal_mode")
        assert tuple(mode or ()) == ("wal",)
    async with open_database(path) as db:  # re-opened: migrations are not re-run
        assert await schema_version(db.connection) == migrations()[-1][0]
        assert await SqliteStateRepository(db).get("halt") is True


async def test_a_failing_migration_is_rolled_back_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = [(1, "CREATE TABLE a (x);"), (2, "CREATE TABLE b (x); CREATE TABLE a (y);")]
    monkeypatch.setattr(storage.db, "migrations", lambda: steps)
    async with aiosqlite.connect(tmp_path / "x.sqlite", isolation_level=None) as connection:
        with pytest.raises(sqlite3.OperationalError, match="table a already exists"):
            await storage.db.migrate(connection)
        assert await schema_version(connection) == 1
        cursor = await connection.execute("SELECT name FROM sqlite_master ORDER BY name")
        assert [row[0] for row in await cursor.fetchall()] == ["a"]  # no half-made table b


async def test_transaction_rolls_back_every_write_on_error(db: Database) -> None:
    state = SqliteStateRepository(db)

    async def two_writes_then_a_failure() -> None:
        async with db.transaction():
            await state.set("a", 1, T0)
            await state.set("b", 2, T0)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await two_writes_then_a_failure()
    assert await state.get("a") is None
    assert await state.get("b") is None


async def test_pair_runs_round_trip_and_one_active_run_per_pair(db: Database) -> None:
    runs = SqlitePairRunRepository(db)
    run = await runs.add(
        pair="BTC/USDT",
        strategy="ema_cross",
        timeframe="1h",
        params={"fast": 12, "slow": 26},
        capital_share=0.5,
        now=T0,
    )
    assert run.params == {"fast": 12, "slow": 26}
    assert run.state is RunState.RUNNING
    assert run.created_at == T0
    with pytest.raises(DuplicateRun):
        await runs.add(
            pair="BTC/USDT",
            strategy="ema_cross",
            timeframe="4h",
            params={},
            capital_share=0.1,
            now=T0,
        )
    paused = await runs.set_state(run.id, RunState.PAUSED, T0 + timedelta(hours=1))
    assert paused.state is RunState.PAUSED
    assert [r.id for r in await runs.active()] == [run.id]
    await runs.set_state(run.id, RunState.STOPPED, T0 + timedelta(hours=2))
    assert await runs.active() == []
    again = await runs.add(
        pair="BTC/USDT", strategy="ema_cross", timeframe="1h", params={}, capital_share=0.5, now=T0
    )
    assert again.id != run.id


async def add_run(db: Database) -> int:
    run = await SqlitePairRunRepository(db).add(
        pair="BTC/USDT",
        strategy="ema_cross",
        timeframe="1h",
        params={},
        capital_share=1.0,
        now=T0,
    )
    return run.id


async def test_orders_keep_unique_client_ids_and_their_status_history(db: Database) -> None:
    orders = SqliteOrderRepository(db)
    intent = OrderIntent(
        "pp1-1-buy", await add_run(db), "BTC/USDT", Side.BUY, 0.5, 100.0, T0, "entry"
    )
    order = await orders.add(intent)
    assert order.status is OrderStatus.NEW
    with pytest.raises(sqlite3.IntegrityError):
        await orders.add(intent)
    assert [o.client_order_id for o in await orders.not_final()] == ["pp1-1-buy"]
    later = T0 + timedelta(seconds=2)
    filled = await orders.update(
        "pp1-1-buy",
        OrderStatus.FILLED,
        later,
        filled=0.5,
        average_price=100.1,
        exchange_order_id="x-9",
        note="done",
    )
    assert (filled.status, filled.filled, filled.average_price, filled.exchange_order_id) == (
        OrderStatus.FILLED,
        0.5,
        100.1,
        "x-9",
    )
    assert filled.updated_at == later
    assert await orders.not_final() == []
    history = await orders.history("pp1-1-buy")
    assert [(status, note) for status, _, note in history] == [
        (OrderStatus.NEW, "entry"),
        (OrderStatus.FILLED, "done"),
    ]
    assert await orders.get("nope") is None


async def test_an_order_read_again_unchanged_adds_no_step_to_its_history(db: Database) -> None:
    """A resting stop is read every tick: its history got one identical OPEN row per tick."""
    orders = SqliteOrderRepository(db)
    intent = OrderIntent(
        "pp1-1-stop", await add_run(db), "BTC/USDT", Side.SELL, 0.5, 90.0, T0, "stop"
    )
    await orders.add(intent)
    for tick in range(1, 6):  # five reads of the same resting order
        await orders.update(
            "pp1-1-stop",
            OrderStatus.OPEN,
            T0 + timedelta(hours=tick),
            filled=0.0,
            exchange_order_id="x-1",
        )
    await orders.update("pp1-1-stop", OrderStatus.OPEN, T0 + timedelta(hours=6), filled=0.2)
    await orders.update("pp1-1-stop", OrderStatus.OPEN, T0 + timedelta(hours=7), filled=0.2)
    await orders.update("pp1-1-stop", OrderStatus.FILLED, T0 + timedelta(hours=8), filled=0.5)
    history = await orders.history("pp1-1-stop")
    assert [(status, when.hour) for status, when, _ in history] == [
        (OrderStatus.NEW, T0.hour),
        (OrderStatus.OPEN, (T0 + timedelta(hours=1)).hour),
        (OrderStatus.OPEN, (T0 + timedelta(hours=6)).hour),  # part of it filled: a step
        (OrderStatus.FILLED, (T0 + timedelta(hours=8)).hour),
    ]
    assert (await orders.require("pp1-1-stop")).updated_at == T0 + timedelta(hours=8)


async def test_fills_are_booked_once_per_trade_id(db: Database) -> None:
    orders = SqliteOrderRepository(db)
    await orders.add(OrderIntent("c1", await add_run(db), "BTC/USDT", Side.BUY, 1.0, 1.0, T0))
    fills = SqliteFillRepository(db)
    fill = Fill("c1", "BTC/USDT", Side.BUY, 0.4, 100.0, 0.04, T0, "t1")
    assert await fills.add(fill) is True
    assert await fills.add(fill) is False
    assert await fills.for_order("c1") == [fill]
    assert await fills.all(since=T0 + timedelta(seconds=1)) == []


async def test_fills_are_read_for_one_pair_since_a_time(db: Database) -> None:
    orders, fills, run = SqliteOrderRepository(db), SqliteFillRepository(db), await add_run(db)
    booked = []
    for index, pair in enumerate(["BTC/USDT", "ETH/USDT", "BTC/USDT"]):
        at = T0 + timedelta(hours=index)
        await orders.add(OrderIntent(f"c{index}", run, pair, Side.BUY, 1.0, 1.0, at))
        fill = Fill(f"c{index}", pair, Side.BUY, 1.0, 100.0, 0.1, at, f"t{index}")
        await fills.add(fill)
        booked.append(fill)
    assert await fills.all(pair="BTC/USDT") == [booked[0], booked[2]]
    assert await fills.all(since=T0 + timedelta(minutes=1), pair="BTC/USDT") == [booked[2]]
    assert await fills.all(since=T0 + timedelta(minutes=1)) == booked[1:]


async def test_fill_for_an_unknown_order_is_refused(db: Database) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        await SqliteFillRepository(db).add(
            Fill("ghost", "BTC/USDT", Side.BUY, 1.0, 1.0, 0.0, T0, "t9")
        )


async def test_positions_round_trip(db: Database) -> None:
    positions = SqlitePositionRepository(db)
    position = Position("BTC/USDT", 0.25, 100.0, -0.1, 0.1, T0, T0)
    await positions.save(position)
    assert await positions.get("BTC/USDT") == position
    flat = Position("BTC/USDT", 0.0, 100.0, 5.0, 0.2, None, T0 + timedelta(hours=1))
    await positions.save(flat)
    assert await positions.all() == [flat]


async def test_equity_snapshots_round_trip_in_time_order(db: Database) -> None:
    equity = SqliteEquityRepository(db)
    for hours, value in ((2, 1010.0), (0, 1000.0), (1, 990.0)):
        await equity.add(EquitySnapshot(T0 + timedelta(hours=hours), value, 500.0))
    assert [s.equity for s in await equity.between()] == [1000.0, 990.0, 1010.0]
    assert [s.equity for s in await equity.between(since=T0 + timedelta(hours=1))] == [
        990.0,
        1010.0,
    ]


async def test_alert_outbox_orders_by_priority_and_remembers_delivery(db: Database) -> None:
    alerts = SqliteAlertRepository(db)
    await alerts.add("trade", AlertPriority.TRADE, "bought", T0)
    await alerts.add("startup", AlertPriority.INFO, "hello", T0)
    halt = await alerts.add("halt", AlertPriority.CRITICAL, "halted", T0 + timedelta(minutes=1))
    assert [a.kind for a in await alerts.pending()] == ["halt", "trade", "startup"]
    await alerts.mark_failed(halt)
    await alerts.mark_delivered(halt, T0 + timedelta(minutes=2))
    assert [a.kind for a in await alerts.pending()] == ["trade", "startup"]
    assert await alerts.backlog() == 2
    row = await db.fetch_one("SELECT attempts, delivered_at FROM alerts WHERE id = ?", (halt,))
    assert row is not None
    assert (row["attempts"], row["delivered_at"] is not None) == (2, True)


async def test_audit_log_round_trips_newest_first(db: Database) -> None:
    audit = SqliteAuditRepository(db)
    await audit.add(actor="cli", command="run", arguments=["--config", "x"], result="ok", now=T0)
    await audit.add(actor="tg:42", command="/flatten", arguments=[], result="done", now=T0)
    entries = await audit.latest(5)
    assert [(e.actor, e.command, e.arguments) for e in entries] == [
        ("tg:42", "/flatten", []),
        ("cli", "run", ["--config", "x"]),
    ]


async def test_candles_are_stored_once_per_key(db: Database, btc_candles: pd.DataFrame) -> None:
    candles = SqliteCandleRepository(db)
    sample = btc_candles.iloc[:50]
    assert await candles.add_frame("binance", "BTC/USDT", "1h", sample) == 50
    assert await candles.add_frame("binance", "BTC/USDT", "1h", btc_candles.iloc[40:60]) == 10
    assert await candles.add_frame("binance", "BTC/USDT", "4h", sample.iloc[:4]) == 4
    stored = await candles.frame("binance", "BTC/USDT", "1h")
    pd.testing.assert_frame_equal(
        stored, btc_candles.iloc[:60].reset_index(drop=True), check_dtype=False
    )


async def test_state_round_trips_json_values(db: Database) -> None:
    state = SqliteStateRepository(db)
    assert await state.get("halt", False) is False
    await state.set("halt", {"reason": "drawdown", "since": 1}, T0)
    assert await state.get("halt") == {"reason": "drawdown", "since": 1}
    await state.delete("halt")
    assert await state.get("halt") is None
