"""`pairpilot run` with its candle-close ticks every second instead of at each close, so a test
can send a real SIGTERM into a tick caught in an exchange outage without waiting for one.

    python -m tests.rigs.slow_tick_child run --config CONFIG
"""

from __future__ import annotations

import sys

from apscheduler.triggers.interval import IntervalTrigger

import bot.ops.scheduler
from bot.cli.main import main


def every_second(timeframe_seconds: int, delay: float) -> IntervalTrigger:
    return IntervalTrigger(seconds=1, timezone="UTC")


if __name__ == "__main__":
    bot.ops.scheduler.candle_close_trigger = every_second
    sys.exit(main(sys.argv[1:]))
