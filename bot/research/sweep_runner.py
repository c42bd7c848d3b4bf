"""A sweep run and stored as it goes: the one path behind `pairpilot sweep` and /sweep.

The Dask side is synchronous, so it runs in a thread; each finished task's rows are stored on
the caller's event loop before the next is taken. The sweep's row is written only once the
scheduler answered, so an unreachable cluster stores nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from bot.core.daemon_threads import in_daemon_thread
from bot.core.domain import SweepRow
from bot.core.ports import Clock, SweepStore
from bot.research.sweep import Series, SweepSpec, describe
from bot.research.sweep_dask import dask_client, run_on_dask
from bot.research.sweep_tasks import tasks

# (tasks done, tasks in all); a coroutine, as the Dask thread hands it to the loop to run.
TaskDone = Callable[[int, int], Coroutine[Any, Any, None]]


async def sweep_and_store(
    store: SweepStore,
    spec: SweepSpec,
    series: Sequence[Series],
    *,
    clock: Clock,
    scheduler: str | None = None,
    workers: int = 0,
    on_task: TaskDone | None = None,
) -> tuple[int, list[SweepRow]]:
    """Run ``spec`` on ``series``; returns the sweep's id and its stored rows."""
    _, work = tasks(spec, series)  # every check before anything is stored
    loop = asyncio.get_running_loop()
    described = describe(spec, [f"{s.pair} {s.timeframe}" for s in series])

    def wait(coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    def in_thread() -> int:
        with dask_client(scheduler, workers) as client:
            sweep_id = wait(store.create(spec.strategy, described, len(work), clock.now()))
            done = 0

            def stored(rows: list[SweepRow]) -> None:
                nonlocal done
                wait(store.add(sweep_id, rows))
                done += 1
                if on_task is not None:
                    wait(on_task(done, len(work)))

            run_on_dask(client, spec, series, stored)
            return int(sweep_id)

    sweep_id = await in_daemon_thread(in_thread)
    await store.finish(sweep_id, clock.now())
    return sweep_id, await store.rows(sweep_id)
