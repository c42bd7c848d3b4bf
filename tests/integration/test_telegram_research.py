"""Charts, backtests and sweeps from chat, through the real python-telegram-bot client and
the Bot API emulator: /pnl, /backtest, /chart and /sweep reply with PNGs that fit a phone."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.rigs.chat_rig import ADMIN, TRADER, VIEWER, chat_stack


async def test_pnl_and_backtest_reply_with_charts_that_fit_a_phone(tmp_path: Path) -> None:
    async with chat_stack(tmp_path) as chat:
        refused = await chat.ask(VIEWER, "/pnl")
        assert "not enough equity recorded" in refused
        for _ in range(100):
            await chat.trading.driver.step()
        photo = await chat.sent_back(VIEWER, "/pnl all")
        assert photo.photo is not None
        assert len(photo.photo) <= 300_000
        assert photo.photo.startswith(b"\x89PNG")
        assert "max drawdown" in photo.text
        assert "period '2w'" in await chat.ask(VIEWER, "/pnl 2w")
        before = len(chat.emulator.to(TRADER))
        chat.emulator.say(TRADER, "/backtest btcusdt ema_cross 1h 20 stop_loss=0.02")
        chat.emulator.say(TRADER, "/backtest ETH/USDT sma_cross")
        progress = await chat.reply(TRADER, after=before)
        for _ in range(300):  # the backtest runs beside the chat's next commands
            if any(m.photo for m in chat.emulator.to(TRADER)[before:]) and progress.text == "Done.":
                break
            await chat.emulator.quiet(0.1)
        replies = chat.emulator.to(TRADER)[before:]
        charts = [m for m in replies if m.photo is not None]
        assert len(charts) == 1  # the second was refused while the first ran
        assert any("a backtest is running (BTC/USDT ema_cross 1h 20d)" in m.text for m in replies)
        assert progress.edits >= 2  # loading, trading, drawing: one message, edited
        assert progress.text == "Done."
        assert "BTC/USDT ema_cross 1h" in charts[0].text
        assert "total return" in charts[0].text
        assert len(charts[0].photo) <= 300_000
        for text, expected in [
            ("/backtest BTC/USDT", "usage"),
            ("/backtest BTC/USDT magic", "unknown strategy"),
            ("/backtest BTC/USDT ema_cross 1h 9999", "DAYS 9999 must be"),
            ("/backtest BTC/USDT ema_cross 7x", "not valid"),
        ]:
            assert expected in await chat.ask(TRADER, text), text


@pytest.mark.parametrize("strategy", ["bollinger_breakout", "macd"])  # over the price, below it
async def test_chart_shows_a_running_pair_with_its_strategy(tmp_path: Path, strategy: str) -> None:
    async with chat_stack(tmp_path) as chat:
        assert "ETH/USDT is not running" in await chat.ask(VIEWER, "/chart ETHUSDT")
        await chat.ask(TRADER, f"/startpair ETH/USDT {strategy} 1h share=0.5 stop_loss=0.03")
        for _ in range(300):
            await chat.trading.driver.step()
        photo = await chat.sent_back(VIEWER, "/chart eth-usdt")
        assert photo.photo is not None
        assert photo.photo.startswith(b"\x89PNG")
        assert len(photo.photo) <= 300_000
        assert photo.text.startswith(f"ETH/USDT 1h {strategy}, last close")
        assert "usage: /chart PAIR [TIMEFRAME]" in await chat.ask(VIEWER, "/chart")


async def test_sweep_from_chat_edits_its_progress_and_replies_with_a_heatmap(
    tmp_path: Path,
) -> None:
    async with chat_stack(tmp_path) as chat:
        for _ in range(400):
            await chat.trading.driver.step()
        assert "needs the admin role" in await chat.ask(TRADER, "/sweep BTCUSDT ema_cross fast=5")
        for text, expected in [
            ("/sweep BTC/USDT", "usage"),
            ("/sweep BTC/USDT ema_cross", "parameter space is empty"),
            ("/sweep BTC/USDT ema_cross fast=1:3:1", "outside the strategy"),
            ("/sweep BTC/USDT ema_cross fast=5 objective=luck", "objective"),
            ("/sweep BTC/USDT ema_cross 1h 3 fast=5", "DAYS 3 must be"),
            # an empty value names the item in the chat's words, never the CLI's --param
            ("/sweep BTC/USDT ema_cross fast=5 random=", "'random=': expected NAME=LOW:HIGH"),
        ]:
            assert expected in await chat.ask(ADMIN, text), text
        before = len(chat.emulator.to(ADMIN))
        chat.emulator.say(ADMIN, "/sweep btcusdt ema_cross 1h 14 fast=3:12:3 slow=20,30")
        progress = await chat.reply(ADMIN, after=before)
        photo = await chat.reply(ADMIN, after=before + 1, within=120)
        assert photo.photo is not None
        assert photo.photo.startswith(b"\x89PNG")
        assert len(photo.photo) <= 300_000
        assert photo.text.startswith("Sweep 1: 8 results, best by sharpe")
        await chat.emulator.quiet(1.0)  # the last edit follows the photo
        assert progress.edits >= 3  # loading, starting the workers, percentages, done
        assert progress.text == "Done."
