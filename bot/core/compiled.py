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
function uses from other files either: after changing those, clear the cache (the ``*.nbi``
and ``*.nbc`` files in ``__pycache__``) or the callers keep their old copies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
from numba.core.caching import FunctionCache

OPTIONS: dict[str, bool] = {"nogil": True}  # on top of njit's nopython mode


class _Cache(FunctionCache):  # type: ignore[misc]  # numba ships no types
    """numba's on-disk cache of a function, each copy keyed on ``OPTIONS`` too."""

    def _index_key(self, sig: Any, codegen: Any) -> tuple[Any, ...]:
        key: tuple[Any, ...] = super()._index_key(sig, codegen)
        return (*key, tuple(sorted(OPTIONS.items())))


def compiled[Function: Callable[..., object]](function: Function) -> Function:
    """``function`` compiled by numba and cached."""
    dispatcher = numba.njit(**OPTIONS)(function)
    dispatcher._cache = _Cache(function)  # as cache=True sets it, keyed on OPTIONS too
    typed: Function = dispatcher
    return typed
