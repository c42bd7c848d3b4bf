"""/check STRATEGY [PAIR] [TIMEFRAME] [key=value ...] from the chat (issue 18): the strategy
check run off the event loop on the service's candles, its verdict answered and stored by
source hash, through the real PTB client, the Telegram emulator and a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.app.config import Settings, load_settings
from bot.cli.main import main
from bot.market.candle_files import read_candle_file
from bot.research.receipts import candle_hash, source_hash
from strategies import build_strategy
from tests.integration.test_chat_strategy_status import blocks
from tests.integration.test_cli import SAMPLE
from tests.integration.test_strategy_check_cli import user_fixtures
from tests.rigs.chat_rig import ADMIN, TRADER, VIEWER, Chat, chat_stack
from tests.strategy_fixtures import NextClose

# A strategy that decides only once the test says go: a check of it runs until then.
GATED = """
import threading
from typing import ClassVar

import pandas as pd

from strategies.base import ParamSpec, Strategy, crossings

GO = threading.Event()


class Gated(Strategy):
    name = "gated"
    description = "waits for the test before it decides"
    param_specs: ClassVar[tuple[ParamSpec, ...]] = ()

    @property
    def warmup(self) -> int:
        return 11

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        GO.wait(30)
        close = candles["close"]
        return crossings(close, close.rolling(10).mean())
"""
SMALL = "fast=3 slow=8"  # ema_cross with a short live history: few candles to check


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Settings]:
    """A replay of the BTC/USDT sample, BTC/USDT running ema_cross, the misbehaving fixtures
    and GATED in the strategies folder."""
    monkeypatch.chdir(tmp_path)
    folder = user_fixtures(tmp_path).parent
    (folder / "gated.py").write_text(GATED, encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(
        f'data_dir = "data"\n[market_data]\nsource = "replay"\n'
        f'[market_data.replay_files]\n"BTC/USDT" = "{SAMPLE}"\n'
        '[[pairs]]\npair = "BTC/USDT"\nstrategy = "ema_cross"\ncapital_share = 0.5\n',
        encoding="utf-8",
    )
    return config, load_settings(config, None)


def _stored(tmp_path: Path) -> list[sqlite3.Row]:
    with sqlite3.connect(tmp_path / "data" / "pairpilot.sqlite") as connection:
        connection.row_factory = sqlite3.Row
        return list(connection.execute("SELECT * FROM strategy_checks ORDER BY id"))


async def _answer(chat: Chat, user: int, text: str) -> str:
    """The reply ``text`` ends with (its progress message edited into the answer, or after)."""
    before = len(chat.emulator.to(user))
    chat.emulator.say(user, text)
    for _ in range(3000):
        shown = [m.text for m in chat.emulator.to(user)[before:] if not m.deleted]
        done = [t for t in shown if not t.startswith(("Check ", "⏳"))]  # not its progress
        if done:
            return done[-1]
        await asyncio.sleep(0.01)
    raise AssertionError(f"no answer to {text}: {shown}")


async def test_check_of_a_built_in_passes_is_stored_and_strategies_says_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, settings = _config(tmp_path, monkeypatch)
    async with chat_stack(tmp_path, settings) as chat:
        chat.trading.clock.advance(timedelta(hours=700))  # the replay's candles so far
        reply = await _answer(chat, TRADER, f"/check ema_cross {SMALL}")
        lines = reply.splitlines()
        assert lines[0] == "✅ ema_cross on BTC/USDT 1h: PASSED", reply  # the running pair's
        for check in ("bad output", "determinism", "look-ahead", "warm-up", "cost"):
            (line,) = [line for line in lines if line.startswith(f"{check}: ")]
            assert line.startswith(f"{check}: ok, "), line
        assert " us per candle" in reply
        (row,) = _stored(tmp_path)
        strategy = build_strategy("ema_cross", {"fast": 3, "slow": 8})
        digest = source_hash(strategy)
        assert row["source_hash"] == digest
        assert lines[-1] == f"stored as check {row['id']} for source hash {digest[:8]}"
        assert json.loads(row["params"]) == strategy.params
        assert (row["pair"], row["timeframe"], row["passed"]) == ("BTC/USDT", "1h", 1)
        assert row["candles"] == 701  # every candle the replay has closed so far
        today = f"{datetime.now(UTC):%Y-%m-%d}"
        listed = blocks(await chat.ask(VIEWER, "/strategies"))
        assert listed["ema_cross"][0].startswith(
            f"built-in; check: passed {today} (fast=3,slow=8; BTC/USDT 1h, "
        )
        assert max(len(line) for line in (lines[0], lines[1], lines[-1])) <= 60, reply


async def test_check_of_a_peeking_strategy_fails_naming_the_candle_as_the_cli_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config, settings = _config(tmp_path, monkeypatch)
    async with chat_stack(tmp_path, settings) as chat:
        chat.trading.clock.advance(timedelta(hours=400))
        reply = await _answer(chat, TRADER, f"/check {NextClose.name}")
    lines = reply.splitlines()
    # not running: the config's first pair, at its timeframe
    assert lines[0] == f"❌ {NextClose.name} on BTC/USDT 1h: FAILED (look-ahead)", reply
    (lookahead,) = [line for line in lines if line.startswith("look-ahead: ")]
    assert lookahead.startswith("look-ahead: FAIL, the signal at candle ")
    assert " UTC) is " in lookahead
    (chat_row,) = _stored(tmp_path)
    assert chat_row["passed"] == 0
    # the CLI on the very candles the chat checked: the same verdicts, figure for figure
    candles = read_candle_file(SAMPLE)
    stamps = candles["timestamp"]
    same = candles[(stamps >= chat_row["first_ms"]) & (stamps <= chat_row["last_ms"])]
    assert candle_hash(same.reset_index(drop=True)) == chat_row["candle_hash"]
    file = tmp_path / "BTC_USDT-1h.csv"
    same.to_csv(file, index=False)
    command = ["strategy", "check", NextClose.name, "--data", str(file), "--config", str(config)]
    assert await asyncio.to_thread(main, command) == 1
    capsys.readouterr()
    _, cli_row = _stored(tmp_path)
    chat_body, cli_body = json.loads(chat_row["body"]), json.loads(cli_row["body"])
    assert cli_body["candle_hash"] == chat_body["candle_hash"]
    assert cli_body["source_hash"] == chat_body["source_hash"]
    assert cli_body["verdicts"][:4] == chat_body["verdicts"][:4]  # all but the time taken
    for verdict in chat_body["verdicts"][:4]:
        mark = "ok" if verdict["passed"] else "FAIL"
        assert f"{verdict['check']}: {mark}, {verdict['detail']}" in lines


async def test_halt_and_status_answer_while_a_check_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, settings = _config(tmp_path, monkeypatch)
    async with chat_stack(tmp_path, settings) as chat:
        go = sys.modules["pairpilot_user_strategies.gated"].GO
        chat.trading.clock.advance(timedelta(hours=300))
        before = len(chat.emulator.to(ADMIN))
        chat.emulator.say(ADMIN, "/check gated")
        try:
            for _ in range(1000):  # its progress: the check has begun
                if any("checking" in m.text for m in chat.emulator.to(ADMIN)[before:]):
                    break
                await asyncio.sleep(0.01)
            assert "Trading halted" in await chat.ask(ADMIN, "/halt")
            assert "BTC/USDT" in await chat.ask(ADMIN, "/status")
            assert await chat.trading.engine.guard.halted()
            assert not any("PASSED" in m.text for m in chat.emulator.to(ADMIN))  # still running
            refused = await chat.ask(TRADER, "/backtest BTCUSDT ema_cross")  # one heavy job
            assert refused.startswith("⚠️ a backtest is running (check gated on BTC/USDT 1h)")
        finally:
            go.set()
        for _ in range(3000):
            if any("gated on BTC/USDT 1h: PASSED" in m.text for m in chat.emulator.to(ADMIN)):
                break
            await asyncio.sleep(0.01)
        assert any("gated on BTC/USDT 1h: PASSED" in m.text for m in chat.emulator.to(ADMIN))


BAD = (
    ("", "⚠️ usage: /check STRATEGY [PAIR] [TIMEFRAME] [key=value ...]"),
    ("nosuch", "⚠️ unknown strategy 'nosuch'"),
    ("ema_cross fast=1", "is out of bounds: expected 2 <= fast <= 200"),
    ("ema_cross fast=5 fast=6", "⚠️ fast is given twice (5 and 6): give it once"),
    ("ema_cross fast=", "⚠️ 'fast=': expected key=value"),
    ("ema_cross DOGEUSDT", "⚠️ DOGE/USDT has no replay data"),
    ("ema_cross BTCUSDT 1h 30", "⚠️ unexpected '30'"),
    ("ema_cross BTCUSDT 7x", "⚠️ "),
    ("ema_cross", "too little data to check ema_cross: 101 candles, it needs at least 1620"),
)


async def test_bad_check_input_is_one_clear_line_and_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, settings = _config(tmp_path, monkeypatch)
    async with chat_stack(tmp_path, settings) as chat:
        chat.trading.clock.advance(timedelta(hours=100))
        for words, answer in BAD:
            reply = await _answer(chat, TRADER, f"/check {words}".strip())
            assert answer in reply, (words, reply)
            assert len(reply.splitlines()) == 1, (words, reply)
        assert _stored(tmp_path) == []
        assert "/check STRATEGY [PAIR] [TIMEFRAME]" in await chat.ask(VIEWER, "/help check")
        (line,) = [t for t in (await chat.ask(VIEWER, "/help")).splitlines() if "/check" in t]
        assert len(line) <= 60, line
        assert "needs the trader role" in await chat.ask(VIEWER, "/check ema_cross")
