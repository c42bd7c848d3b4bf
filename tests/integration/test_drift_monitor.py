"""The drift monitor's alert rule: once per crossing of the threshold, again only after the gap
came back under it; kept over a restart (its state and the alerts in real SQLite; the fills
of both sides handed in as lists). And the twin's state store, read from memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.alerts.outbox import AlertOutbox
from bot.core.clock import FakeClock
from bot.core.domain import Fill, Side
from bot.trading.drift import DriftMonitor, DriftSettings
from storage.alerts import SqliteAlertRepository
from storage.audit import SqliteAuditRepository
from storage.db import Database, open_database
from storage.state import RememberedStateRepository, SqliteStateRepository

PAIR = "BTC/USDT"
T0 = datetime(2025, 6, 27, 5, 0, 5, tzinfo=UTC)
HOUR = timedelta(hours=1)


def never_small(pair: str, amount: float, price: float) -> str | None:
    return None


class Fills:
    """A FillHistory of fills handed in."""

    def __init__(self) -> None:
        self.fills: list[Fill] = []

    async def all(self, since: datetime | None = None, pair: str | None = None) -> list[Fill]:
        return [
            f
            for f in self.fills
            if (since is None or f.time >= since) and (pair is None or f.pair == pair)
        ]


def monitor(db: Database, live: Fills, twin: Fills, clock: FakeClock) -> DriftMonitor:
    return DriftMonitor(
        settings=DriftSettings(threshold=0.01),
        live_fills=live,
        twin_fills=twin,
        live_small=never_small,
        twin_small=never_small,
        state=SqliteStateRepository(db),
        outbox=AlertOutbox(SqliteAlertRepository(db), clock),
        audit=SqliteAuditRepository(db),
        clock=clock,
    )


def trade(fills: Fills, at: datetime, entry: float, exit: float) -> None:
    """A round trip of 0.01 coin, bought at ``at`` and sold an hour later, no fees."""
    for side, price, when in ((Side.BUY, entry, at), (Side.SELL, exit, at + HOUR)):
        coid = f"{side.value}-{when.timestamp():.0f}"
        fills.fills.append(Fill(coid, PAIR, side, 0.01, price, 0.0, when, f"t-{coid}"))


async def drift_alerts(db: Database) -> list[str]:
    return [a.text for a in await SqliteAlertRepository(db).pending(100) if a.kind == "drift"]


async def test_one_alert_per_crossing_rearmed_once_back_under(tmp_path: Path) -> None:
    clock = FakeClock(T0 - HOUR)
    live, twin = Fills(), Fills()
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        watch = monitor(db, live, twin, clock)
        await watch.load()
        await watch.start(PAIR)
        trade(live, T0, 100.0, 98.0)  # live lost 2%, the twin nothing: 2% apart
        trade(twin, T0, 100.0, 100.0)
        assert abs((await watch.check(PAIR, "1h")).relative) > 0.01
        await watch.check(PAIR, "1h")  # still over: no second alert
        assert len(await drift_alerts(db)) == 1
        restarted = monitor(db, live, twin, clock)  # a restart remembers it alerted
        await restarted.load()
        await restarted.check(PAIR, "1h")
        assert len(await drift_alerts(db)) == 1
        for day in range(1, 4):  # three trades alike on both sides: 0.5% apart, under
            at = T0 + timedelta(days=day)
            trade(live, at, 100.0, 100.0)
            trade(twin, at, 100.0, 100.0)
        assert abs((await restarted.check(PAIR, "1h")).relative) < 0.01
        assert len(await drift_alerts(db)) == 1
        for day in range(4, 7):  # live loses again: over once more, alerted once more
            at = T0 + timedelta(days=day)
            trade(live, at, 100.0, 98.0)
            trade(twin, at, 100.0, 100.0)
        await restarted.check(PAIR, "1h")
        await restarted.check(PAIR, "1h")
        assert len(await drift_alerts(db)) == 2
        assert restarted.demotions() == []  # demote_to_paper is off


async def test_the_twins_state_store_reads_what_it_wrote_from_memory(tmp_path: Path) -> None:
    async with open_database(tmp_path / "twin.sqlite") as db:
        state = RememberedStateRepository(db)
        await state.set("key", {"a": 1}, T0)
        got = await state.get("key")
        got["a"] = 2  # a caller's change to what it got
        assert await state.get("key") == {"a": 1}
        await db.execute("UPDATE bot_state SET value = '{\"a\": 3}' WHERE key = 'key'")
        assert await state.get("key") == {"a": 1}  # from memory: nothing else writes it
        await state.set("key", {"a": 1}, T0 + HOUR)  # unchanged: not written again
        assert await SqliteStateRepository(db).get("key") == {"a": 3}
        state.forget()  # after a failure
        assert await state.get("key") == {"a": 3}
