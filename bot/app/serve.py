"""`run_service`: the trading service's one entry, on replay files or on an exchange.

It readies and holds the data directory and serves /metrics, then runs bot.app.run's one serve
loop on the configured market data, with the configured service's options unless given others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bot.app.config import Settings
from bot.app.data_dir_lock import exclusive_use
from bot.app.gauges import restore_gauges_early
from bot.app.notifications import ChatFactory
from bot.app.run import ServeOptions, serve_on_exchange, serve_replay
from bot.app.secret_values import Secrets
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
    options: ServeOptions | None = None,
) -> None:
    """Run until ``stop`` is set or the replay ends; the tick in progress finishes first.
    ``chat``: the chat front end (Telegram); without it alerts go to ``write``. ``options``:
    the jobs besides trading (default: ``ServeOptions.of(settings)``)."""
    if settings.mode == "live" and settings.market_data.source != "exchange":
        raise ConfigError(
            "mode = 'live' trades on exchange candles: set market_data.source = 'exchange'"
        )
    options = ServeOptions.of(settings) if options is None else options
    prepare_data_dir(settings.data_dir)
    await restore_gauges_early(settings.database_path)
    with exclusive_use(settings.data_dir), serving(settings.metrics.port, settings.metrics.listen):
        if settings.market_data.source == "exchange":
            await serve_on_exchange(settings, secrets, options, stop, write, chat)
            return
        await serve_replay(settings, options, stop, write, chat)
