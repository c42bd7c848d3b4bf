"""Whether importing a user's strategy file changed the modules other strategies run on.

A strategy file is imported into the trading process (start-up, /reload). Its import may
rebind what every strategy calls: ``ta.ema = quick_ema`` (a "speed-up" for itself), or
``strategies.base.HOLD = ...``. The running pairs' code would then decide otherwise under an
unchanged source hash, so the gate's "checked" would no longer be true. Loading snapshots the
public attributes of the modules that matter around each user import; a file that rebinds,
adds or deletes one of them is refused as a load problem and the change is undone.

The scope is what strategies and pairpilot's decisions are made of, cheap to compare: every
loaded module of ``strategies``, ``bot`` and ``pandas_ta`` (their submodules included), and
the top level of ``pandas`` and ``numpy`` (their submodules are hundreds). Class attributes
are watched for the classes strategies compute with: the public classes of ``pandas``,
``pandas.api.typing`` (the window and group-by objects), ``pandas_ta`` and ``strategies.*``,
with their bases from those libraries (``pd.Series.ewm = ...``, ``NDFrame.rolling = ...``,
a member added to ``Strategy``); about 6 ms a file. pairpilot's own classes in ``bot`` are
not (hundreds; a strategy computes with none of them). Attributes are compared by identity,
so a module-level list or dict changed in place is not seen. A submodule imported by the file
(``import pandas_ta.momentum`` adds ``momentum`` to its package) is not a change.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType

WITH_SUBMODULES = ("strategies", "bot", "pandas_ta")
TOP_LEVEL_ONLY = ("pandas", "numpy")

CLASS_MODULES = ("pandas", "pandas.api.typing", "pandas_ta")  # and every strategies.* module
CLASS_LIBRARIES = ("pandas", "pandas_ta", "strategies", "numpy")
_IMMUTABLE_TYPE = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE: a C type whose attributes cannot be set

type Modules = dict[str, tuple[ModuleType, dict[str, object]]]
type Classes = list[tuple[type, list[str], list[object]]]


@dataclass(frozen=True, slots=True)
class Snapshot:
    modules: Modules
    classes: Classes


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
    return any(_within(name, root) for root in WITH_SUBMODULES)


def snapshot() -> Snapshot:
    """The watched modules loaded now, each with its public attributes, and the watched
    classes with theirs."""
    modules: Modules = {}
    for name, module in list(sys.modules.items()):
        if isinstance(module, ModuleType) and _watched(name):
            public = {k: v for k, v in vars(module).items() if not k.startswith("_")}
            modules[name] = (module, public)
    classes = [(cls, list(vars(cls)), list(vars(cls).values())) for cls in _watched_classes()]
    return Snapshot(modules, classes)


def _watched_classes() -> list[type]:
    named = [sys.modules.get(name) for name in CLASS_MODULES]
    named += [module for name, module in list(sys.modules.items()) if _within(name, "strategies")]
    found: dict[int, type] = {}
    for module in named:
        if not isinstance(module, ModuleType):
            continue
        for key, value in list(vars(module).items()):
            if isinstance(value, type) and not key.startswith("_"):
                for cls in value.__mro__:
                    if _mutable_library_class(cls):
                        found[id(cls)] = cls
    return list(found.values())


def _mutable_library_class(cls: type) -> bool:
    library = cls.__module__.split(".")[0]
    return not cls.__flags__ & _IMMUTABLE_TYPE and library in CLASS_LIBRARIES


def _within(name: str, root: str) -> bool:
    return name == root or name.startswith(f"{root}.")


def undo_changes(before: Snapshot) -> list[str]:
    """Every watched name changed since ``before`` (``pandas_ta.ema``), each put back."""
    changed: list[str] = []
    for name, (module, attributes) in before.modules.items():
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
    for cls, keys, values in before.classes:
        if not _same(cls, keys, values):
            changed += _put_back(cls, dict(zip(keys, values, strict=True)))
    return sorted(changed)


def _same(cls: type, keys: list[str], values: list[object]) -> bool:
    now = vars(cls)
    return (
        len(now) == len(keys) and all(map(operator.is_, now.values(), values)) and list(now) == keys
    )


def _put_back(cls: type, attributes: dict[str, object]) -> list[str]:
    where = f"{cls.__module__}.{cls.__qualname__}"
    now = dict(vars(cls))
    changed = [
        f"{where}.{key}"
        for key in now.keys() | attributes.keys()
        if key not in now or key not in attributes or now[key] is not attributes[key]
    ]
    for key in now.keys() - attributes.keys():
        delattr(cls, key)
    for key, value in attributes.items():
        if key not in now or now[key] is not value:
            setattr(cls, key, value)
    return changed


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
