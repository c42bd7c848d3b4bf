"""The APScheduler wrapper: repeating jobs keep going, and stopping waits for a running job."""

from __future__ import annotations

import asyncio

from bot.core.clock import SystemClock
from bot.ops.scheduler import Jobs


async def test_a_job_repeating_without_pause_is_never_skipped() -> None:
    """Each run plans the next from inside itself; APScheduler still counts the ending run as
    running, so with one instance allowed the next one was skipped and the chain died (a fast
    replay hung that way on a loaded machine)."""
    jobs = Jobs(SystemClock())
    runs = 0

    async def count() -> None:
        nonlocal runs
        runs += 1

    jobs.every(0.0, count, "repeat")
    jobs.start()
    await asyncio.sleep(0.3)
    await jobs.stop()
    assert runs > 20


async def test_stop_waits_for_the_running_job_to_finish() -> None:
    jobs = Jobs(SystemClock())
    finished = []

    async def slow() -> None:
        await asyncio.sleep(0.2)
        finished.append(True)

    jobs.every(60.0, slow, "slow")
    jobs.start()
    await asyncio.sleep(0.05)  # the first run is under way
    await jobs.stop()
    assert finished == [True]
