"""The crash soak: SIGKILL the service at random moments, restart it, check every invariant.

The fake exchange and the Telegram emulator run here, in the soak's process, so they outlive
every kill with their own ledgers; the service is ``tests.soaks.crash_child``, a real process. Order
placements and Telegram sends are slowed a little so that kills land inside them as well as
inside ticks and storage writes.

After each kill (the database at rest): ``PRAGMA integrity_check``; no alert row lost; every
alert marked delivered really reached the chat (the rest are still queued). After each
restart (start-up reconciliation done, nothing traded yet): the halt flag and the pair runs as
the database held them at the kill; no client order id placed twice on the exchange, and every
exchange order journaled; every exchange fill booked exactly once; positions and cash equal the
exchange's balances; the position invariants of tests/rigs/invariants.py. At the end: an alert
the chat got more often than it was stored (a kill between the send and its record) says it
may be a repeat on every extra copy. Used by the suite (a few kills) and by
`python -m bench.crash_soak` (200 and more).

The time before each kill counts in the service's ticks (the fake's clock, which the service
moves an hour before each tick), not in seconds: a loaded machine slows the ticks, never the
trading a kill interrupts.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bot.exchange.venues import profile_for
from handlers.delivery import MAY_REPEAT
from tests.doubles.fake_exchange import FakeBinance, serve
from tests.doubles.telegram_emulator import TelegramEmulator, running
from tests.rigs.invariants import Invariants
from tests.rigs.live_rig import VENUES, VenueRig, funded_fake
from tests.soaks.crash_child import ADMIN, HOUR_MS

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ("go", "go", "go", "go halt", "go resume", "go pause", "go unpause")
START_UP_LIMIT = 90.0  # seconds a restart may take on a loaded machine
STALL_LIMIT = 60.0  # seconds the service may go without starting a tick on a loaded machine
# Ten days of history for the strategy, and 20 hours more: on the sample candles the service
# then trades in its 7th tick (EMA 3/7), so a soak of few ticks trades too.
START_AFTER_MS = 10 * 86_400_000 + 20 * HOUR_MS + 5_000
FIRST_TICK_GUESS = 0.3  # seconds a tick takes, until one has been timed


@dataclass
class CrashReport:
    kills: int = 0
    landed: collections.Counter[str] = field(default_factory=collections.Counter)
    violations: list[str] = field(default_factory=list)
    restart_seconds: list[float] = field(default_factory=list)
    exchange_orders: int = 0
    fills: int = 0
    alerts: int = 0
    alerts_delivered: int = 0
    alerts_sent_twice: int = 0  # sent more often than stored: a kill between send and record
    repeats_marked: int = 0  # copies that said they may be a repeat (an unmarked extra: violation)
    invariants: Invariants | None = None  # tests/rigs/invariants.py, checked after every restart


async def run_crash_soak(
    folder: Path,
    candles: pd.DataFrame,
    *,
    kills: int,
    seed: int = 1,
    progress: Any = None,
    venue: str = "binance",
    split: tuple[float, ...] = (1.0,),
    fee_asset: str = "quote",
    dwell: tuple[float, float] = (0.0, 6.0),
    walks: bool = False,
) -> CrashReport:
    """``kills`` SIGKILLs at random moments; ``progress``: called after each (a tqdm bar).
    ``venue``: whose fake and ccxt class; ``split`` and ``fee_asset``: the fake's trades per
    order and fee currency (see ``FakeBinance``); ``dwell``: the range of ticks the service
    runs before each kill (a fraction: that far into the next tick, as the ticks so far were
    timed); ``walks``: the market walks each candle, so a resting stop may fire inside one,
    between a kill and the restart's reconciliation."""
    rng = random.Random(seed)
    rig = VENUES[venue]
    fake = funded_fake(candles, venue, fee_asset)
    fake.split, fake.walks = split, walks
    fake.order_delay = 0.04
    fake.move_to(int(candles["timestamp"].iloc[0]) + START_AFTER_MS)
    emulator = TelegramEmulator(send_delay=0.02)
    report = CrashReport()
    database = folder / "pairpilot.sqlite"
    report.invariants = invariants = Invariants(
        fake, database, rig.trade_key, resting_stops=profile_for(venue).stop_orders
    )
    log = (folder / "service.log").open("ab")
    async with serve(fake) as exchange_url, running(emulator) as telegram_url:
        expected: dict[str, Any] | None = None
        alert_ids: set[int] = set()
        checked_at = fake.now_ms
        tick_seconds = FIRST_TICK_GUESS
        try:
            for round_ in range(kills + 1):
                started = time.monotonic()
                child = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "tests.soaks.crash_child",
                    exchange_url,
                    telegram_url,
                    str(folder),
                    venue,
                    cwd=ROOT,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=log,
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                )
                try:
                    loaded = await _ready(child, folder / "service.log")
                    report.restart_seconds.append(time.monotonic() - started)
                    found = _after_restart(database, fake, rig, loaded, expected)
                    report.violations += [f"restart {round_}: {text}" for text in found]
                    # a full tick ran since the last check when the fake moved twice (each tick
                    # moves it an hour first): a kill inside the first tick left it unfinished
                    ticked = fake.now_ms - checked_at >= 2 * HOUR_MS
                    checked_at = fake.now_ms
                    report.violations += invariants.check(f"restart {round_}", ticked=ticked)
                    if round_ == kills:
                        break
                    assert child.stdin is not None
                    child.stdin.write((rng.choice(COMMANDS) + "\n").encode())
                    await child.stdin.drain()
                    tick_seconds = await _dwell(
                        child, fake, rng.uniform(*dwell), tick_seconds, folder / "service.log"
                    )
                    report.landed[_landing(fake, emulator)] += 1
                finally:
                    if child.returncode is None:
                        child.kill()
                    await child.wait()
                report.kills += round_ < kills
                expected = _persisted(database)
                report.violations += [
                    f"kill {round_ + 1}: {text}"
                    for text in _after_kill(database, emulator, alert_ids)
                ]
                if progress:
                    progress()
        finally:
            log.close()
    _totals(report, database, fake, emulator)
    return report


async def _ready(child: asyncio.subprocess.Process, log: Path) -> dict[str, Any]:
    assert child.stdout is not None
    line = await asyncio.wait_for(child.stdout.readline(), START_UP_LIMIT)
    if not line:
        raise AssertionError(f"the service died during start-up; its log ends:\n{await _tail(log)}")
    return dict(json.loads(line))


async def _tail(log: Path) -> str:
    """The end of the service's log, for a failure message."""
    return (await asyncio.to_thread(log.read_text, errors="replace"))[-3000:]


async def _dwell(
    child: asyncio.subprocess.Process,
    fake: FakeBinance,
    ticks: float,
    tick_seconds: float,
    log: Path,
) -> float:
    """Let the service run ``ticks`` ticks: wait until it moved the fake's clock ``int(ticks)``
    hours, then the rest of ``ticks`` of one tick's time, so the kill lands anywhere in a tick.
    Returns the seconds a tick took this time (``tick_seconds`` when no tick was timed)."""
    since, whole = fake.now_ms, int(ticks)
    started = moved_at = time.monotonic()
    moved = 0
    while moved < whole:
        await asyncio.sleep(0.01)
        now = time.monotonic()
        if child.returncode is not None:
            tail = await _tail(log)
            raise AssertionError(f"the service died after {moved} ticks; its log ends:\n{tail}")
        if (fake.now_ms - since) // HOUR_MS > moved:
            moved, moved_at = (fake.now_ms - since) // HOUR_MS, now
        elif now - moved_at > STALL_LIMIT:
            raise AssertionError(
                f"the service started no tick for {STALL_LIMIT:.0f} s ({moved} of {whole} done)"
            )
    if whole:
        tick_seconds = (moved_at - started) / whole
    await asyncio.sleep((ticks - whole) * tick_seconds)
    return tick_seconds


def _landing(fake: FakeBinance, emulator: TelegramEmulator) -> str:
    if fake.placing:
        return "order submission"
    if emulator.sending:
        return "alert delivery"
    return "tick or storage write"


def _connect(database: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{database}?mode=ro", uri=True)


def _persisted(database: Path) -> dict[str, Any]:
    with _connect(database) as db:
        risk = db.execute("SELECT value FROM bot_state WHERE key = 'risk'").fetchone()
        runs = db.execute(
            "SELECT pair, state FROM pair_runs WHERE state != 'stopped' ORDER BY id"
        ).fetchall()
    halted = bool(risk and json.loads(risk[0]).get("halt"))
    return {"halted": halted, "runs": [list(run) for run in runs]}


def _after_kill(database: Path, emulator: TelegramEmulator, seen: set[int]) -> list[str]:
    found = []
    with _connect(database) as db:
        if db.execute("PRAGMA integrity_check").fetchone() != ("ok",):
            found.append("integrity_check failed")
        rows = db.execute("SELECT id, text, delivered_at FROM alerts").fetchall()
    ids = {row[0] for row in rows}
    if not seen <= ids:
        found.append(f"alerts lost: {sorted(seen - ids)[:5]}")
    seen |= ids
    received = [message.text for message in emulator.to(ADMIN)]
    for alert_id, text, delivered_at in rows:
        if delivered_at is not None and not any(text[:60] in got for got in received):
            found.append(f"alert {alert_id} marked delivered but never sent: {text[:60]}")
    return found


def _after_restart(
    database: Path,
    fake: FakeBinance,
    rig: VenueRig,
    loaded: dict[str, Any],
    expected: dict[str, Any] | None,
) -> list[str]:
    found = []
    if expected is not None and loaded != expected:
        found.append(f"loaded {loaded}, the database held {expected}")
    placed = collections.Counter(order.client_id for order in fake.orders.values())
    found += [f"{coid} placed {n} times" for coid, n in placed.items() if n > 1]
    traded = {
        rig.trade_key(order.symbol, fill["tradeId"])
        for order in fake.orders.values()
        for fill in order.fills
    }
    with _connect(database) as db:
        wire = profile_for(rig.name).wire_id  # the id the venue carries for ours (a UUID, a number)
        journaled = {wire(row[0]) for row in db.execute("SELECT client_order_id FROM orders")}
        booked = [row[0] for row in db.execute("SELECT trade_id FROM fills")]
        held = db.execute(
            "SELECT coalesce(sum(amount), 0) FROM positions WHERE pair = 'BTC/USDT'"
        ).fetchone()[0]
        cash = db.execute("SELECT value FROM bot_state WHERE key = 'portfolio.cash'").fetchone()
        alarms = db.execute("SELECT text FROM alerts WHERE kind = 'reconciliation_drift'")
        found += [
            f"reconciliation alarm on an account only we trade: {text[:90]}" for (text,) in alarms
        ]
    found += [f"{coid} on the exchange, not in the journal" for coid in set(placed) - journaled]
    if sorted(booked) != sorted(traded):
        found.append(f"fills booked {len(booked)}, exchange trades {len(traded)}")
    btc = fake.balances.get("BTC", 0.0) + fake.locked.get("BTC", 0.0)
    if abs(held - btc) > 1e-9:
        found.append(f"books hold {held} BTC, the exchange {btc}")
    usdt = fake.balances.get("USDT", 0.0) + fake.locked.get("USDT", 0.0)
    if cash is not None and abs(json.loads(cash[0]) - usdt) > 1e-6:
        found.append(f"books hold {json.loads(cash[0])} USDT, the exchange {usdt}")
    return found


def _totals(
    report: CrashReport, database: Path, fake: FakeBinance, emulator: TelegramEmulator
) -> None:
    report.exchange_orders = len(fake.orders)
    with _connect(database) as db:
        report.fills = db.execute("SELECT count(*) FROM fills").fetchone()[0]
        report.alerts = db.execute("SELECT count(*) FROM alerts").fetchone()[0]
        report.alerts_delivered = db.execute(
            "SELECT count(*) FROM alerts WHERE delivered_at IS NOT NULL"
        ).fetchone()[0]
        stored = collections.Counter(row[0] for row in db.execute("SELECT text FROM alerts"))
    texts = [message.text for message in emulator.to(ADMIN)]
    sent = collections.Counter(text.removeprefix(f"{MAY_REPEAT} ") for text in texts)
    unmarked = collections.Counter(text for text in texts if not text.startswith(MAY_REPEAT))
    report.alerts_sent_twice = sum(max(0, n - stored[text]) for text, n in sent.items())
    report.repeats_marked = sum(text.startswith(MAY_REPEAT) for text in texts)
    report.violations += [
        f"sent twice, not marked as a possible repeat: {text[:60]}"
        for text, n in unmarked.items()
        if n > stored[text]
    ]
