"""Generated chat input through the real handlers: always a reply, never a crash, and a refused
command changes nothing.

Hypothesis drives a synchronous test, so the chat stack runs on its own event loop in a
thread for the whole module (built once; each example is one message and its reply).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Coroutine, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.command_table import COMMANDS
from tests.rigs.chat_rig import ADMIN, TRADER, Chat, chat_stack

NASTY = [
    "<b>",
    "</i>",
    "&amp;",
    "'; DROP TABLE orders; --",
    "1e309",
    "-1",
    "0",
    "nan",
    "inf",
    "-inf",
    "9" * 40,
    "BTC/USDT",
    "btcusdt",
    "ETH/USDT",
    "ema_cross",
    "fast=0",
    "share=-1",
    "set",
    "max_drawdown",
    "0.5",
    "\u202e",
    "\x00",
    "😀",
    "../../etc/passwd",
    "1h",
    "7x",
    "all",
    "stop_loss=2",
    "fast=1e9",
]
WORDS = st.one_of(
    st.sampled_from(NASTY),
    st.text(min_size=1, max_size=30).filter(
        lambda word: word.strip() and not any(c.isspace() for c in word)
    ),
)
# Confirmations are left out: they are buttons, tested on their own.
NAMES = [name for name, command in COMMANDS.items() if not command.confirm]
TEXTS = st.builds(
    lambda name, words: " ".join([f"/{name}", *words]),
    st.one_of(st.sampled_from(NAMES), st.from_regex(r"[a-z_]{1,12}", fullmatch=True)),
    st.lists(WORDS, max_size=6),
)


class Rig:
    """The chat stack on a loop in a background thread."""

    def __init__(self, tmp_path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self._stack = AsyncExitStack()
        self.chat: Chat = self.call(self._stack.enter_async_context(chat_stack(tmp_path)))

    def call(self, coroutine: Coroutine[Any, Any, Any], seconds: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(seconds)

    def close(self) -> None:
        self.call(self._stack.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    made = Rig(tmp_path_factory.mktemp("fuzz"))
    try:
        yield made
    finally:
        made.close()


async def snapshot(chat: Chat) -> tuple[Any, ...]:
    """Everything a command could change."""
    engine, service = chat.trading.engine, chat.trading.service
    return (
        sorted(
            (run.pair, run.state.value, run.capital_share, str(run.params))
            for run in service.runs()
        ),
        await engine.guard.halted(),
        dataclasses.asdict(engine.guard.limits),
        engine.portfolio.cash,
        [(p.pair, p.amount) for p in engine.portfolio.positions()],
    )


async def exchange(chat: Chat, user: int, text: str) -> tuple[str, tuple[Any, ...], Any]:
    before = await snapshot(chat)
    reply = await chat.ask(user, text)
    return reply, before, await snapshot(chat)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS, as_admin=st.booleans())
def test_any_command_text_gets_a_reply_and_a_refusal_changes_nothing(
    rig: Rig, text: str, as_admin: bool
) -> None:
    reply, before, after = rig.call(exchange(rig.chat, ADMIN if as_admin else TRADER, text))
    assert reply.strip()
    assert "failed unexpectedly" not in reply, (text, reply)
    if reply.startswith(("⚠️", "❌")) or "needs the" in reply:
        assert after == before, (text, reply)
