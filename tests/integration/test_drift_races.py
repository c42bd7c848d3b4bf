"""Found by a hostile review (session 22): the drift monitor's demotion and promotion under a
chat command and a tick that write at the same moment (real SQLite; fills handed in as in
test_drift_monitor)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

from bot.core.clock import FakeClock
from bot.core.domain import Fill, Side
from storage.db import open_database
from tests.integration.test_drift_monitor import HOUR, T0, Fills, drift_alerts, monitor

DEMOTED, DIVERGING = "ETH/USDT", "BTC/USDT"


def round_trip(fills: Fills, pair: str, at: datetime, entry: float, exit: float) -> None:
    """0.01 coin of ``pair`` bought at ``at``, sold an hour later, no fees."""
    for side, price, when in ((Side.BUY, entry, at), (Side.SELL, exit, at + HOUR)):
        coid = f"{pair}-{side.value}-{when.timestamp():.0f}"
        fills.fills.append(Fill(coid, pair, side, 0.01, price, 0.0, when, f"t-{coid}"))


async def test_a_promotion_while_another_pair_is_demoted_loses_neither(tmp_path: Path) -> None:
    """/promote ETH (the chat) and BTC's demotion (the tick's check after a sale) both wait
    for the live database, held a moment by the tick's own writes. Each must stick: ETH
    trades live again (its alert says so) and BTC is demoted (its alert and audit row say
    so), in memory and after a restart."""
    clock = FakeClock(T0 - HOUR)
    live, twin = Fills(), Fills()
    path = tmp_path / "pairpilot.sqlite"
    async with open_database(path) as db:
        watch = monitor(db, live, twin, clock, demote=True)
        await watch.load()
        await watch.start(DEMOTED)
        await watch.start(DIVERGING)
        round_trip(live, DEMOTED, T0, 100.0, 98.0)  # 2% apart: ETH demoted
        round_trip(twin, DEMOTED, T0, 100.0, 100.0)
        clock.set(T0 + 2 * HOUR)
        await watch.check(DEMOTED, "1h")
        assert watch.demotions() == [DEMOTED]
        round_trip(live, DIVERGING, T0 + 3 * HOUR, 100.0, 97.0)  # BTC 3% apart, later
        round_trip(twin, DIVERGING, T0 + 3 * HOUR, 100.0, 100.0)
        clock.set(T0 + 5 * HOUR)

        async with db.transaction():  # the tick writing its fills: both wait for it
            promoting = asyncio.create_task(watch.promote(DEMOTED))
            demoting = asyncio.create_task(watch.check(DIVERGING, "1h"))
            await asyncio.sleep(0.05)
        await asyncio.gather(promoting, demoting)

        alerts = await drift_alerts(db)
        assert any(f"{DEMOTED} promoted back to live" in text for text in alerts), alerts
        assert any(text.startswith(DIVERGING) and "Demoted to paper" in text for text in alerts), (
            alerts
        )
        assert watch.demotions() == [DIVERGING]  # what the alerts said, in memory
    async with open_database(path) as db:
        restarted = monitor(db, live, twin, FakeClock(T0 + timedelta(hours=6)), demote=True)
        await restarted.load()
        assert restarted.demotions() == [DIVERGING]  # and as kept
