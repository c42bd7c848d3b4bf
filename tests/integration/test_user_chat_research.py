"""/backtest, /rerun and /sweep from chat on a user strategy (issue 18): the ``UserTrend``
fixture (tests/strategy_fixtures.py) loaded by the config from a strategies folder or from an
installed package's entry point (tests/rigs/user_loads.py), through the real
python-telegram-bot client and the Bot API emulator, on a real SQLite file; the sweep on Dask
worker processes (the folder's: an entry point's package reaching the workers is
test_user_research.py's sweep)."""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

import pytest

from bot.app.config import load_settings
from bot.research.receipts import source_hash
from strategies import strategy_registry
from tests.integration.test_telegram_receipts import RECEIPT, photo_for, receipt_rows
from tests.rigs.builders import SAMPLES
from tests.rigs.chat_rig import ADMIN, TRADER, Chat, chat_stack
from tests.rigs.user_loads import LOADS, NAME, PACKAGE, forget, install_package, write_folder

REPLAY = "\n".join(
    f'"{pair}" = "{SAMPLES / (pair.replace("/", "_") + "-1h.csv.gz")}"'
    for pair in ("BTC/USDT", "ETH/USDT")
)


def user_config(how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A replay config whose BTC/USDT runs the user strategy, loaded ``how``."""
    named = ""
    if how == "folder":
        write_folder(tmp_path / "mine")
        named = 'strategies_dir = "mine"\n'
    else:  # installed: on the path of this process and of the workers it starts
        monkeypatch.syspath_prepend(str(install_package(tmp_path / "site")))
        monkeypatch.delitem(sys.modules, PACKAGE, raising=False)
    path = tmp_path / "config.toml"
    path.write_text(
        f'data_dir = "data"\n{named}[market_data]\nsource = "replay"\n'
        f"[market_data.replay_files]\n{REPLAY}\n"
        f'[[pairs]]\npair = "BTC/USDT"\nstrategy = "{NAME}"\nparams = {{ length = 20 }}\n'
        "capital_share = 0.5\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("how", LOADS)
async def test_backtest_rerun_and_sweep_from_chat_take_a_user_strategy(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = user_config(how, tmp_path, monkeypatch)
    settings = load_settings(config, None)
    loaded = strategy_registry()[NAME]
    assert strategy_registry().origin(NAME).kind == ("file" if how == "folder" else how)
    async with chat_stack(tmp_path, settings) as chat:
        for _ in range(500):  # candles for the backtests to read; the pair trades them
            await chat.trading.driver.step()
        refused = await chat.ask(TRADER, f"/backtest BTC/USDT {NAME} 1h 20 length=1")
        assert "parameter length" in refused
        assert "expected 5 <= length <= 300" in refused
        assert await receipt_rows(chat) == []  # nothing stored for it

        photo = await photo_for(chat, f"/backtest btcusdt {NAME} 1h 20 length=25")
        assert f"BTC/USDT {NAME} 1h" in photo.text
        found = RECEIPT.search(photo.text)
        assert found, photo.text
        ((receipt_id, body),) = await receipt_rows(chat)
        stored = json.loads(body)
        assert (stored["strategy"], stored["params"]["length"]) == (NAME, 25)
        assert stored["source_hash"] == source_hash(loaded)
        again = await photo_for(chat, f"/rerun {receipt_id}")
        assert again.text.splitlines()[0] == f"✅ identical to receipt {receipt_id}"

        if how == "folder":  # an entry point's strategy on the sweep's workers: test_user_research
            await sweep_from_chat(chat)

        edited = Path(inspect.getfile(loaded))  # the trader edits the strategy's file
        with edited.open("a", encoding="utf-8") as file:  # noqa: ASYNC230 (a test's edit)
            file.write("\n# tuned\n")
        forget()  # and loads it: the next start-up does (for a folder's file, /reload too)
        load_settings(config, None)
        shown = edited.name if how == "folder" else f"{PACKAGE}/__init__.py"
        before = len(chat.emulator.to(TRADER))
        chat.emulator.say(TRADER, f"/rerun {receipt_id}")
        for _ in range(300):
            texts = [m.text for m in chat.emulator.to(TRADER)[before:]]
            if any("cannot be rerun exactly" in text for text in texts):
                break
            await chat.emulator.quiet(0.1)
        assert any(f"the source of strategy {NAME} changed ({shown})" in t for t in texts), texts
        # the backtest's, and the sweep's
        assert len(await receipt_rows(chat)) == (2 if how == "folder" else 1)


async def sweep_from_chat(chat: Chat) -> None:
    """/sweep of the user strategy: a bound refused, then two lengths on Dask workers."""
    outside = await chat.ask(ADMIN, f"/sweep BTC/USDT {NAME} rsi_cap=40,60")
    assert "outside the strategy" in outside
    before = len(chat.emulator.to(ADMIN))
    chat.emulator.say(ADMIN, f"/sweep btcusdt {NAME} 1h 14 length=10,30")
    for _ in range(1800):  # one parameter, no heatmap: the progress message edited
        swept = [m.text for m in chat.emulator.to(ADMIN)[before:]]
        if any(text.startswith("Sweep 1:") for text in swept):
            break
        await chat.emulator.quiet(0.1)
    assert swept[0].startswith("Sweep 1: 2 results, best by sharpe:\nlength=30: "), swept
    rows = await chat.db.fetch_all("SELECT params FROM sweep_results")
    assert sorted(json.loads(row["params"])["length"] for row in rows) == [10, 30]
