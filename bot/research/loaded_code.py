"""The source hash of each strategy class as it was when it was loaded.

``source_hash`` (bot/research/receipts.py) reads the strategy's file now. After a /reload the
file may hold newer code than a running pair's class, or be gone: asking the file would name
code that pair does not run. So the loader pins each class's hash as it imports it, and what
asks which code an object runs (/pairs, /reload's comparison) reads the pin.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from bot.research.receipts import source_hash

if TYPE_CHECKING:
    from strategies import Strategy

_PINNED: WeakKeyDictionary[type[Strategy], str] = WeakKeyDictionary()
UNKNOWN = "unknown"  # a class never pinned whose file cannot be read any more


def pin(cls: type[Strategy]) -> str:
    """``cls``'s source hash, taken now unless it was pinned before; kept while ``cls`` lives."""
    pinned = _PINNED.get(cls)
    if pinned is None:
        pinned = _PINNED[cls] = source_hash(cls)
    return pinned


def loaded_hash(cls: type[Strategy]) -> str:
    """The source hash of the code ``cls`` was built from (its pin; else hashed now, or
    ``UNKNOWN`` when its file is gone)."""
    try:
        return pin(cls)
    except (OSError, KeyError):  # file removed, or its module dropped from sys.modules
        return UNKNOWN


@dataclass(frozen=True, slots=True)
class RunningCode:
    """A running strategy object whose code is not the registry's now: ``version`` the first
    8 characters of the hash it runs; ``state`` newer (the registry has another version),
    gone (its file is gone) or unloaded (its file is there but no longer loads)."""

    version: str
    state: str


NEWER, GONE, UNLOADED = "newer", "gone", "unloaded"


def behind(running: Strategy, registry: Mapping[str, type[Strategy]]) -> RunningCode | None:
    """How ``running`` differs from ``registry``'s strategy of its name; None: it runs the
    registry's code."""
    cls = type(running)
    version = loaded_hash(cls)
    current = registry.get(running.name)
    if current is not None:
        return None if loaded_hash(current) == version else RunningCode(version[:8], NEWER)
    file = getattr(sys.modules.get(cls.__module__), "__file__", None)
    gone = file is None or not Path(file).exists()
    return RunningCode(version[:8], GONE if gone else UNLOADED)
