"""`run_service`: the trading service's one entry, over either serve loop.

It readies and holds the data directory and serves /metrics, then runs the loop of the
configured market data: bot.app.bootstrap's on replay files, bot.app.exchange_service's on an
exchange. It sits above both, so the exchange loop can take its builders from
bot.app.bootstrap without a cycle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bot.app.bootstrap import serve_replay
from bot.app.config import Secrets, Settings
from bot.app.data_dir_lock import exclusive_use
from bot.app.gauges import restore_gauges_early
from bot.app.notifications import ChatFactory
from bot.core.errors import ConfigError
from bot.ops.data_dir import prepare as prepare_data_dir
from bot.ops.telemetry import serving


async def run_service(
    settings: Settings,
    secrets: Secrets,
    *,
    stop: asyncio.Event,
    write: Callable[[str], object] = print,
    chat: ChatFactory | None = None,
) -> None:
    """Run until ``stop`` is set or the replay ends; the tick in progress finishes first.
    ``chat``: the chat front end (Telegram); without it alerts go to ``write``."""
    if settings.mode == "live" and settings.market_data.source != "exchange":
        raise ConfigError(
            "mode = 'live' trades on exchange candles: set market_data.source = 'exchange'"
        )
    prepare_data_dir(settings.data_dir)
    await restore_gauges_early(settings.database_path)
    with exclusive_use(settings.data_dir), serving(settings.metrics.port, settings.metrics.listen):
        if settings.market_data.source == "exchange":
            # imported here: ccxt takes seconds to import, and replay and the demo never use it
            from bot.app.exchange_service import serve_on_exchange

            await serve_on_exchange(settings, secrets, stop, write, chat)
            return
        await serve_replay(settings, stop, write, chat)
