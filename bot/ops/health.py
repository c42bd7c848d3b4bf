"""`pairpilot health`: what is wrong with the service, and whether a restart would fix it.

For a container HEALTHCHECK or the systemd watchdog. It needs no secrets and opens the database
read-only (no migration, no write), so it runs from another process with only the config.

Health is a list of named checks. Each says whether it passed and, when it failed, whether
restarting the service would fix it: a stuck service would be; a full disk, a database from a
newer pairpilot, a Telegram outage, an exchange outage or a service stopped on purpose would
not, and restarting a trading bot for those only adds risk. A check's ``name`` is stable (the
operator's alert rules may match on it). Exit codes (``Health.exit_code``): 0 healthy,
1 unhealthy and a restart would not help, 3 unhealthy and a restart would help (the only code
the watchdog restarts on), 2 bad input as for every command.

The running service records a heartbeat (``heartbeat_record``) every ``HEARTBEAT_SECONDS``:
wall time, its start, each pair's last new candle, and the trouble it knows of.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bot.core.domain import PairRun, from_ms, to_ms
from bot.core.ports import PendingAlerts, StateStore
from bot.core.timeframes import timeframe_delta
from bot.ops import data_dir

GRACE = timedelta(minutes=2)
HEARTBEAT_KEY = "service.heartbeat"
HEARTBEAT_SECONDS = 30.0
HEARTBEAT_STALE = 2 * timedelta(seconds=HEARTBEAT_SECONDS) + GRACE
EXIT_OK, EXIT_UNHEALTHY, EXIT_RESTART = 0, 1, 3


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    restart_helps: bool = False  # when failed: would restarting the service fix it?

    def line(self) -> str:
        if self.ok:
            return f"ok    {self.name}: {self.detail}"
        fix = "a restart would fix this" if self.restart_helps else "a restart would not help"
        return f"FAIL  {self.name}: {self.detail} ({fix})"


COMMANDS_KEY = "chat.commands"  # {"problem": why chat commands cannot be received, or None}
CLOCK_KEY = "chat.clock"  # {"source": which clock chat commands' ages are judged by}


@dataclass(frozen=True, slots=True)
class Health:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def problems(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    @property
    def exit_code(self) -> int:
        if self.ok:
            return EXIT_OK
        return EXIT_RESTART if any(c.restart_helps for c in self.problems) else EXIT_UNHEALTHY

    def report(self) -> str:
        verdict = {
            EXIT_OK: "healthy",
            EXIT_UNHEALTHY: "unhealthy: a restart would not help",
            EXIT_RESTART: "unhealthy: a restart would help",
        }[self.exit_code]
        return "\n".join([verdict, *(check.line() for check in self.checks)])


def heartbeat_record(
    *,
    now: datetime,
    started_at: datetime,
    source: str,
    runs: list[PairRun],
    last_ticks: dict[str, datetime],
    last_asked: dict[str, datetime],
    trouble: dict[str, str | None],
) -> dict[str, Any]:
    """What the service records for health: ``now`` and ``started_at`` are wall time;
    ``last_ticks`` is when a tick last saw each pair's new candle, ``last_asked`` when a tick
    last asked for them (the service's clock)."""

    def ms(moments: dict[str, datetime], pair: str) -> int | None:
        return to_ms(moments[pair]) if pair in moments else None

    pairs = {
        run.pair: {
            "timeframe": run.timeframe,
            "since": to_ms(max(run.updated_at, started_at)),
            "seen": ms(last_ticks, run.pair),
            "asked": ms(last_asked, run.pair),
        }
        for run in runs
    }
    return {
        "at": to_ms(now),
        "started_at": to_ms(started_at),
        "source": source,
        "pairs": pairs,
        "stopped_at": None,
        **trouble,
    }


def check_data_dir(path: Path) -> Check:
    found = data_dir.problem(path)
    if found:
        return Check("data_dir", False, found)
    return Check("data_dir", True, f"{path}, {data_dir.free_bytes(path) / 2**30:,.1f} GiB free")


async def check_chat(state: StateStore) -> Check:
    """Can chat commands reach the service? The service records why not (start-up calls that
    kept failing, polling refused); a restart would not fix a revoked token or a second
    instance polling, and the service already retries, so the watchdog is not asked to."""
    chat = await state.get(COMMANDS_KEY) or {}
    problem = chat.get("problem")
    clock = (await state.get(CLOCK_KEY) or {}).get("source")
    ages = f"; their ages judged by {clock}" if clock else ""
    if problem:
        return Check("chat", False, f"chat commands cannot be received: {problem}{ages}")
    return Check("chat", True, f"commands received (or Telegram off){ages}")


def check_schema(found: int, known: int, path: Path) -> Check:
    """The database at ``path`` has schema ``found``; this pairpilot's migrations reach
    ``known``."""
    if found > known:
        return Check(
            "schema",
            False,
            f"database {path} has schema {found}, newer than this "
            f"pairpilot knows ({known}); install the newer pairpilot",
        )
    if found < known:
        return Check(
            "schema", True, f"{found}; the service migrates it to {known} at its next start"
        )
    return Check("schema", True, str(found))


def check_service(beat: dict[str, Any] | None, now: datetime) -> Check:
    """Is the service alive: a fresh heartbeat, or a stop it recorded itself."""
    if beat is None:
        return Check(
            "service",
            False,
            "no heartbeat recorded yet: the service has not run since this version was installed",
        )
    if beat.get("stopped_at"):
        stopped = from_ms(beat["stopped_at"])
        return Check("service", False, f"stopped on purpose at {stopped:%Y-%m-%d %H:%M} UTC")
    quiet = now - from_ms(beat["at"])
    if quiet > HEARTBEAT_STALE:  # what a stale heartbeat says is history, not the service now
        return Check(
            "service",
            False,
            f"no heartbeat for {_minutes(quiet)} min (expected every "
            f"{HEARTBEAT_SECONDS:.0f} s): the service is stuck or was killed",
            restart_helps=True,
        )
    trouble = beat.get("storage_trouble")
    if trouble:
        return Check("service", False, f"the service reports: {trouble}; new entries are off")
    started = from_ms(beat["started_at"])
    return Check(
        "service",
        True,
        f"heartbeat {quiet.total_seconds():.0f} s ago, up since {started:%Y-%m-%d %H:%M} UTC",
    )


def check_pairs(beat: dict[str, Any], now: datetime) -> list[Check]:
    """A check per running pair: has it seen a new candle within two of its candles (counted
    from the service's start at the earliest, so downtime is no alarm)?"""
    pairs: dict[str, dict[str, Any]] = beat.get("pairs") or {}
    if beat.get("source") == "replay":
        return [
            Check(
                "pairs",
                True,
                f"{len(pairs)} pair(s) on a replay: its time is simulated, "
                "so candle freshness is not checked",
            )
        ]
    if not pairs:
        return [Check("pairs", True, "no pairs running")]
    return [
        _check_pair(pair, info, now, beat.get("exchange_trouble"))
        for pair, info in sorted(pairs.items())
    ]


def _check_pair(pair: str, info: dict[str, Any], now: datetime, outage: str | None) -> Check:
    every = timeframe_delta(info["timeframe"])
    since = max(info["since"], info["seen"] or 0)
    quiet = now - from_ms(since)
    name = f"pair {pair}"
    if quiet <= 2 * every + GRACE:
        seen = f"last new candle {_minutes(quiet)} min ago" if info["seen"] else "none yet"
        return Check(name, True, f"{info['timeframe']}, {seen}")
    detail = f"no new candle for {_minutes(quiet)} min (expected every {_minutes(every)})"
    if outage:
        return Check(name, False, f"{detail}; the exchange is failing: {outage}")
    asked = info.get("asked")
    if asked is not None and now - from_ms(asked) <= every + GRACE:
        return Check(
            name,
            False,
            f"{detail}, though the service asks at every candle: the "
            "exchange has none (a halted or quiet market)",
        )
    return Check(
        name,
        False,
        f"{detail}, and the service has not asked for them since "
        f"{_minutes(now - from_ms(asked or since))} min: its tick job is stuck",
        restart_helps=True,
    )


async def check_alerts(
    alerts: PendingAlerts, now: datetime, max_age: timedelta, simulated: bool = False
) -> Check:
    """``simulated``: a replay stamps alerts with its simulated time, so their age means
    nothing; only the backlog is shown."""
    oldest = await alerts.oldest_pending()
    backlog = await alerts.backlog()
    if not simulated and oldest is not None and now - oldest > max_age:
        waited = _minutes(now - oldest)
        return Check(
            "alerts",
            False,
            f"{backlog} alert(s) waiting, the oldest for {waited} "
            "min: Telegram is unreachable or refuses them",
        )
    return Check("alerts", True, f"{backlog} alert(s) waiting")


def _minutes(span: timedelta) -> str:
    return f"{span.total_seconds() / 60:,.0f}"
