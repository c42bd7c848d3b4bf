"""Charts drawn in the chart process: PNGs come back, and a worker that died is replaced."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.charts.worker import ChartWorker

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"
TIMES = [datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=hour) for hour in range(48)]
EQUITY = [1000.0 + (hour % 7) * 3 for hour in range(48)]


@pytest.fixture
def charts() -> Iterator[ChartWorker]:
    worker = ChartWorker()
    yield worker
    worker.close()


async def _equity_png(charts: ChartWorker) -> bytes:
    return await charts.draw("equity_chart_png", times=TIMES, equity=EQUITY, title="Equity")


async def test_a_chart_is_drawn_in_another_process(charts: ChartWorker) -> None:
    before = {child.pid for child in multiprocessing.active_children()}
    png = await _equity_png(charts)
    assert png.startswith(PNG)
    assert 10_000 < len(png) < 300_000
    workers = {child.pid for child in multiprocessing.active_children()} - before
    assert len(workers) == 1
    assert os.getpid() not in workers


async def test_a_worker_that_died_is_replaced_and_the_chart_still_arrives(
    charts: ChartWorker,
) -> None:
    others = set(multiprocessing.active_children())
    assert (await _equity_png(charts)).startswith(PNG)
    (worker,) = set(multiprocessing.active_children()) - others
    os.kill(worker.pid, signal.SIGKILL)
    worker.join(5)
    assert (await _equity_png(charts)).startswith(PNG)
    (replacement,) = set(multiprocessing.active_children()) - others
    assert replacement.pid != worker.pid


async def test_a_bad_chart_request_raises_in_the_caller_and_the_worker_lives_on(
    charts: ChartWorker,
) -> None:
    with pytest.raises(TypeError):
        await charts.draw("equity_chart_png", times=TIMES)  # equity and title missing
    assert (await _equity_png(charts)).startswith(PNG)


SERVICE = """
import sys, time
from bot.charts.worker import ChartWorker
worker = ChartWorker()
worker.start()
if sys.argv[1] == "settled":
    time.sleep(0.2)
    print("drawing", flush=True)
    import asyncio
    asyncio.run(worker.draw("equity_chart_png", times=[0, 1], equity=[1.0, 2.0], title="t"))
print("up", flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("moment", ["starting", "settled"])
async def test_a_killed_service_leaves_no_chart_process_holding_its_pipes(moment: str) -> None:
    """Killed while its chart process starts or after, the service's stdout still closes: an
    orphaned worker (or the resource tracker it keeps alive) would hold the pipe for ever."""
    service = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVICE,
        moment,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert service.stdout is not None
    while (await asyncio.wait_for(service.stdout.readline(), 60)).strip() != b"up":
        pass
    service.kill()
    assert await asyncio.wait_for(service.stdout.read(), 15) == b""
    await service.wait()
