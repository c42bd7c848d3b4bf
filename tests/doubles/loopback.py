"""Serving a test double's aiohttp app on a free loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web


@asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """Yields the base URL (http://127.0.0.1:PORT); the server stops on exit."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]  # the one socket's (host, port): the port the OS picked
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
