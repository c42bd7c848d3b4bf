"""The mark that tells the paper twin's books from the live ones.

The twin's file (``twin.sqlite``) has the live database's schema, so nothing in its tables
says whose books they are; restored as the live database it would make the twin's paper
positions the ones the service believes it holds on the exchange. SQLite's header keeps an
application id for this: the twin's file carries ``TWIN_APPLICATION_ID`` (set when the twin
opens it, and on every backup's copy of it), the live database never does.
"""

from __future__ import annotations

import aiosqlite

TWIN_APPLICATION_ID = 0x50505457  # "PPTW": pairpilot's paper twin


async def mark_twin(connection: aiosqlite.Connection) -> None:
    """Mark the twin's books as such; a file marked already is not written."""
    async with connection.execute("PRAGMA application_id") as cursor:
        row = await cursor.fetchone()
    if row is None or row[0] != TWIN_APPLICATION_ID:
        await connection.execute(f"PRAGMA application_id = {TWIN_APPLICATION_ID}")
