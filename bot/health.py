"""`pairpilot health`: is the service ticking and delivering? For a container HEALTHCHECK or a
systemd watchdog. It only reads the database, so it works from another process.

Unhealthy when a running pair has seen no new candle for two of its candles plus two minutes
(the service records equity at every tick that sees one), or when the oldest undelivered alert
has waited longer than ``max_alert_age``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.ports import StateStore
from bot.timeframes import timeframe_delta
from storage.alerts import SqliteAlertRepository
from storage.equity import SqliteEquityRepository
from storage.pair_runs import SqlitePairRunRepository

GRACE = timedelta(minutes=2)
COMMANDS_KEY = "chat.commands"  # {"problem": why chat commands cannot be received, or None}


@dataclass(frozen=True, slots=True)
class Health:
    problems: list[str]
    facts: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


async def check_health(
    *,
    runs: SqlitePairRunRepository,
    equity: SqliteEquityRepository,
    alerts: SqliteAlertRepository,
    now: datetime,
    max_alert_age: timedelta,
    state: StateStore | None = None,
) -> Health:
    problems, facts = [], []
    active = await runs.active()
    latest = await equity.latest()
    if active:
        longest = max(timeframe_delta(run.timeframe) for run in active)
        since = latest.time if latest else min(run.updated_at for run in active)
        quiet = now - since
        facts.append(f"{len(active)} pair(s) running, last tick with a new candle "
                     f"{quiet.total_seconds() / 60:,.0f} min ago")  # fmt: skip
        if quiet > 2 * longest + GRACE:
            minutes = quiet.total_seconds() / 60
            every = longest.total_seconds() / 60
            problems.append(f"no new candle for {minutes:,.0f} min (expected every {every:,.0f})")
    else:
        facts.append("no pairs running")
    oldest = await alerts.oldest_pending()
    backlog = await alerts.backlog()
    facts.append(f"{backlog} alert(s) waiting")
    if oldest is not None and now - oldest > max_alert_age:
        problems.append(f"an alert has waited {(now - oldest).total_seconds() / 60:,.0f} min "
                        "for delivery")  # fmt: skip
    if state is not None:
        chat = await state.get(COMMANDS_KEY)
        if chat and chat.get("problem"):
            problems.append(f"chat commands cannot be received: {chat['problem']}")
    return Health(problems, facts)
