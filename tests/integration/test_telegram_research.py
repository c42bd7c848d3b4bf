"""Charts, backtests and sweeps from chat, through the real python-telegram-bot client and
the Bot API emulator: /pnl, /backtest, /chart and /sweep reply with PNGs that fit a phone."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app.config import Settings
from bot.app.startup import load_replay
from bot.market.history import ReplayHistory
from bot.research.portfolio import run_portfolio
from tests.rigs.builders import SAMPLES
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
        # one line: its check has not passed at these parameters (issue 18's gate; research
        # runs all the same), with the command that checks exactly these
        assert charts[0].text.endswith(
            "\nnote: ema_cross not checked; "
            "`pairpilot strategy check ema_cross --param stop_loss=0.02` before live"
        )
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


async def test_backtest_portfolio_replays_every_configured_pair_with_the_limits_now(
    tmp_path: Path,
) -> None:
    files = {
        pair: SAMPLES / f"{pair.replace('/', '_')}-1h.csv.gz" for pair in ("BTC/USDT", "ETH/USDT")
    }
    config = Settings.model_validate(
        {
            "data_dir": tmp_path,
            "market_data": {"source": "replay", "replay_files": files},
            "pairs": [
                {"pair": "BTC/USDT", "capital_share": 0.5, "params": {"fast": 5, "slow": 12}},
                {"pair": "ETH/USDT", "capital_share": 0.5, "params": {"fast": 5, "slow": 12}},
            ],
        }
    )
    async with chat_stack(tmp_path, config) as chat:
        for _ in range(24 * 25):
            await chat.trading.driver.step()
        await chat.ask(ADMIN, "/risk set max_open_positions 1")  # the limits now, not the config's
        before = len(chat.emulator.to(TRADER))
        chat.emulator.say(TRADER, "/backtest portfolio 20")
        progress = await chat.reply(TRADER, after=before)
        for _ in range(300):
            if any(m.photo for m in chat.emulator.to(TRADER)[before:]) and progress.text == "Done.":
                break
            await chat.emulator.quiet(0.1)
        (photo,) = [m for m in chat.emulator.to(TRADER)[before:] if m.photo is not None]
        assert progress.edits >= 3  # loading each pair, trading, drawing: one message, edited
        now = chat.trading.clock.now()
        history = ReplayHistory(load_replay(config).source)
        candles = {pair: await history.candles(pair, "1h", 20, now) for pair in files}
        limits = chat.trading.engine.guard.limits
        assert limits.max_open_positions == 1
        expected = run_portfolio(config, candles, limits=limits)
        assert photo.photo is not None
        assert photo.photo.startswith(b"\x89PNG")
        assert "Portfolio of 2 pairs" in photo.text
        assert "<= 1 open" in photo.text  # the statement of the limits simulated
        for pair in expected.pairs:
            refused = pair.vetoes["max_open"]
            line = f"{pair.pair} ema_cross 50%: {pair.metrics.trades} trade(s), "
            assert line + f"{pair.metrics.pnl:+,.2f} USDT" in photo.text
            if refused:
                assert f"max_open {refused}" in photo.text
        assert sum(p.vetoes["max_open"] for p in expected.pairs) > 0  # the limit fired
        assert f"total: {expected.metrics.total_return:+.2%}" in photo.text
        for text, expected_text in [
            ("/backtest portfolio 9999", "DAYS 9999 must be"),
            ("/backtest portfolio 5 6", "usage: /backtest portfolio"),
            ("/backtest portfolio fast=5", "fast=: a portfolio runs each pair's configured"),
            ("/backtest portfolio fee=2", "fee"),
        ]:
            assert expected_text in await chat.ask(TRADER, text), text
