"""The drift monitor's alert rule: once per crossing of the threshold, again only after the gap
came back under it; kept over a restart (its state and the alerts in real SQLite; the fills
of both sides handed in as lists). And the twin's state store, read from memory."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.alerts.outbox import AlertOutbox
from bot.core.clock import FakeClock
from bot.core.domain import Fill, Side
from bot.trading.drift import DriftMonitor, DriftSettings
from storage.alerts import SqliteAlertRepository
from storage.audit import SqliteAuditRepository
from storage.db import Database, open_database
from storage.state import RememberedStateRepository, SqliteStateRepository

ROOT = Path(__file__).resolve().parents[2]
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


def monitor(
    db: Database,
    live: Fills,
    twin: Fills,
    clock: FakeClock,
    *,
    demote: bool = False,
    audit: Any = None,
    alerts: Any = None,
) -> DriftMonitor:
    return DriftMonitor(
        settings=DriftSettings(threshold=0.01, demote_to_paper=demote),
        live_fills=live,
        twin_fills=twin,
        live_small=never_small,
        twin_small=never_small,
        state=SqliteStateRepository(db),
        outbox=AlertOutbox(alerts or SqliteAlertRepository(db), clock),
        audit=audit or SqliteAuditRepository(db),
        transactions=db,
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


class Dies:
    """A repository whose write kills the process (the power cut between two writes)."""

    def __init__(self, repository: object) -> None:
        self._repository = repository

    async def add(self, *args: Any, **kwargs: Any) -> int:
        os._exit(9)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._repository, name)


def diverged() -> tuple[Fills, Fills]:
    live, twin = Fills(), Fills()
    trade(live, T0, 100.0, 98.0)  # live lost 2%, the twin nothing: 2% apart
    trade(twin, T0, 100.0, 100.0)
    return live, twin


async def demote_and_die(path: str, dies_at: str) -> None:
    """The child process: the drift crosses with demote_to_paper on; it dies writing the
    demotion's audit row ("audit") or its alert ("alert")."""
    clock = FakeClock(T0 - HOUR)
    async with open_database(Path(path)) as db:
        dying = monitor(
            db,
            *diverged(),
            clock,
            demote=True,
            audit=Dies(SqliteAuditRepository(db)) if dies_at == "audit" else None,
            alerts=Dies(SqliteAlertRepository(db)) if dies_at == "alert" else None,
        )
        await dying.load()
        await dying.start(PAIR)
        clock.set(T0 + 2 * HOUR)
        await dying.check(PAIR, "1h")


def die_demoting(path: Path, dies_at: str) -> subprocess.CompletedProcess[str]:
    """``demote_and_die`` in a process of its own."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import asyncio, sys; from tests.integration.test_drift_monitor import demote_and_die;"
            " asyncio.run(demote_and_die(sys.argv[1], sys.argv[2]))",
            str(path),
            dies_at,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("dies_at", ["audit", "alert"])
async def test_a_crash_while_demoting_leaves_no_demotion_unaudited_or_unannounced(
    tmp_path: Path, dies_at: str
) -> None:
    """The demotion, its audit row and its alert are one transaction: a crash between them
    keeps none, and the check after the restart demotes, audits and alerts once."""
    path = tmp_path / "pairpilot.sqlite"
    async with open_database(path):
        pass  # migrated
    child = await asyncio.to_thread(die_demoting, path, dies_at)
    assert child.returncode == 9, child.stderr
    clock = FakeClock(T0 + 3 * HOUR)
    async with open_database(path) as db:
        restarted = monitor(db, *diverged(), clock, demote=True)
        await restarted.load()
        assert restarted.demotions() == []  # nothing of the demotion survived the crash
        assert await drift_alerts(db) == []
        await restarted.check(PAIR, "1h")
        await restarted.check(PAIR, "1h")
        assert restarted.demotions() == [PAIR]
        assert ["Demoted to paper" in text for text in await drift_alerts(db)] == [True]
        audited = await SqliteAuditRepository(db).latest(10)
        assert [(entry.command, entry.arguments) for entry in audited] == [("demote", [PAIR])]
    async with open_database(path) as db:  # and a second restart keeps all three
        again = monitor(db, *diverged(), clock, demote=True)
        await again.load()
        assert again.demotions() == [PAIR]
