"""numba's ``njit`` for typed code: a compiled function keeps its Python signature, so the type
checker sees the rules and the kernel as the functions they are (numba ships no types).

Compiled in nopython mode and cached on disk beside the function's module. numba's cache sees
changes to the function's own file only, not to the compiled functions or constants it uses
from other files: after changing those, clear the cache (the ``*.nbi`` and ``*.nbc`` files in
``__pycache__``) or the callers keep their old copies.
"""

from __future__ import annotations

from collections.abc import Callable

import numba


def compiled[Function: Callable[..., object]](function: Function) -> Function:
    """``function`` compiled by numba and cached."""
    dispatcher: Function = numba.njit(cache=True)(function)
    return dispatcher
