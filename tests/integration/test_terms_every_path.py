"""Issue 17, item 1: change the config, every research path changes, and says so.

Each setting is moved away from its default in a config; each path run on that config states
the moved value and gives another result than the default config's. Paths covered so far:
the CLI backtest (text and --json), the CLI sweep and its walk-forward, chat /backtest and
/sweep. In process, on the bundled candles."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from bot.app.config import Settings
from bot.cli.main import main
from bot.research.account_terms import research_terms
from tests.doubles.telegram_emulator import Sent
from tests.integration.test_cli import SAMPLE
from tests.rigs.builders import replay_settings
from tests.rigs.chat_rig import ADMIN, TRADER, Chat, chat_stack

DAYS = 7

# A setting -> (the config that moves it, the key in the JSON "terms", the value stated).
# Each bites on the sample with a 1% stop: a moved value moves the result.
MOVED: dict[str, tuple[str, str, object]] = {
    "balance": ("[paper]\nbalance = 50\n", "balance", 50.0),
    "fee": ("[paper]\nfee = 0.002\n", "fee_rate", 0.002),
    "slippage": ("[paper]\nslippage = 0.002\n", "slippage", 0.002),
    "timezone": ('timezone = "America/New_York"\n', "timezone", "America/New_York"),
    "stops": ('[exchange]\nname = "coinbase"\n', "resting_stops", False),
    "risk": ("[risk]\nposition_fraction = 0.5\n", "limits", None),
    # Entries fill at most 0.001% of a candle's volume (about 200 USDT of the sample's hours).
    "volume_share": ("[paper]\nmax_volume_share = 0.00001\n", "volume_share", 0.00001),
    # Entries sized on 30% of the account (RUN lifts the per-asset cap to 100%).
    "capital_share": (
        '[[pairs]]\npair = "BTC/USDT"\ncapital_share = 0.3\n',
        "capital_share",
        0.3,
    ),
}
# A tight daily loss limit, so the day's start (the timezone) bites too.
RISK = {"daily_loss_limit": "0.002", "max_drawdown": "0", "max_position_fraction": "1"}
# How the text states each moved value.
STATED = {
    "balance": "balance 50.00;",
    "fee": "fee 0.2000% in the quote,",
    "slippage": "slippage 0.2000%;",
    "timezone": "days in America/New_York;",
    "stops": "stops checked per candle: a stop sells at the next open",
    "volume_share": "entries fill <= 0.001% of a candle's volume;",
    "capital_share": "capital share 30%;",
}
RUN = ["--data", str(SAMPLE), "--param", "stop_loss=0.01"]
RUN += [item for key, value in RISK.items() for item in ("--risk", f"{key}={value}")]


def backtest_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main(["backtest", *RUN, *args, "--json"]) == 0
    document: dict[str, object] = json.loads(capsys.readouterr().out)
    return document


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "moved.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_without_a_config_the_backtest_runs_the_default_configs_terms(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not slippage 0 (issue 17, M2): the account `pairpilot run` trades with no config."""
    from bot.app.config import load_settings
    from bot.research.account_terms import Overrides

    monkeypatch.chdir(tmp_path)  # the default data_dir, where its receipt is stored

    terms = backtest_json(capsys)["terms"]
    expected = research_terms(load_settings(None, None), "BTC/USDT", Overrides(risk=RISK))
    assert terms == expected.as_dict()
    assert isinstance(terms, dict)
    assert terms["slippage"] == 0.0005


@pytest.mark.parametrize("setting", sorted(MOVED))
def test_a_moved_setting_moves_the_cli_backtest_and_is_stated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setting: str
) -> None:
    text, key, value = MOVED[setting]
    default = backtest_json(capsys, "--config", str(config(tmp_path, "")))
    moved = backtest_json(capsys, "--config", str(config(tmp_path, text)))
    terms, before = moved["terms"], default["terms"]
    assert isinstance(terms, dict)
    assert isinstance(before, dict)
    if value is None:
        assert terms[key]["position_fraction"] == 0.5
    else:
        assert terms[key] == value
    assert terms[key] != before[key]
    assert moved["metrics"] != default["metrics"]


def test_the_text_output_states_every_value_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(
        tmp_path, '[paper]\nslippage = 0.002\n[[pairs]]\npair = "BTC/USDT"\ncapital_share = 0.4\n'
    )
    assert main(["backtest", *RUN, "--config", str(path), "--fee", "0.003"]) == 0
    text = capsys.readouterr().out
    assert "balance 1,000.00; fee 0.3000% in the quote (given), slippage 0.2000%;" in text
    assert (
        "capital share 40%; entries fill <= 10% of a candle's volume; "
        "sales too, their rest sold at the next close"
    ) in text
    assert "risk (given): entry 99% (<= 100%/asset, <= 100% exposure, <= 5 open" in text
    assert "daily loss 0.2%, drawdown 0%" in text


def test_the_share_and_the_volume_cap_options_beat_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--capital-share and --volume-share, as /backtest's share= and volume_share= words."""
    default = backtest_json(capsys, "--config", str(config(tmp_path, "")))
    for setting, option in [("capital_share", "1"), ("volume_share", "0.1")]:
        path = config(tmp_path, MOVED[setting][0])
        given = backtest_json(
            capsys, "--config", str(path), f"--{setting.replace('_', '-')}", option
        )
        terms = given["terms"]
        assert isinstance(terms, dict)
        assert terms[setting] == float(option)
        assert setting in terms["given"]
        assert given["metrics"] == default["metrics"]


def test_a_bad_override_is_refused_before_anything_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.csv"
    assert main(["backtest", "--data", str(missing), "--slippage", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "--slippage 0.5: expected a rate from 0 to 0.05" in err
    assert "does not exist" not in err


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        yield cluster.scheduler_address


def sweep_of(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], scheduler: str, text: str, *args: str
) -> tuple[str, dict[str, object], list[tuple[str, str]]]:
    """The sweep's printed text, its stored spec, and its stored (segment, metrics) rows."""
    folder = tmp_path / str(abs(hash(text + " ".join(args))))
    folder.mkdir()
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8")
    sweep = ["sweep", *RUN, "--param", "fast=5,8", "--scheduler", scheduler]
    assert main([*sweep, "--config", str(path), *args]) == 0
    with sqlite3.connect(folder / "data" / "pairpilot.sqlite") as db:
        (spec,) = db.execute("SELECT spec FROM sweeps").fetchone()
        rows = db.execute("SELECT segment, metrics FROM sweep_results ORDER BY 1, params")
        return capsys.readouterr().out, json.loads(spec), rows.fetchall()


@pytest.mark.parametrize("folds", [0, 2])
@pytest.mark.parametrize("setting", sorted(MOVED))
def test_a_moved_setting_moves_the_cli_sweep_and_is_stated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], scheduler: str, setting: str, folds: int
) -> None:
    text, key, value = MOVED[setting]
    walk = ["--walk-forward", str(folds)] if folds else []
    default = sweep_of(tmp_path, capsys, scheduler, "", *walk)
    printed, spec, rows = sweep_of(tmp_path, capsys, scheduler, text, *walk)
    stored = spec["terms"]
    assert isinstance(stored, dict)
    terms = stored["BTC/USDT"]
    limits = terms["limits"]
    if value is None:
        assert limits["position_fraction"] == 0.5
        assert "risk (given): entry 50% (" in printed
    else:
        assert terms[key] == value
        assert STATED[setting] in printed
    assert rows != default[2]
    if setting != "capital_share":
        assert "capital share 100%;" in printed


def test_the_sweep_takes_the_backtests_overrides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], scheduler: str
) -> None:
    printed, spec, _ = sweep_of(tmp_path, capsys, scheduler, "", "--slippage", "0.003")
    stored = spec["terms"]
    assert isinstance(stored, dict)
    assert stored["BTC/USDT"]["slippage"] == 0.003
    assert "slippage 0.3000% (given)" in printed


def test_a_sweep_of_several_pairs_runs_and_states_each_pairs_share(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], scheduler: str
) -> None:
    eth = SAMPLE.with_name("ETH_USDT-1h.csv.gz")
    shares = '[[pairs]]\npair = "BTC/USDT"\ncapital_share = 0.3\n'
    shares += '[[pairs]]\npair = "ETH/USDT"\ncapital_share = 0.5\n'
    printed, spec, _ = sweep_of(tmp_path, capsys, scheduler, shares, "--data", str(eth))
    stored = spec["terms"]
    assert isinstance(stored, dict)
    assert {pair: terms["capital_share"] for pair, terms in stored.items()} == {
        "BTC/USDT": 0.3,
        "ETH/USDT": 0.5,
    }
    btc, eth_text = printed.index("BTC/USDT:\n"), printed.index("ETH/USDT:\n")
    assert "capital share 30%;" in printed[btc:eth_text]
    assert "capital share 50%;" in printed[eth_text:]


async def test_chat_backtest_and_sweep_state_the_configs_terms_and_the_risk_set_now(
    tmp_path: Path,
) -> None:
    """Every value /backtest and /sweep simulate is in the reply: the moved config's, the
    pair's capital share, and the limits as /risk set left them (issue 17, M4, M7)."""
    base = replay_settings(tmp_path).model_dump()
    config = Settings.model_validate(
        {
            **base,
            "timezone": "America/New_York",
            "paper": {"balance": 5000.0, "fee": 0.002, "slippage": 0.001},
            "risk": {**base["risk"], "daily_loss_limit": 0.002},
        }
    )
    stated = [
        "balance 5,000.00; fee 0.2000% in the quote, slippage 0.1000%; days in America/New_York;",
        "capital share 50%; entries fill <= 10% of a candle's volume",
        "daily loss 0.2%, drawdown 15%",
    ]
    async with chat_stack(tmp_path, config) as chat:
        for _ in range(DAYS * 24):
            await chat.trading.driver.step()
        ask = f"BTC/USDT ema_cross 1h {DAYS} fast=5 slow=20"
        photo = await chat_result(chat, TRADER, f"/backtest {ask}")
        assert all(line in photo.text for line in stated), photo.text
        reply = await chat_result(chat, ADMIN, f"/sweep {ask}")
        assert all(line in reply.text for line in stated), reply.text
        await chat.ask(ADMIN, "/risk set max_drawdown 0.1")
        assert chat.trading.engine.guard.limits.max_drawdown == 0.1
        photo = await chat_result(chat, TRADER, f"/backtest {ask}")
        assert "daily loss 0.2%, drawdown 10%" in photo.text
        # The pair's share and the volume cap are simulated: each word moves the result.
        for word in ("share=0.1", "volume_share=0.000001"):  # 10%: under the 20% cap
            moved = await chat_result(chat, TRADER, f"/backtest {ask} {word}")
            assert "(given)" in moved.text
            assert total_return(moved.text) != total_return(photo.text), word
        # The CLI's overrides, as words: marked "(given)" where stated.
        given = f"{ask} fee=0.003 share=0.25 risk.max_drawdown=0.2"
        photo = await chat_result(chat, TRADER, f"/backtest {given}")
        assert "fee 0.3000% in the quote (given)" in photo.text
        assert "capital share 25% (given)" in photo.text
        assert "drawdown 20%" in photo.text
        reply = await chat_result(chat, ADMIN, f"/sweep {given}")
        assert "fee 0.3000% in the quote (given)" in reply.text
        for bad, words in [("fee=0.2", "fee 0.2: expected a rate"), ("risk.nope=1", "nope=1")]:
            refused = await chat.ask(TRADER, f"/backtest {ask} {bad}")
            assert words in refused, refused
        # The usage and /help name the words.
        assert "[share=F] [volume_share=F] [risk.KEY=V]" in await chat.ask(TRADER, "/backtest")
        assert "[fee=F]" in await chat.ask(TRADER, "/help sweep")
        # A running pair's share wins over [[pairs]] (which has none for ETH/USDT: 100%).
        assert (await chat.ask(TRADER, "/startpair ETHUSDT share=0.2")).startswith("Started")
        eth = f"ETH/USDT ema_cross 1h {DAYS} fast=5 slow=20"
        photo = await chat_result(chat, TRADER, f"/backtest {eth}")
        assert "capital share 20%;" in photo.text
        reply = await chat_result(chat, ADMIN, f"/sweep {eth}")
        assert "capital share 20%;" in reply.text


def total_return(text: str) -> str:
    (line,) = [line for line in text.splitlines() if line.startswith("total return")]
    return line


async def chat_result(chat: Chat, user: int, command: str) -> Sent:
    """The result right after the command's progress message (edited to "Done."). The end of
    an earlier result may still arrive first: a caption over Telegram's 1,024 characters (a
    long check note) is sent on in a message of its own."""
    before = len(chat.emulator.to(user))
    chat.emulator.say(user, command)
    for _ in range(1200):
        sent = chat.emulator.to(user)[before:]
        done = [index for index, message in enumerate(sent) if message.text == "Done."]
        if done and len(sent) > done[0] + 1:
            return sent[done[0] + 1]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no result for {command!r} in 120 s: {[m.text for m in sent]}")


def test_the_cli_simulates_the_limits_risk_set_stored_for_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After /risk set, `pairpilot backtest --config` runs the limits the bot runs (M4)."""
    import asyncio

    from bot.core.clock import SystemClock
    from bot.risk.guard import LIMITS_KEY
    from storage.db import open_database
    from storage.state import SqliteStateRepository

    path = config(tmp_path, "")
    before = backtest_json(capsys, "--config", str(path))

    async def risk_set() -> None:
        async with open_database(tmp_path / "data" / "pairpilot.sqlite") as db:
            changed = {"max_position_fraction": 0.3, "position_fraction": 0.5}
            await SqliteStateRepository(db).set(LIMITS_KEY, changed, SystemClock().now())

    asyncio.run(risk_set())
    after = backtest_json(capsys, "--config", str(path))
    terms = after["terms"]
    assert isinstance(terms, dict)
    # --risk (RUN's max_position_fraction=1) still beats what chat stored; the rest stands.
    assert terms["limits"]["max_position_fraction"] == 1.0
    assert terms["limits"]["position_fraction"] == 0.5
    assert after["metrics"] != before["metrics"]
