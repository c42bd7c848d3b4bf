"""/backtest ... mc=N through the real python-telegram-bot client and the Bot API emulator:
the Monte Carlo figures in its caption; a bad count or too few trades refused, no receipt kept
(issue 18)."""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_telegram_receipts import photo_for, receipt_rows
from tests.rigs.chat_rig import TRADER, chat_stack


async def test_backtest_with_mc_shows_the_monte_carlo_figures(tmp_path: Path) -> None:
    async with chat_stack(tmp_path) as chat:
        for _ in range(500):  # candles for the backtests to read
            await chat.trading.driver.step()
        photo = await photo_for(chat, "/backtest btcusdt ema_cross 1h 20 fast=5 slow=12 mc=1000")
        await chat.emulator.quiet(0.3)
        after = chat.emulator.to(TRADER)
        rest = [m.text for m in after[after.index(photo) + 1 :] if m.photo is None]
        text = "\n".join([photo.text, *rest])  # past the caption limit: follows as text
        assert "Monte Carlo: 1,000 resamples of " in text
        assert "final return p5/p50/p95: " in text
        assert "max drawdown p5/p50/p95: " in text
        assert "chance of drawdown over the 15% halt: " in text
        plain = await photo_for(chat, "/backtest btcusdt ema_cross 1h 20 fast=5 slow=12")
        assert "Monte Carlo" not in plain.text
        kept = len(await receipt_rows(chat))
        assert kept == 2
        for words, expected in [
            ("mc=0", "mc= 0: resamples must be from 1 to 100,000"),
            ("mc=many", "mc= 'many': give a whole number"),
            ("mc=200000", "from 1 to 100,000"),
        ]:
            reply = await chat.ask(TRADER, f"/backtest btcusdt ema_cross 1h 20 {words}")
            assert expected in reply, reply
        before = len(chat.emulator.to(TRADER))
        chat.emulator.say(TRADER, "/backtest btcusdt ema_cross 1h 3 fast=40 slow=60 mc=100")
        for _ in range(300):
            texts = [m.text for m in chat.emulator.to(TRADER)[before:]]
            if any("Monte Carlo needs at least 2 closed trades" in t for t in texts):
                break
            await chat.emulator.quiet(0.1)
        else:
            raise AssertionError(texts)
        assert len(await receipt_rows(chat)) == kept  # refused runs keep no receipt
