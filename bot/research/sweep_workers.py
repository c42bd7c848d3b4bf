"""The process's strategies on every Dask worker of a sweep, new workers included: a user
strategy loaded from the config's folder or an entry point is known there too (imported by
bot/research/sweep_dask.py only when a sweep runs: distributed is a heavy import)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from strategies.registry import StrategyRegistry, install

PLUGIN_NAME = "pairpilot-strategies"


class InstallStrategies(WorkerPlugin):
    """Runs ``recipe`` (StrategyRegistry.recipe) on each worker as it starts, and installs
    what it builds as that worker's registry."""

    def __init__(self, recipe: Callable[[], StrategyRegistry]) -> None:
        self.recipe = recipe

    def setup(self, worker: Any) -> None:
        install(self.recipe())


def share_strategies(client: Any, registry: StrategyRegistry) -> None:
    """Give ``client``'s workers ``registry`` (nothing to do when it is the built-ins')."""
    if registry.recipe is not None:
        client.register_plugin(InstallStrategies(registry.recipe), name=PLUGIN_NAME)
