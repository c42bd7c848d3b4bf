"""Charts drawn in a process of their own, so the service's event loop never waits for them.

A thread is not enough: matplotlib holds the GIL through its C drawing code (font loading,
text layout, Agg rasterising) for long stretches (bench/RESULTS.md), and the event loop
(ticks, commands, the alert drain) waits for the GIL meanwhile. The worker process also keeps
matplotlib out of the service's own memory. It is started when the chat starts (warmed by loading
``bot.charts.render``, so the first chart is as fast as the rest), or on the first chart otherwise.
Entry scripts need the usual ``if __name__ == "__main__":`` guard: the worker is spawned, and
spawning re-imports the main module.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import Any, Literal

log = logging.getLogger(__name__)

Chart = Literal[
    "equity_chart_png",
    "candle_chart_png",
    "backtest_chart_png",
    "heatmap_png",
    "portfolio_chart_png",
]


class ChartWorker:
    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the worker process and let it load matplotlib in the background."""
        if self._pool is None:
            # spawn, not fork: the service runs threads (aiosqlite, APScheduler) a fork would copy
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=context, initializer=_settle_in, initargs=(os.getpid(),)
            )
            self._pool.submit(_load)

    async def draw(self, chart: Chart, /, **arguments: Any) -> bytes:
        """``bot.charts.render.<chart>(**arguments)`` in the worker; a worker that died is
        replaced."""
        for attempt in (1, 2):
            self.start()
            assert self._pool is not None
            try:
                return await asyncio.get_running_loop().run_in_executor(
                    self._pool, partial(_draw, chart, arguments)
                )
            except BrokenProcessPool:
                log.warning("the chart process died; starting a new one (attempt %d)", attempt)
                self.close()
        raise RuntimeError("the chart process died twice in a row")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _settle_in(service: int) -> None:
    """In the worker: leave the service's stdout to it, and go when the service is gone
    (killed without a chance to stop us, an orphan would hold its pipes and memory).

    ``service`` comes from the service itself: a kill can land while this process is still
    starting, and then ``getppid()`` here would already name the adopting init process."""
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), sys.stdout.fileno())

    def watch() -> None:
        while os.getppid() == service:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _load() -> None:
    import bot.charts.render  # noqa: F401


def _draw(chart: Chart, arguments: dict[str, Any]) -> bytes:
    import bot.charts.render

    png: bytes = getattr(bot.charts.render, chart)(**arguments)
    return png
