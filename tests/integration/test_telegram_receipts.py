"""Research receipts from chat, through the real python-telegram-bot client and the Bot API
emulator: /backtest names its receipt, /rerun makes the same trades again (or refuses, naming
what changed), /compare shows two receipts side by side (issue 17)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.doubles.telegram_emulator import Sent
from tests.rigs.chat_rig import ADMIN, TRADER, VIEWER, Chat, chat_stack

RECEIPT = re.compile(r"receipt ([a-z0-9]{6}): /rerun \1")


async def photo_for(chat: Chat, text: str) -> Sent:
    """The photo the bot sends once the slow command ``text`` has finished: its progress line
    reads "Done.". A caption over Telegram's 1,024 characters (a long check note) goes on in a
    message of its own after the photo and before "Done.": a command sent on seeing the photo
    alone took that message as its answer."""
    before = len(chat.emulator.to(TRADER))
    chat.emulator.say(TRADER, text)
    for _ in range(600):
        sent = chat.emulator.to(TRADER)[before:]
        photos = [m for m in sent if m.photo is not None]
        if photos and any(m.text == "Done." for m in sent):
            return photos[0]
        # before the photo: only its progress line, or a refusal (after it, its caption's end)
        refusals = [m.text for m in sent if m.photo is None and m.text != "Done."]
        if not photos and any(
            not m.startswith(("Backtest", "Rerun", "Portfolio")) for m in refusals
        ):
            raise AssertionError(refusals)
        await chat.emulator.quiet(0.1)
    raise AssertionError(f"no photo for {text}: {[m.text for m in chat.emulator.to(TRADER)]}")


async def receipt_rows(chat: Chat) -> list[tuple[str, str]]:
    rows = await chat.db.fetch_all("SELECT id, body FROM receipts ORDER BY created_at, id")
    return [(row["id"], row["body"]) for row in rows]


async def refused_rerun(chat: Chat, receipt_id: str, body: dict[str, object]) -> str:
    """Store ``body`` as the receipt's, then /rerun it: the refusal (after the progress line)."""
    await chat.db.execute(
        "UPDATE receipts SET body = ? WHERE id = ?", (json.dumps(body), receipt_id)
    )
    before = len(chat.emulator.to(TRADER))
    chat.emulator.say(TRADER, f"/rerun {receipt_id}")
    for _ in range(300):
        texts = [m.text for m in chat.emulator.to(TRADER)[before:]]
        if any("cannot be rerun exactly" in text for text in texts):
            return next(text for text in texts if "cannot be rerun exactly" in text)
        await chat.emulator.quiet(0.1)
    raise AssertionError(f"no refusal: {texts}")


async def test_rerun_makes_the_same_trades_and_compare_shows_two_receipts(tmp_path: Path) -> None:
    async with chat_stack(tmp_path) as chat:
        for _ in range(500):  # candles for the backtests to read
            await chat.trading.driver.step()
        first = await photo_for(chat, "/backtest btcusdt ema_cross 1h 20 stop_loss=0.02")
        found = RECEIPT.search(first.text)
        assert found, first.text
        first_id = found.group(1)
        second = await photo_for(chat, "/backtest BTC/USDT ema_cross 1h 20 fast=9 fee=0.002")
        second_id = RECEIPT.search(second.text).group(1)  # type: ignore[union-attr]
        stored = dict(await receipt_rows(chat))
        assert set(stored) == {first_id, second_id}
        body = json.loads(stored[first_id])
        assert body["source_hash"]
        assert body["params"]["stop_loss"] == 0.02
        assert body["series"][0]["source"] == {"kind": "chat", "exchange": "replay", "days": 20}

        again = await photo_for(chat, f"/rerun {first_id.upper()}")
        verdict, caption = again.text.split("\n", 1)
        assert verdict == f"✅ identical to receipt {first_id}"
        # the same caption as the backtest's: the same figures, terms and candles; what went
        # past Telegram's caption limit follows as text
        await chat.emulator.quiet(0.3)
        after = chat.emulator.to(TRADER)
        rest = [m.text for m in after[after.index(again) + 1 :] if m.photo is None]
        assert "\n".join([caption, *rest]).startswith(first.text)
        assert again.photo == first.photo
        assert len(await receipt_rows(chat)) == 2  # a rerun stores nothing

        compared = await chat.ask(TRADER, f"/compare {first_id} {second_id}")
        lines = compared.splitlines()
        assert lines[0] == f"{first_id} | {second_id}"
        assert "strategy: ema_cross | ema_cross" in lines
        assert "data (both): BTC/USDT 1h 2025-06-21 21:00 .. 2025-07-11 20:00" in lines
        assert "fast: 12 | 9" in lines
        assert "stop_loss: 0.02 | 0" in lines
        assert "fee_rate: 0.001 | 0.002" in lines
        assert any(re.fullmatch(r"trades: \d+ \| \d+", line) for line in lines)
        for name in ("pnl", "win rate", "max drawdown", "fees"):
            assert any(line.startswith(f"{name}: ") for line in lines), name
        assert max(len(line) for line in lines) <= 100  # fits a phone


async def test_a_receipt_whose_candles_changed_is_refused_and_bad_ids_are_named(
    tmp_path: Path,
) -> None:
    async with chat_stack(tmp_path) as chat:
        for _ in range(100):
            await chat.trading.driver.step()
        first = await photo_for(chat, "/backtest btcusdt ema_cross 1h 10")
        receipt_id = RECEIPT.search(first.text).group(1)  # type: ignore[union-attr]
        ((_, body),) = await receipt_rows(chat)
        changed = json.loads(body)
        changed["series"][0]["candle_hash"] = "0" * 32
        refusal = await refused_rerun(chat, receipt_id, changed)
        assert "the BTC/USDT 1h candles of 20" in refusal
        assert "changed (replay candles). Nothing was run." in refusal
        assert len(await receipt_rows(chat)) == 1

        changed["series"][0].update(first_ms=0, last_ms=3_600_000 * 240)  # before the replay's
        gone = await refused_rerun(chat, receipt_id, changed)
        assert "the BTC/USDT 1h candles are gone (replay candles). Nothing was run." in gone

        for text, expected in [
            ("/rerun", "usage: /rerun ID"),
            ("/rerun k3m9x", "receipt id 'k3m9x': expected 6 letters and digits"),
            ("/rerun k3m9xq", "no receipt k3m9xq"),
            (f"/compare {receipt_id}", "usage: /compare ID ID"),
            (f"/compare {receipt_id} k3m9xq", "no receipt k3m9xq"),
            (f"/compare {receipt_id} <b>", "receipt id '<b>'"),
        ]:
            assert expected in await chat.ask(TRADER, text), text
        assert "needs the trader role" in await chat.ask(VIEWER, f"/rerun {receipt_id}")
        assert len(await receipt_rows(chat)) == 1


async def test_a_sweep_names_its_receipt_which_compares_and_reruns_its_table(
    tmp_path: Path,
) -> None:
    async with chat_stack(tmp_path) as chat:
        for _ in range(400):
            await chat.trading.driver.step()
        before = len(chat.emulator.to(ADMIN))
        chat.emulator.say(ADMIN, "/sweep btcusdt ema_cross 1h 14 fast=5,8 slow=20")
        photo = await chat.reply(ADMIN, after=before + 1, within=120)
        found = re.search(r"receipt ([a-z0-9]{6}): /compare it with another", photo.text)
        assert found, photo.text
        sweep_id = found.group(1)
        ((stored_id, body),) = await receipt_rows(chat)
        assert stored_id == sweep_id
        stored = json.loads(body)
        assert stored["kind"] == "sweep"
        assert stored["params"]["space"] == {"fast": [5, 8], "slow": [20]}
        assert stored["series"][0]["source"] == {"kind": "chat", "exchange": "replay", "days": 14}

        backtest = await photo_for(chat, "/backtest btcusdt ema_cross 1h 14 fast=5 slow=20")
        backtest_id = RECEIPT.search(backtest.text).group(1)  # type: ignore[union-attr]
        lines = (await chat.ask(TRADER, f"/compare {sweep_id} {backtest_id}")).splitlines()
        assert "kind: sweep | backtest" in lines
        assert any(line.startswith("data (both): BTC/USDT 1h ") for line in lines), lines
        assert any(line.startswith("trades: ") for line in lines)
        before = len(chat.emulator.to(TRADER))
        chat.emulator.say(TRADER, f"/rerun {sweep_id}")
        for _ in range(600):
            texts = [m.text for m in chat.emulator.to(TRADER)[before:]]
            if any(text.startswith(("✅", "⚠️")) for text in texts):  # not its progress line
                break
            await chat.emulator.quiet(0.1)
        (again,) = [text for text in texts if text.startswith(("✅", "⚠️"))]
        lines = again.splitlines()
        assert lines[0] == f"✅ identical to receipt {sweep_id} (every set's result)"
        assert lines[1] == "BTC/USDT 1h, by sharpe"
        assert any(line.endswith("fast=5 slow=20") for line in lines)
        assert any(line.endswith("fast=8 slow=20") for line in lines)
        assert len(await receipt_rows(chat)) == 2  # a rerun stores nothing
