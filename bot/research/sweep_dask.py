"""A sweep's tasks run on Dask: the candles scattered to every worker once, each task's rows
handed over as it finishes, and the tasks whose scattered candles a dead worker took sent
again.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from bot.core.domain import SweepRow
from bot.core.errors import ConfigError
from bot.research.sweep import Series, SweepSpec
from bot.research.sweep_tasks import CHUNK, evaluate, tasks
from strategies import strategy_registry

CONNECT_SECONDS = 5
RESUBMITS = 3  # times a task cancelled by lost scattered candles is sent again
SCATTER_PAUSE_SECONDS = 1.0  # before scattering again to workers one of which just died


def run_on_dask(
    client: Any,
    spec: SweepSpec,
    series: Sequence[Series],
    on_rows: Callable[[list[SweepRow]], None],
    chunk: int = CHUNK,
) -> int:
    """Run the sweep on a dask.distributed ``client``; ``on_rows`` gets each task's rows as it
    finishes (store them, move a progress bar). Returns the number of tasks.

    A dead worker's tasks are rerun by the scheduler, but scattered data it held alone cannot
    be recomputed: the tasks needing it are cancelled. Those are sent again with the candles
    scattered anew (up to ``RESUBMITS`` times each); a task's rows reach ``on_rows`` once."""
    from concurrent.futures import CancelledError

    from distributed import as_completed

    from bot.research.sweep_workers import share_strategies

    data, work = tasks(spec, series, chunk)
    share_strategies(client, strategy_registry())

    def scatter() -> dict[str, Any]:
        """Once per worker, not once per task; under keys of this sweep's own (a dict's keys
        would name the data on the scheduler: another sweep of the pair would share them).
        Right after workers die the scheduler may still list one: sending to it fails with
        CommClosedError (an OSError) until the scheduler drops it, so it is tried again."""
        failed = 0
        while True:
            try:
                sent = client.scatter(list(data.values()), broadcast=True, hash=False)
                return dict(zip(data, sent, strict=True))
            except OSError:
                failed += 1
                if failed > RESUBMITS:
                    raise
                time.sleep(SCATTER_PAUSE_SECONDS)

    scattered = scatter()

    def submit(index: int) -> Any:
        key, combos = work[index]
        return client.submit(evaluate, scattered, key, spec, combos, pure=False)

    task_of = {submit(index): index for index in range(len(work))}
    tries = collections.Counter[int]()
    running = as_completed(list(task_of))
    for future in running:
        index = task_of.pop(future)
        try:
            rows = future.result()
        except CancelledError:
            tries[index] += 1
            if tries[index] > RESUBMITS:
                raise
            if any(part.status != "finished" for part in scattered.values()):
                scattered = scatter()
            again = submit(index)
            task_of[again] = index
            running.add(again)
            continue
        on_rows(rows)
    return len(work)


@contextmanager
def dask_client(address: str | None, workers: int = 0) -> Iterator[Any]:
    """A Client on the scheduler at ``address``, or on a new LocalCluster of ``workers``
    processes (0: one per core); a clear error when the scheduler is unreachable."""
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)  # a line per worker otherwise
    if address:
        try:
            client = Client(address, timeout=CONNECT_SECONDS)
        except (OSError, TimeoutError) as error:
            raise ConfigError(f"no Dask scheduler at {address}: {error}") from None
        with client:
            yield client
        return
    cluster = LocalCluster(
        n_workers=workers or None, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with cluster, Client(cluster) as client:
        yield client
