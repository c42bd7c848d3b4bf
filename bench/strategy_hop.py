"""What running a tick's strategy calls in a worker thread adds per pair and tick.

    .venv/bin/python -m bench.strategy_hop [--rounds 300]

EMA 12/26 on the bundled BTC/USDT sample (the window a live tick hands it): the tick's calls
(``strategy_calls.decision``: exit policy, signal, ATR) on the event loop, and through
``StrategyThreads.call`` (one thread started per call, its answer handed back to the loop),
and the ``history`` read alike. A fresh frame each round, as each tick fetches one (so the
remembered signals are computed each time).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from functools import partial

from bench.paths import SAMPLE_DATA
from bot.market.candle_files import read_candle_file
from bot.trading import strategy_calls as calls
from bot.trading.strategy_thread import StrategyThreads
from strategies import build_strategy

PAIR = "BTC/USDT"


async def timed(rounds: int, *ways: Callable[[], Awaitable[object]]) -> list[float]:
    """Median microseconds of each of ``ways``, taken in turn each round (a busy machine's
    noise falls on all alike)."""
    spent: list[list[float]] = [[] for _ in ways]
    for _ in range(rounds):
        for way, times in zip(ways, spent, strict=True):
            started = time.perf_counter()
            await way()
            times.append(time.perf_counter() - started)
    return [statistics.median(times) * 1e6 for times in spent]


async def measure(rounds: int) -> None:
    candles = read_candle_file(SAMPLE_DATA / "BTC_USDT-1h.csv.gz").iloc[-700:]
    strategy = build_strategy("ema_cross", {"atr_stop": 2.0})
    threads = StrategyThreads(30.0)

    async def on_loop() -> object:
        return calls.decision(PAIR, strategy, candles.copy())

    async def in_thread() -> object:
        work = partial(calls.decision, PAIR, strategy, candles.copy())
        return await threads.call(PAIR, strategy, "the candle", work)

    async def history_on_loop() -> object:
        return calls.history(PAIR, strategy)

    async def history_in_thread() -> object:
        return await threads.call(
            PAIR, strategy, "its history", partial(calls.history, PAIR, strategy)
        )

    await timed(20, on_loop, in_thread)  # warm: imports, numba
    direct, hopped = await timed(rounds, on_loop, in_thread)
    read, read_hopped = await timed(rounds, history_on_loop, history_in_thread)
    print(f"decision (policy, signal, ATR), median of {rounds}:")
    print(f"  on the loop    {direct:9.1f} us")
    print(f"  in a thread    {hopped:9.1f} us  (+{hopped - direct:.1f} us)")
    print("history read:")
    print(f"  on the loop    {read:9.1f} us")
    print(f"  in a thread    {read_hopped:9.1f} us  (+{read_hopped - read:.1f} us)")
    print(f"added per pair per tick: {hopped - direct + read_hopped - read:.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(measure(args.rounds))


if __name__ == "__main__":
    main()
