"""The chat's /strategies lists the user's strategies too, each with its origin and its stored
check (issue 18), through the real PTB client and the Telegram emulator on a real database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app.config import load_settings
from bot.cli.main import main
from tests.integration.test_cli import SAMPLE
from tests.integration.test_strategy_check_cli import user_fixtures
from tests.integration.test_user_strategies import MINE, installed
from tests.rigs.chat_rig import ADMIN, VIEWER, chat_stack
from tests.rigs.sample_head import sample_head
from tests.strategy_fixtures import ShortWarmup


def blocks(reply: str) -> dict[str, list[str]]:
    """Each strategy's lines under its name, by name."""
    found: dict[str, list[str]] = {}
    last = ""
    for line in reply.splitlines():
        if line.startswith("  "):
            found[last].append(line.strip())
        else:
            last = line
            found[last] = []
    return found


async def test_strategies_shows_origin_and_check_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    site = installed(
        tmp_path / "site",
        "ep_status",
        MINE.format(name="packaged"),
        "[pairpilot.strategies]\npackaged = ep_status:Mine\n",
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.chdir(tmp_path)
    user_fixtures(tmp_path)
    mine = tmp_path / "user_strategies" / "mine.py"
    mine.write_text(MINE.format(name="mine"), encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(
        f'data_dir = "data"\n[market_data]\nsource = "replay"\n'
        f'[market_data.replay_files]\n"BTC/USDT" = "{SAMPLE}"\n'
        '[[pairs]]\npair = "BTC/USDT"\nstrategy = "ema_cross"\ncapital_share = 0.5\n',
        encoding="utf-8",
    )
    head = str(sample_head(tmp_path / "candles"))  # what is listed, not the check, is the point
    check = ["strategy", "check", "--data", head, "--config", str(config)]
    # main() runs its own event loop: in a thread beside this test's
    assert await asyncio.to_thread(main, [*check[:2], "bollinger_breakout", *check[2:]]) == 0
    assert await asyncio.to_thread(main, [*check[:2], ShortWarmup.name, *check[2:]]) == 1
    assert await asyncio.to_thread(main, [*check[:2], "mine", *check[2:]]) == 0
    capsys.readouterr()
    mine.write_text(mine.read_text() + "\n# edited after its check\n")
    today = f"{datetime.now(UTC):%Y-%m-%d}"
    settings = load_settings(config, None)

    async with chat_stack(tmp_path, settings) as chat:
        reply = await chat.ask(VIEWER, "/strategies")
        assert max(len(line) for line in reply.splitlines()) <= 100
        listed = blocks(reply)
        assert listed["bollinger_breakout"][0].startswith(
            f"built-in; check: passed {today} (defaults; BTC/USDT 1h, "
        )
        assert listed[ShortWarmup.name][0] == (
            f"file fixtures.py; check: FAILED (warm-up, defaults) {today}: "
            "sticks until the source changes"
        )
        assert listed["mine"][:2] == [
            "file mine.py; check: changed since its check",
            "length=24 (2 to 300)",
        ]
        assert listed["packaged"][0].startswith("entry point ep_status:Mine (distribution ")
        assert listed["packaged"][0].endswith("; check: not checked")
        assert listed["rsi"][0] == "built-in; check: not checked"
        assert reply == await chat.ask(ADMIN, "/strategies")
