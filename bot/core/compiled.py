"""numba's ``njit`` for typed code: a compiled function keeps its Python signature, so the type
checker sees the rules and the kernel as the functions they are (numba ships no types).

Compiled in nopython mode with the GIL released (``nogil``): a backtest or a sweep's set run
in a worker thread leaves the event loop serving (/halt, the tick, replies) meanwhile, where
holding the GIL for the kernel's whole run stalled it for seconds. Safe: nopython code
touches no Python object, and the arrays a run reads are built for it and written by nobody
else while it runs.

Cached on disk beside the function's module. numba's cache keys each copy on the function's
bytecode and its file's timestamp, not on the options it was compiled with: ``_Cache`` adds
``OPTIONS`` to the key, so a change to them here is never served a copy compiled under the
old ones. numba's cache does not see changes to the compiled functions or constants a
function uses from other files either (after a ``git pull`` that changed a rule in
bot/risk/fills.py, the cached kernel kept the old one): ``_Cache`` also keys each copy on the
source of its module and of every bot module it imports from, followed on through the modules
that hold compiled functions themselves (``sources``), so such a change compiles anew.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
from numba.core.caching import FunctionCache

OPTIONS: dict[str, bool] = {"nogil": True}  # on top of njit's nopython mode


class _Cache(FunctionCache):  # type: ignore[misc]  # numba ships no types
    """numba's on-disk cache of a function, each copy keyed on ``OPTIONS`` too."""

    def _index_key(self, sig: Any, codegen: Any) -> tuple[Any, ...]:
        key: tuple[Any, ...] = super()._index_key(sig, codegen)
        return (*key, tuple(sorted(OPTIONS.items())), sources(self._py_func.__module__))


_IMPORTED = re.compile(r"^from (bot\.[\w.]+) import", re.MULTILINE)


@functools.cache
def sources(module: str) -> str:
    """A digest of ``module``'s source and of the bot modules it imports from, followed on
    through those that hold compiled functions (whose code a compiled caller takes in)."""
    digest = hashlib.blake2b(digest_size=16)
    seen: set[str] = set()
    waiting = [module]
    while waiting:
        name = waiting.pop()
        spec = importlib.util.find_spec(name)
        if name in seen or spec is None or spec.origin is None:
            continue
        seen.add(name)
        text = Path(spec.origin).read_text()
        digest.update(name.encode() + b"\0" + text.encode())
        if name == module or "@compiled" in text:
            waiting += _IMPORTED.findall(text)
    return digest.hexdigest()


def compiled[Function: Callable[..., object]](function: Function) -> Function:
    """``function`` compiled by numba and cached."""
    dispatcher = numba.njit(**OPTIONS)(function)
    dispatcher._cache = _Cache(function)  # as cache=True sets it, keyed on OPTIONS too
    typed: Function = dispatcher
    return typed
