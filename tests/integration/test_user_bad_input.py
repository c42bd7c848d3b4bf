"""Bad input around user strategies (issue 18): a missing folder, a file that is not a strategy,
parameters outside the declared bounds, a check on too little data. Each gets a clear error
naming the file or the parameter, and nothing starts and nothing is stored: through the real
`pairpilot` command (exit 2, no database rows) and through the chat (the real PTB client on the
Telegram emulator, a real SQLite file)."""

from __future__ import annotations

import gzip
import sqlite3
from pathlib import Path

import pytest

from bot.app.config import load_settings
from tests.integration.test_user_chat_research import REPLAY
from tests.integration.test_user_strategies import SAMPLE, pairpilot
from tests.rigs.chat_rig import TRADER, chat_stack
from tests.rigs.user_loads import NAME, write_folder

TABLES = ("pair_runs", "fills", "receipts", "strategy_checks", "sweeps")


def config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'data_dir = "data"\n{body}[market_data]\nsource = "replay"\n'
        f"[market_data.replay_files]\n{REPLAY}\n",
        encoding="utf-8",
    )
    return path


def pair(strategy: str, params: str = "") -> str:
    extra = f"params = {{ {params} }}\n" if params else ""
    return f'[[pairs]]\npair = "BTC/USDT"\nstrategy = "{strategy}"\n{extra}capital_share = 0.5\n'


def stored_rows(tmp_path: Path) -> dict[str, int]:
    """Rows per table of the config's database; {} when no database was made."""
    path = tmp_path / "data" / "pairpilot.sqlite"
    if not path.exists():
        return {}
    with sqlite3.connect(path) as connection:
        return {
            table: int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            for table in TABLES
        }


def nothing_stored(tmp_path: Path) -> bool:
    return all(count == 0 for count in stored_rows(tmp_path).values())


def not_a_strategy(tmp_path: Path) -> Path:
    """A strategies folder holding the user strategy and a .py file that defines none."""
    folder = write_folder(tmp_path / "user_strategies")
    (folder / "helpers.py").write_text(
        "import pandas as pd\n\n\nclass Trend:  # not derived from Strategy\n"
        "    name = 'helpers'\n",
        encoding="utf-8",
    )
    return folder / "helpers.py"


# what is wrong: (the config's body, what the error must say)
STARTS = {
    "missing folder": ('strategies_dir = "nowhere"\n' + pair(NAME), "nowhere does not exist"),
    "not a strategy": (pair("helpers"), "unknown strategy 'helpers'"),
    "params out of bounds": (
        pair(NAME, "length = 1"),
        "parameter length=1 is out of bounds: expected 5 <= length <= 300",
    ),
    "params that clash": (
        pair(NAME, "rsi_cap = 90, rsi_exit = 80"),
        "rsi_cap=90.0 must be below rsi_exit=80.0",
    ),
}


@pytest.mark.parametrize("wrong", STARTS)
def test_the_service_refuses_to_start_on_bad_user_strategy_input(
    wrong: str, tmp_path: Path
) -> None:
    """`pairpilot run`: exit 2 with the error, no database made, no pair started."""
    body, error = STARTS[wrong]
    helpers = not_a_strategy(tmp_path)
    cfg = config(tmp_path, body)
    run = pairpilot("run", "--config", str(cfg), cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert error in run.stderr
    if wrong == "missing folder":
        assert str(tmp_path / "nowhere") in run.stderr
    if wrong == "not a strategy":  # the file is named, and why it was not loaded
        assert f"strategy not loaded: {helpers}: defines no strategy" in run.stderr
    assert "started" not in run.stdout + run.stderr
    assert stored_rows(tmp_path) == {}
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--param", "length=1"], "parameter length=1 is out of bounds: expected 5 <= length"),
        (["--param", "rsi_cap=80"], "rsi_cap=80.0 must be below rsi_exit=78.0"),
        (["--param", "lenght=20"], f"{NAME} has no parameter lenght"),
    ],
)
@pytest.mark.parametrize("command", ["backtest", "check"])
def test_a_backtest_or_check_with_bad_parameters_runs_and_stores_nothing(
    command: str, args: list[str], error: str, tmp_path: Path
) -> None:
    write_folder(tmp_path / "user_strategies")
    cfg = config(tmp_path, "")
    words = ["strategy", "check", NAME] if command == "check" else ["backtest", "--strategy", NAME]
    run = pairpilot(*words, "--config", str(cfg), "--data", str(SAMPLE), *args, cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert error in run.stderr
    assert run.stdout == ""
    assert nothing_stored(tmp_path)


def test_a_check_of_a_user_strategy_on_too_little_data_stores_nothing(tmp_path: Path) -> None:
    write_folder(tmp_path / "user_strategies")
    with gzip.open(SAMPLE, "rt") as file:
        head = "".join(file.readline() for _ in range(401))  # the header and 400 candles
    short = tmp_path / "BTC_USDT-1h.csv"
    short.write_text(head, encoding="utf-8")
    cfg = config(tmp_path, "")
    run = pairpilot(
        "strategy", "check", NAME, "--config", str(cfg), "--data", str(short), cwd=tmp_path
    )
    assert run.returncode == 2, run.stderr
    assert f"too little data to check {NAME}: 400 candles, it needs at least" in run.stderr
    assert run.stdout == ""
    assert nothing_stored(tmp_path)


def test_a_check_of_a_file_that_is_not_a_strategy_names_the_file(tmp_path: Path) -> None:
    helpers = not_a_strategy(tmp_path)
    cfg = config(tmp_path, "")
    run = pairpilot(
        "strategy", "check", "helpers", "--config", str(cfg), "--data", str(SAMPLE), cwd=tmp_path
    )
    assert run.returncode == 2, run.stderr
    assert "unknown strategy 'helpers'" in run.stderr
    assert f"strategy not loaded: {helpers}: defines no strategy" in run.stderr
    assert nothing_stored(tmp_path)


async def test_startpair_with_a_user_strategy_out_of_bounds_starts_and_stores_nothing(
    tmp_path: Path,
) -> None:
    not_a_strategy(tmp_path)
    settings = load_settings(config(tmp_path, ""), None)
    async with chat_stack(tmp_path, settings) as chat:
        runs = await chat.db.fetch_all("SELECT * FROM pair_runs")
        for text, expected in [
            (f"/startpair ETH/USDT {NAME} 1h length=1", "length=1 is out of bounds"),
            (f"/startpair ETH/USDT {NAME} 1h rsi_cap=99", "rsi_cap=99.0 is out of bounds"),
            (f"/startpair ETH/USDT {NAME} 1h rsi_cap=80", "rsi_cap=80.0 must be below"),
            ("/startpair ETH/USDT helpers", "unknown strategy 'helpers'"),
        ]:
            reply = await chat.ask(TRADER, text)
            assert expected in reply, (text, reply)
        assert await chat.db.fetch_all("SELECT * FROM pair_runs") == runs
        pairs = await chat.ask(TRADER, "/pairs")
        assert "ETH/USDT" not in pairs
        started = await chat.ask(TRADER, f"/startpair ETH/USDT {NAME} 1h length=20 share=0.25")
        assert "ETH/USDT" in started
        assert len(await chat.db.fetch_all("SELECT * FROM pair_runs")) == len(runs) + 1


@pytest.mark.parametrize(
    ("param", "error"),
    [
        ("length=1,10", "length=1 is outside the strategy's bounds [5, 300]"),
        # each value in bounds, none together: the refusal says why (it used to say only
        # "user_trend accepts none of the 1 combinations")
        (
            "rsi_cap=80,85",
            f"{NAME} accepts none of the 2 combinations: rsi_cap=80.0 must be below rsi_exit=78.0",
        ),
    ],
)
def test_a_sweep_of_a_user_strategy_outside_its_bounds_starts_and_stores_nothing(
    param: str, error: str, tmp_path: Path
) -> None:
    write_folder(tmp_path / "user_strategies")
    run = pairpilot(
        "sweep", "--config", str(config(tmp_path, "")), "--strategy", NAME, "--param", param,
        "--data", str(SAMPLE), "--workers", "1", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert error in run.stderr
    assert nothing_stored(tmp_path)
