"""The typed state (a position's ``Protection``, the risk guard's ``GuardState``) in a real
SQLite file: every shape the untyped code stored loads, and is stored back byte for byte."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.alerts.outbox import AlertOutbox
from bot.core.clock import FakeClock
from bot.core.domain import RiskLimits
from bot.risk.guard import RiskGuard
from bot.risk.guard_state import Cooldown, GuardState, GuardStore, Halt, cooldown_key
from bot.trading.protection import ExitDue, Protection, ProtectionStore, protection_key
from storage.alerts import SqliteAlertRepository
from storage.db import Database
from storage.state import SqliteStateRepository
from storage.vetoes import SqliteVetoRepository

T0 = datetime(2025, 7, 1, 12, tzinfo=UTC)
PAIR = "BTC/USDT"
ENTRY = 101_234.5
CANDLE = 1_751_371_200_000

# What the untyped engine wrote under protection:{pair}, each with the Protection that writes it
# now (bot/trading/engine.py, exits.py, protection.py; bot/execution/resting_stops.py).
OPENED = Protection(entry=ENTRY, peak=ENTRY, atr_distance=812.25)
WITH_STOP = dataclasses.replace(OPENED, resting_stop="pp1x1s", resting_level=96_172.775)
PROTECTIONS: list[tuple[dict[str, Any], Protection]] = [
    (  # a limit entry placed: remembered before it is sent
        {"pending_entry": "pp1x1b", "atr_distance": 500.0},
        Protection(pending_entry="pp1x1b", atr_distance=500.0),
    ),
    ({"atr_distance": 0.0}, Protection(atr_distance=0.0)),  # a market entry, or one cancelled
    ({"entry": ENTRY, "peak": ENTRY, "atr_distance": 812.25}, OPENED),  # the entry filled
    (  # its stop resting on the exchange, the peak raised since
        {
            "entry": ENTRY,
            "peak": 103_000.0,
            "atr_distance": 812.25,
            "resting_stop": "pp1x1s",
            "resting_level": 96_172.775,
        },
        dataclasses.replace(WITH_STOP, peak=103_000.0),
    ),
    (  # an exit signal written down, not sent yet
        {
            "entry": ENTRY,
            "peak": ENTRY,
            "atr_distance": 812.25,
            "exit_due": {"reason": "sma", "candle": CANDLE},
        },
        dataclasses.replace(OPENED, exit_due=ExitDue("sma", CANDLE)),
    ),
    (  # an exit sold in part: the rest is sold at the next close
        {**WITH_STOP.to_json(), "exit_pending": "stop_loss"},
        dataclasses.replace(WITH_STOP, exit_pending="stop_loss"),
    ),
    (  # what an exit left is dust: its exits cleared (stored as null)
        {**OPENED.to_json(), "dust": 0.00000312, "exit_pending": None, "exit_due": None},
        dataclasses.replace(OPENED, dust=0.00000312),
    ),
    (  # dust sold along with the next exit, which filled in part
        {**OPENED.to_json(), "dust": 0.00000312, "exit_pending": "sma", "exit_due": None},
        dataclasses.replace(OPENED, dust=0.00000312, exit_pending="sma"),
    ),
    (  # a hand-made state of the tests: a stop and an entry, no peak
        {"resting_stop": "pp1x1b", "resting_level": 95_000.0, "entry": 100_000.0},
        Protection(entry=100_000.0, resting_stop="pp1x1b", resting_level=95_000.0),
    ),
    ({}, Protection()),  # the stop forgotten from a state that held nothing else
]

# What the untyped guard wrote under "risk", each with its GuardState.
GUARDS: list[tuple[dict[str, Any], GuardState]] = [
    ({"halt": {"reason": "/halt", "since": 5}}, GuardState(halt=Halt("/halt", 5))),
    (
        {"day": 20_270, "day_start": 1000.0, "peak": 1010.5, "last_mark": 990.25},
        GuardState(day=20_270, day_start=1000.0, peak=1010.5, last_mark=990.25),
    ),
    (
        {
            "day": 20_270,
            "day_start": 1000.0,
            "peak": 1000.0,
            "last_mark": 940.0,
            "daily_halt_day": 20_270,
        },
        GuardState(
            day=20_270, day_start=1000.0, peak=1000.0, last_mark=940.0, daily_halt_day=20_270
        ),
    ),
    (  # resumed: the halt lifted is stored as null
        {"day": 20_270, "day_start": 1000.0, "peak": 940.0, "last_mark": 940.0, "halt": None},
        GuardState(day=20_270, day_start=1000.0, peak=940.0, last_mark=940.0, lifted=True),
    ),
]
COOLDOWNS: list[tuple[dict[str, Any], Cooldown]] = [
    ({"losses": 0}, Cooldown()),
    ({"losses": 2}, Cooldown(losses=2)),
    ({"losses": 0, "until_ms": CANDLE}, Cooldown(until_ms=CANDLE)),
    ({"losses": 1, "until_ms": CANDLE}, Cooldown(losses=1, until_ms=CANDLE)),
]


async def stored(db: Database, key: str) -> str:
    """The JSON text the row holds, byte for byte."""
    row = await db.fetch_one("SELECT value FROM bot_state WHERE key = ?", (key,))
    assert row is not None
    return str(row["value"])


@pytest.mark.parametrize(
    ("old", "protection"),
    PROTECTIONS,
    ids=[
        "limit",
        "market",
        "opened",
        "stop",
        "due",
        "rest",
        "dust",
        "dust-rest",
        "no-peak",
        "none",
    ],
)
async def test_a_protection_the_untyped_engine_stored_loads_and_is_stored_back_unchanged(
    db: Database, old: dict[str, Any], protection: Protection
) -> None:
    state = SqliteStateRepository(db)
    await state.set(protection_key(PAIR), old, T0)  # as the untyped engine wrote it
    old_text = await stored(db, protection_key(PAIR))
    store = ProtectionStore(state, FakeClock(T0))

    assert await store.get(PAIR) == protection
    await store.set(PAIR, await store.get(PAIR))
    assert await stored(db, protection_key(PAIR)) == old_text
    await store.set(PAIR, protection)  # written from the typed value the engine builds now
    assert await stored(db, protection_key(PAIR)) == old_text


async def test_no_stored_protection_reads_as_nothing_known(db: Database) -> None:
    store = ProtectionStore(SqliteStateRepository(db), FakeClock(T0))
    assert await store.get(PAIR) == Protection()
    assert await store.stop_of(PAIR) is None


async def test_the_resting_stop_is_remembered_and_forgotten_beside_the_rest(db: Database) -> None:
    state = SqliteStateRepository(db)
    store = ProtectionStore(state, FakeClock(T0))
    await store.set(PAIR, OPENED)
    await store.remember_stop(PAIR, "pp1x1s", 96_172.775)
    assert await store.get(PAIR) == WITH_STOP
    assert await store.stop_of(PAIR) == ("pp1x1s", 96_172.775)
    await store.forget_stop(PAIR)
    assert await state.get(protection_key(PAIR)) == OPENED.to_json()


async def test_keys_this_version_does_not_know_are_kept_and_written_back(db: Database) -> None:
    """A newer version's keys, read after a rollback: the state loads (the tick goes on) and
    a write keeps them, so the newer version finds its state again."""
    state = SqliteStateRepository(db)
    await state.set(protection_key(PAIR), {"entry": ENTRY, "stop": 90_000.0}, T0)
    store = ProtectionStore(state, FakeClock(T0))
    assert (await store.get(PAIR)).entry == ENTRY
    await store.remember_stop(PAIR, "pp1x1s", 96_172.775)
    assert await state.get(protection_key(PAIR)) == {
        "entry": ENTRY,
        "stop": 90_000.0,
        "resting_stop": "pp1x1s",
        "resting_level": 96_172.775,
    }
    await state.set("risk", {"peak": 10_500.0, "weekly_loss": 0.03}, T0)
    guard = GuardStore(state)
    assert (await guard.get()).peak == 10_500.0
    await guard.set(dataclasses.replace(await guard.get(), day_start=10_000.0), T0)
    assert await state.get("risk") == {"peak": 10_500.0, "day_start": 10_000.0, "weekly_loss": 0.03}
    await state.set(cooldown_key(7), {"losses": 2, "streak_since": 5}, T0)
    assert (await guard.cooldown(7)).losses == 2
    await guard.set_cooldown(7, dataclasses.replace(await guard.cooldown(7), losses=3), T0)
    assert await state.get(cooldown_key(7)) == {"losses": 3, "streak_since": 5}


@pytest.mark.parametrize(("old", "guard"), GUARDS, ids=["halt", "marks", "daily", "lifted"])
async def test_a_guard_state_the_untyped_guard_stored_loads_and_is_stored_back_unchanged(
    db: Database, old: dict[str, Any], guard: GuardState
) -> None:
    state = SqliteStateRepository(db)
    await state.set("risk", old, T0)
    old_text = await stored(db, "risk")
    store = GuardStore(state)

    assert await store.get() == guard
    await store.set(await store.get(), T0)
    assert await stored(db, "risk") == old_text
    await store.set(guard, T0)
    assert await stored(db, "risk") == old_text


@pytest.mark.parametrize(
    ("old", "cooldown"), COOLDOWNS, ids=["none", "losses", "cooling", "cooling-lost"]
)
async def test_a_cooldown_the_untyped_guard_stored_loads_and_is_stored_back_unchanged(
    db: Database, old: dict[str, Any], cooldown: Cooldown
) -> None:
    state = SqliteStateRepository(db)
    await state.set(cooldown_key(7), old, T0)
    old_text = await stored(db, cooldown_key(7))
    store = GuardStore(state)

    assert await store.cooldown(7) == cooldown
    await store.set_cooldown(7, cooldown, T0)
    assert await stored(db, cooldown_key(7)) == old_text


async def test_a_halt_lifted_and_restarted_is_stored_as_the_untyped_guard_stored_it(
    db: Database,
) -> None:
    """/halt on a fresh database, /resume, then a restart (a new guard on the same file)."""
    state = SqliteStateRepository(db)
    clock = FakeClock(T0)

    def guard() -> RiskGuard:
        return RiskGuard(
            state=state,
            vetoes=SqliteVetoRepository(db),
            alerts=AlertOutbox(SqliteAlertRepository(db), clock),
            limits=RiskLimits(),
            timezone=ZoneInfo("UTC"),
        )

    first = guard()
    assert await first.halt("/halt by the admin", T0)
    assert await stored(db, "risk") == json.dumps(
        {"halt": {"reason": "/halt by the admin", "since": 1_751_371_200_000}}
    )
    assert await first.resume(900.0, T0)
    assert await stored(db, "risk") == '{"halt": null, "peak": 900.0}'

    again = guard()  # restarted
    assert await again.halted() is None
    await again.start_candle(950.0, T0)
    assert json.loads(await stored(db, "risk")) == {
        "day": 20_270,
        "day_start": 950.0,
        "halt": None,
        "peak": 900.0,
    }
