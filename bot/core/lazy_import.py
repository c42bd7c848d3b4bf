"""Heavy modules loaded on first use without holding the event loop."""

from __future__ import annotations

import asyncio
import importlib
import sys


async def import_off_loop(*modules: str) -> None:
    """Import ``modules`` in a worker thread (those already loaded cost nothing).

    The first chart, backtest or sweep loads matplotlib, numba or Dask. Done by an import
    statement on the event loop, that work would stall every other command, the ticks and the
    alert drain meanwhile (measured: bench/RESULTS.md). After this the caller's own import
    statement is a lookup.
    """
    for module in modules:
        if module not in sys.modules:
            await asyncio.to_thread(importlib.import_module, module)
