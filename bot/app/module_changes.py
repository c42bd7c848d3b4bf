"""Whether importing a user's strategy file changed the modules other strategies run on.

A strategy file is imported into the trading process (start-up, /reload). Its import may
rebind what every strategy calls: ``ta.ema = quick_ema`` (a "speed-up" for itself), or
``strategies.base.HOLD = ...``. The running pairs' code would then decide otherwise under an
unchanged source hash, so the gate's "checked" would no longer be true. Loading snapshots the
public attributes of the modules that matter around each user import; a file that rebinds,
adds or deletes one of them is refused as a load problem and the change is undone.

The scope is what strategies and pairpilot's decisions are made of, cheap to compare: every
loaded module of ``strategies``, ``bot`` and ``pandas_ta`` (their submodules included), and
the top level of ``pandas`` and ``numpy`` (their submodules are hundreds; their classes'
methods, ``pd.Series.ewm = ...``, are not covered: a comparison of every class's dict costs
more than the import). Attributes are compared by identity, so a module-level list or dict
changed in place is not seen either. A submodule imported by the file (``import
pandas_ta.momentum`` adds ``momentum`` to its package) is not a change.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

WITH_SUBMODULES = ("strategies", "bot", "pandas_ta")
TOP_LEVEL_ONLY = ("pandas", "numpy")

type Snapshot = dict[str, tuple[ModuleType, dict[str, object]]]


class ChangesModules(Exception):
    """A user file's import changed watched modules (undone): it is not loaded."""

    def __init__(self, changed: list[str]) -> None:
        shown = ", ".join(changed[:5]) + (
            f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        )
        super().__init__(
            f"changes {shown} on import (undone; not loaded): a strategy file must not "
            "modify pandas-ta, pandas, numpy or pairpilot, whose code every strategy runs on"
        )
        self.changed = changed


def _watched(name: str) -> bool:
    if name in TOP_LEVEL_ONLY:
        return True
    return any(name == root or name.startswith(f"{root}.") for root in WITH_SUBMODULES)


def snapshot() -> Snapshot:
    """The watched modules loaded now, each with its public attributes."""
    taken: Snapshot = {}
    for name, module in list(sys.modules.items()):
        if isinstance(module, ModuleType) and _watched(name):
            public = {k: v for k, v in vars(module).items() if not k.startswith("_")}
            taken[name] = (module, public)
    return taken


def undo_changes(before: Snapshot) -> list[str]:
    """Every watched name changed since ``before`` (``pandas_ta.ema``), each put back."""
    changed: list[str] = []
    for name, (module, attributes) in before.items():
        if sys.modules.get(name) is not module:  # the module itself replaced
            changed.append(name)
            sys.modules[name] = module
        now = vars(module)
        for key, value in attributes.items():
            if key not in now or now[key] is not value:
                changed.append(f"{name}.{key}")
                setattr(module, key, value)
        for key in [k for k in now if not k.startswith("_") and k not in attributes]:
            value = now[key]
            if isinstance(value, ModuleType) and value.__name__ == f"{name}.{key}":
                continue  # a submodule imported for the first time
            changed.append(f"{name}.{key}")
            delattr(module, key)
    return sorted(changed)


@contextmanager
def unchanged_modules() -> Iterator[None]:
    """Run the block (a user file's import); ChangesModules when it changed a watched module
    (the change undone). A block that raises has its changes undone too, its error kept."""
    before = snapshot()
    try:
        yield
    finally:
        changed = undo_changes(before)
    if changed:
        raise ChangesModules(changed)
