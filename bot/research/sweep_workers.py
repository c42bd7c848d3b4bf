"""The process's strategies on every Dask worker of a sweep, new workers included: a user
strategy loaded from the config's folder or an entry point is known there too (imported by
bot/research/sweep_dask.py only when a sweep runs: distributed is a heavy import).

A worker loads the strategies again, from the files as they are when it starts: one that finds
other code than this process loaded (a file edited since start-up or the last /reload) refuses
to run, rather than sweep code the sweep's receipt does not name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from bot.core.errors import ConfigError
from bot.research.receipts import source_hash
from strategies.registry import StrategyRegistry, install

PLUGIN_NAME = "pairpilot-strategies"


class InstallStrategies(WorkerPlugin):
    """Runs ``recipe`` (StrategyRegistry.recipe) on each worker as it starts, and installs
    what it builds as that worker's registry when each strategy's source hash is ``expected``'s
    (the sharing process's); else ConfigError naming the strategies whose code changed."""

    def __init__(self, recipe: Callable[[], StrategyRegistry], expected: Mapping[str, str]) -> None:
        self.recipe = recipe
        self.expected = dict(expected)

    def setup(self, worker: Any) -> None:
        registry = self.recipe()
        changed = sorted(
            name
            for name, wanted in self.expected.items()
            if name not in registry or source_hash(registry[name]) != wanted
        )
        if changed:
            raise ConfigError(
                f"the code of strategy {', '.join(changed)} changed since this process loaded "
                "it (its file or a module it imports was edited, or no longer loads): a sweep "
                "worker would run other code than the sweep names; load it again (/reload, or "
                "run the command again) and sweep again"
            )
        install(registry)


def share_strategies(client: Any, registry: StrategyRegistry) -> None:
    """Give ``client``'s workers ``registry`` (nothing to do when it is the built-ins')."""
    if registry.recipe is not None:
        expected = {name: source_hash(cls) for name, cls in registry.items()}
        client.register_plugin(InstallStrategies(registry.recipe, expected), name=PLUGIN_NAME)
