"""/backtest ... mc=N through the real python-telegram-bot client and the Bot API emulator:
the Monte Carlo figures in its caption; a bad count or too few trades refused, no receipt kept
(issue 18)."""

from __future__ import annotations

import json
from pathlib import Path

from bot.research.monte_carlo import DEFAULT_SEED
from tests.integration.test_telegram_receipts import RECEIPT, photo_for, receipt_rows
from tests.rigs.chat_rig import TRADER, Chat, chat_stack


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


async def test_rerun_of_a_backtest_with_mc_reproduces_its_monte_carlo_figures(
    tmp_path: Path,
) -> None:
    """The receipt keeps the resamples, the seed and the figures; /rerun draws the same
    resamples from the rerun's trades and says whether they match: neither repeated as a
    stale copy nor lost."""
    async with chat_stack(tmp_path) as chat:
        for _ in range(500):
            await chat.trading.driver.step()
        first = await _whole(chat, "/backtest btcusdt ema_cross 1h 20 fast=5 slow=12 mc=500")
        (receipt_id, body), *_ = await receipt_rows(chat)
        stored = json.loads(body)["result"]["monte_carlo"]
        assert (stored["resamples"], stored["seed"]) == (500, DEFAULT_SEED)
        assert f"receipt {receipt_id}" in first
        figures = _monte_carlo_lines(first)
        assert len(figures) == 4
        again = await _whole(chat, f"/rerun {receipt_id}")
        assert again.startswith(f"✅ identical to receipt {receipt_id}"), again
        assert _monte_carlo_lines(again) == figures
        # figures stored otherwise (another pairpilot drew them): the rerun says they differ
        changed = json.loads(body)
        changed["result"]["monte_carlo"]["final_return"]["p50"] = 0.5
        await chat.db.execute(
            "UPDATE receipts SET body = ? WHERE id = ?", (json.dumps(changed), receipt_id)
        )
        differs = await _whole(chat, f"/rerun {receipt_id}")
        assert differs.startswith(f"⚠️ differs from receipt {receipt_id}: monte_carlo"), differs
        assert _monte_carlo_lines(differs) == figures  # the figures drawn now
        plain = await photo_for(chat, "/backtest btcusdt ema_cross 1h 20 fast=5 slow=12")
        plain_id = RECEIPT.search(plain.text)
        assert plain_id is not None
        without = await _whole(chat, f"/rerun {plain_id.group(1)}")
        assert "Monte Carlo" not in without
        assert without.startswith("✅ identical")


async def _whole(chat: Chat, text: str) -> str:
    """The caption of the photo ``text`` ends with, and the text that follows it (past
    Telegram's caption limit)."""
    photo = await photo_for(chat, text)
    await chat.emulator.quiet(0.3)
    after = chat.emulator.to(TRADER)
    rest = [m.text for m in after[after.index(photo) + 1 :] if m.photo is None]
    return "\n".join([photo.text, *rest])


def _monte_carlo_lines(caption: str) -> list[str]:
    lines = caption.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Monte Carlo: "))
    return lines[start : start + 4]
