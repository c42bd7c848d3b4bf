"""A sweep's Dask workers load the strategies again, from the files as they are when they
start: a worker that finds other code than the process that shares them loaded (a file edited
since start-up or the last /reload) refuses, naming the strategy, instead of sweeping code the
sweep's receipt does not name. A real LocalCluster (its worker a thread of this process, so the
test can edit the file between the two loads); real files through the real loader."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from bot.app.strategy_loading import MODULE_PREFIX, load_strategies
from bot.core.errors import ConfigError
from bot.research.sweep_workers import share_strategies
from tests.integration.test_strategy_source_identity import TREND, TREND_PEEKING


@pytest.fixture
def client() -> Iterator[Client]:
    with (
        LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as connected,
    ):
        yield connected


def test_a_worker_finding_the_file_edited_since_the_load_refuses_it(
    tmp_path: Path, client: Client
) -> None:
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    file = folder / "edited_trend.py"
    file.write_text(TREND)
    try:
        registry = load_strategies(folder, explicit=True).registry
        share_strategies(client, registry)  # the same code: the workers take it

        file.write_text(TREND_PEEKING)
        with pytest.raises(ConfigError, match=r"the code of strategy edited_trend changed since"):
            share_strategies(client, registry)
    finally:
        sys.modules.pop(f"{MODULE_PREFIX}.edited_trend", None)
