"""The strategies a process knows by name, each with where it came from.

A ``StrategyRegistry`` is immutable: the built-ins, plus what bot/app/strategy_loading.py found in
the config's strategies folder and the ``pairpilot.strategies`` entry points. Loading the config
makes it the process's registry (``install``), once at start-up; ``build_strategy`` and
``strategy_registry`` read it. A reload installs a new registry whole, so a caller sees the old
or the new one, never half of each, and a strategy object already built keeps its code.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from strategies.base import Strategy, StrategyConfigError


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a strategy came from: ``kind`` built-in, file or entry point; ``where`` says which
    (the module, the file's path, or the entry point with its distribution)."""

    kind: str
    where: str

    def __str__(self) -> str:
        return f"{self.kind} {self.where}"


class StrategyRegistry(Mapping[str, type[Strategy]]):
    """Strategy classes by name, and each one's origin. ``recipe``: how another process (a
    sweep's Dask worker) builds the same registry, a picklable call; None: the built-ins do."""

    def __init__(
        self,
        entries: Mapping[str, tuple[type[Strategy], Origin]],
        recipe: Callable[[], StrategyRegistry] | None = None,
    ) -> None:
        self._entries = dict(entries)
        self.recipe = recipe

    def __getitem__(self, name: str) -> type[Strategy]:
        return self._entries[name][0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def origin(self, name: str) -> Origin:
        return self._entries[name][1]

    def adding(self, cls: type[Strategy], origin: Origin) -> StrategyRegistry:
        """This registry and ``cls``; a name already taken is refused naming both places."""
        if cls.name in self._entries:
            raise StrategyConfigError(
                f"strategy name {cls.name!r} is taken twice: by {self.origin(cls.name)} and "
                f"by {origin}; rename one"
            )
        return StrategyRegistry({**self._entries, cls.name: (cls, origin)})

    def with_recipe(self, recipe: Callable[[], StrategyRegistry]) -> StrategyRegistry:
        return StrategyRegistry(self._entries, recipe)

    def build(self, name: str, params: Mapping[str, object] | None = None) -> Strategy:
        """The named strategy with validated parameters."""
        try:
            cls = self[name]
        except KeyError:
            close = difflib.get_close_matches(name, self, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise StrategyConfigError(
                f"unknown strategy {name!r}; {hint}known: {', '.join(sorted(self))}"
            ) from None
        return cls(params)


def built_in_registry(classes: tuple[type[Strategy], ...]) -> StrategyRegistry:
    return StrategyRegistry(
        {cls.name: (cls, Origin("built-in", cls.__module__)) for cls in classes}
    )


class _Active:
    """The process's registry: one slot, replaced whole (see the module's docstring)."""

    registry: StrategyRegistry


_ACTIVE = _Active()


def install(registry: StrategyRegistry) -> StrategyRegistry:
    """Make ``registry`` the process's; returns the one it replaces (tests put it back)."""
    previous = getattr(_ACTIVE, "registry", registry)
    _ACTIVE.registry = registry
    return previous


def strategy_registry() -> StrategyRegistry:
    """Every strategy this process knows: the built-ins and the configured user strategies."""
    return _ACTIVE.registry


def build_strategy(name: str, params: Mapping[str, object] | None = None) -> Strategy:
    """The named strategy (built-in or user) with validated parameters."""
    return _ACTIVE.registry.build(name, params)
