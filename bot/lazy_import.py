"""Heavy modules loaded on first use without holding the event loop."""

from __future__ import annotations

import asyncio
import importlib
import sys


async def import_off_loop(*modules: str) -> None:
    """Import ``modules`` in a worker thread (those already loaded cost nothing).

    The first chart, backtest or sweep loads matplotlib, numba or Dask: 0.3-0.5 s of work that,
    done by an import statement on the event loop, would stall every other command, the ticks and
    the alert drain meanwhile. After this the caller's own import statement is a lookup.
    """
    for module in modules:
        if module not in sys.modules:
            await asyncio.to_thread(importlib.import_module, module)
