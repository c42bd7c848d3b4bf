"""Found by a hostile review (session 22): /sweep portfolio's words from a hostile user, through
the real python-telegram-bot client and the Bot API emulator: each bad word gets one clear
line, and nothing is stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_telegram_portfolio_sweep import _config, _stored_sweeps
from tests.rigs.chat_rig import ADMIN, chat_stack

PAIRS: list[dict[str, object]] = [
    {"pair": "BTC/USDT", "capital_share": 0.5, "params": {"fast": 5, "slow": 40}},
    {"pair": "ETH/USDT", "capital_share": 0.5, "params": {"fast": 5, "slow": 40}},
]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        # inf passes `balance > 0`: the first set's metrics hold None, and score() raises
        # TypeError ("/sweep failed unexpectedly")
        ("/sweep portfolio ema_cross fast=4:8:2 balance=inf", "balance"),
        # 1e308 passes too: 96 trades, every set "return +0.0%" (the kernel overflows),
        # stored as a sweep with a receipt
        ("/sweep portfolio ema_cross fast=4:8:2 balance=1e308", "balance"),
        # the same parameter twice: the later range silently wins (1 set run, stored)
        ("/sweep portfolio ema_cross fast=4:8:2 fast=5", "fast"),
    ],
    ids=["balance-inf", "balance-1e308", "a-parameter-twice"],
)
async def test_a_hostile_sweep_word_gets_a_clear_refusal_and_stores_nothing(
    tmp_path: Path, text: str, named: str
) -> None:
    async with chat_stack(tmp_path, _config(tmp_path, PAIRS)) as chat:
        for _ in range(24 * 25):
            await chat.trading.driver.step()
        answer = await chat.ask(ADMIN, text)
        for _ in range(600):  # a sweep that ran ends its progress message with its outcome
            if not answer.startswith("Sweep") or "results" in answer:
                break
            await chat.emulator.quiet(0.1)
            answer = [m.text for m in chat.emulator.to(ADMIN) if not m.deleted][-1]
        assert answer.startswith("⚠️"), answer
        assert named in answer, answer
        assert await _stored_sweeps(chat) == 0


async def test_a_portfolio_sweep_runs_every_set_the_configured_pairs_accept(
    tmp_path: Path,
) -> None:
    """The pairs run ema_cross with slow=40, so fast=20..35 are all sets they accept, and the
    portfolio runs each on top of the pairs' configured parameters. The sets are filtered
    beforehand against the strategy's defaults (slow=26) instead: fast=30 and fast=35 are
    dropped without a word, and the reply says 2 results."""
    async with chat_stack(tmp_path, _config(tmp_path, PAIRS)) as chat:
        for _ in range(24 * 25):
            await chat.trading.driver.step()
        before = len(chat.emulator.to(ADMIN))
        chat.emulator.say(ADMIN, "/sweep portfolio ema_cross fast=20:35:5")
        progress = await chat.reply(ADMIN, after=before)
        for _ in range(600):
            if "results" in progress.text or progress.text.startswith(("⚠️", "❌")):
                break
            await chat.emulator.quiet(0.1)
        assert progress.text.startswith("Sweep 1: 4 results"), progress.text
        rows = await chat.db.fetch_all("SELECT params FROM sweep_results")
        assert len(rows) == 4
