"""Receipts of portfolio backtests from chat, through the real python-telegram-bot client and
the Bot API emulator: /backtest portfolio names its receipt, /rerun makes the same trades again
(or refuses naming the pair and what changed), /compare shows two portfolios side by side and
refuses a portfolio against a single pair (issue 17)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from bot.app.config import Settings
from bot.app.startup import load_replay
from bot.chat.receipt_desk import ReceiptDesk
from bot.market.history import ReplayHistory
from bot.research.account_terms import NONE, research_terms
from bot.research.portfolio_sweep import portfolio_sweep, store_portfolio_sweep
from bot.research.sweep import PORTFOLIO, SweepSpec
from bot.research.sweep_report import report
from storage.receipts import SqliteReceiptRepository
from storage.sweeps import SqliteSweepRepository
from tests.integration.test_telegram_receipts import photo_for, receipt_rows, refused_rerun
from tests.rigs.builders import SAMPLES
from tests.rigs.chat_rig import TRADER, chat_stack

RECEIPT = re.compile(r"receipt ([a-z0-9]{6}): /rerun \1")


def portfolio_config(tmp_path: Path) -> Settings:
    files = {
        pair: SAMPLES / f"{pair.replace('/', '_')}-1h.csv.gz" for pair in ("BTC/USDT", "ETH/USDT")
    }
    return Settings.model_validate(
        {
            "data_dir": tmp_path,
            "market_data": {"source": "replay", "replay_files": files},
            "pairs": [
                {"pair": "BTC/USDT", "capital_share": 0.5, "params": {"fast": 5, "slow": 12}},
                {"pair": "ETH/USDT", "capital_share": 0.4, "params": {"fast": 5, "slow": 12}},
            ],
        }
    )


async def test_a_portfolio_backtest_names_its_receipt_which_reruns_and_compares(
    tmp_path: Path,
) -> None:
    async with chat_stack(tmp_path, portfolio_config(tmp_path)) as chat:
        for _ in range(24 * 25):
            await chat.trading.driver.step()
        first = await photo_for(chat, "/backtest portfolio 20")
        found = RECEIPT.search(first.text)
        assert found, first.text
        first_id = found.group(1)
        ((stored_id, body),) = await receipt_rows(chat)
        assert stored_id == first_id
        stored = json.loads(body)
        assert stored["kind"] == "portfolio"
        assert [s["pair"] for s in stored["series"]] == ["BTC/USDT", "ETH/USDT"]
        assert stored["series"][1]["source"] == {"kind": "chat", "exchange": "replay", "days": 20}

        again = await photo_for(chat, f"/rerun {first_id}")
        verdict, caption = again.text.split("\n", 1)
        assert verdict == f"✅ identical to receipt {first_id}"
        assert caption == first.text  # the same pairs, figures, terms and receipt
        assert again.photo == first.photo
        assert len(await receipt_rows(chat)) == 1  # a rerun stores nothing

        second = await photo_for(chat, "/backtest portfolio 15 fee=0.002")
        second_id = RECEIPT.search(second.text).group(1)  # type: ignore[union-attr]
        lines = (await chat.ask(TRADER, f"/compare {first_id} {second_id}")).splitlines()
        assert lines[0] == f"{first_id} | {second_id}"
        assert "strategy: portfolio | portfolio" in lines
        assert "fee_rate: 0.001 | 0.002" in lines
        assert f"data {first_id}: BTC/USDT 1h 2025-" in "\n".join(lines)
        assert any(re.fullmatch(r"trades: \d+ \| \d+", line) for line in lines)

        single = await photo_for(chat, "/backtest btcusdt ema_cross 1h 20")
        single_id = RECEIPT.search(single.text).group(1)  # type: ignore[union-attr]
        refusal = await chat.ask(TRADER, f"/compare {first_id} {single_id}")
        assert f"{first_id} is a portfolio and {single_id} is a BTC/USDT backtest" in refusal
        assert "compare two portfolios, or two single pairs" in refusal

        changed = json.loads(body)
        changed["series"][1]["candle_hash"] = "0" * 32
        changed["params"]["pairs"][0]["source_hash"] = "0" * 32
        text = await refused_rerun(chat, first_id, changed)
        assert "BTC/USDT: the source of strategy ema_cross changed" in text
        assert "the ETH/USDT 1h candles of 20" in text
        assert "changed (replay candles). Nothing was run." in text
        assert len(await receipt_rows(chat)) == 3


async def test_a_portfolio_sweep_receipt_kept_for_the_chat_reruns_there(tmp_path: Path) -> None:
    """``ReceiptDesk.keep_portfolio_sweep``: what /sweep portfolio calls; /rerun runs every set
    again on the chat's candles and shows the ranked table, or refuses naming the pair."""
    config = portfolio_config(tmp_path)
    async with chat_stack(tmp_path, config) as chat:
        for _ in range(24 * 25):
            await chat.trading.driver.step()
        now = chat.trading.clock.now()
        history = ReplayHistory(load_replay(config).source)
        candles = {
            pair: await history.candles(pair, "1h", 20, now) for pair in ("BTC/USDT", "ETH/USDT")
        }
        terms = research_terms(config, None)
        spec = SweepSpec("ema_cross", {"fast": [3, 5], "slow": [12]}, terms={PORTFOLIO: terms})
        sweep = portfolio_sweep(spec, config, candles, overrides=NONE, limits=None)
        done = await store_portfolio_sweep(
            SqliteSweepRepository(chat.db), sweep, clock=chat.trading.clock
        )
        desk = ReceiptDesk(
            store=SqliteReceiptRepository(chat.db), history=history, exchange="replay"
        )
        receipt_id = await desk.keep_portfolio_sweep(sweep, candles, done, 20, now)
        ((_, body),) = await receipt_rows(chat)
        stored = json.loads(body)
        assert stored["kind"] == "portfolio sweep"
        assert stored["params"]["sweep"] == done[0]
        assert stored["series"][0]["source"] == {"kind": "chat", "exchange": "replay", "days": 20}

        before = len(chat.emulator.to(TRADER))
        chat.emulator.say(TRADER, f"/rerun {receipt_id}")
        for _ in range(600):
            texts = [m.text for m in chat.emulator.to(TRADER)[before:]]
            if any("receipt" in text and "Rerun" not in text for text in texts):
                break
            await chat.emulator.quiet(0.1)
        (again,) = [text for text in texts if "receipt" in text and "Rerun" not in text]
        lines = again.splitlines()
        assert lines[0] == f"✅ identical to receipt {receipt_id} (every set's result)"
        assert lines[1:] == report(spec, done[1]).splitlines()  # the sweep's table, exactly

        changed = {**stored, "terms": {**stored["terms"]}}
        changed["series"] = [stored["series"][0], {**stored["series"][1], "candle_hash": "0" * 32}]
        text = await refused_rerun(chat, receipt_id, changed)
        assert "the ETH/USDT 1h candles of 20" in text
        assert "changed (replay candles). Nothing was run." in text
