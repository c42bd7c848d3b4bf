"""`pairpilot strategy check` as a user runs it (issue 18): real files, a real SQLite database,
the real command line (a process, or main() where a test strategy must be registered)."""

from __future__ import annotations

import asyncio
import gzip
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import strategies
import tests.strategy_fixtures
from bot.cli.main import main
from bot.market.candle_files import read_candle_file
from bot.research.receipts import candle_hash, source_hash
from storage.db import open_database
from storage.strategy_checks import SqliteStrategyCheckRepository
from strategies import build_strategy, strategy_registry
from tests.integration.test_cli import SAMPLE, pairpilot
from tests.rigs.sample_head import sample_head
from tests.strategy_fixtures import (
    BackFilled,
    CentredWindow,
    NextClose,
    ShortWarmup,
    WholeSeriesMean,
)


def user_fixtures(cwd: Path) -> Path:
    """The misbehaving fixtures as a user's strategy file in ``cwd``'s default strategies folder
    (``user_strategies/``, which a command run there without a config loads)."""
    folder = cwd / "user_strategies"
    folder.mkdir()
    file = folder / "fixtures.py"
    file.write_text(Path(tests.strategy_fixtures.__file__).read_text())
    return file


def stored(cwd: Path) -> list[sqlite3.Row]:
    path = cwd / "data" / "pairpilot.sqlite"
    if not path.exists():
        return []
    with sqlite3.connect(path) as connection:
        connection.row_factory = sqlite3.Row
        return list(connection.execute("SELECT * FROM strategy_checks ORDER BY id"))


def test_a_built_in_passes_and_is_stored_with_its_source_hash(tmp_path: Path) -> None:
    done = pairpilot(
        "strategy", "check", "ema_cross", "--data", str(SAMPLE), "--param", "fast=9", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("strategy check: ema_cross on BTC/USDT 1h, 2184 candles")
    for check in ("bad output", "determinism", "look-ahead", "warm-up", "cost"):
        (line,) = [line for line in lines if line.lstrip().startswith(check)]
        assert line.split()[len(check.split())] == "ok", line
    assert "FAIL" not in done.stdout
    assert lines[-1].startswith("verdict: passed")
    (row,) = stored(tmp_path)
    strategy = build_strategy("ema_cross", {"fast": 9})
    assert row["strategy"] == "ema_cross"
    assert row["source_hash"] == source_hash(strategy)
    assert f"(source {row['source_hash']})" in lines[-1]
    assert json.loads(row["params"]) == strategy.params
    candles = read_candle_file(SAMPLE)
    assert (row["first_ms"], row["last_ms"], row["candles"]) == (
        int(candles["timestamp"].iloc[0]),
        int(candles["timestamp"].iloc[-1]),
        2184,
    )
    assert row["candle_hash"] == candle_hash(candles)
    assert (row["pair"], row["timeframe"], row["passed"]) == ("BTC/USDT", "1h", 1)
    body = json.loads(row["body"])
    assert [verdict["check"] for verdict in body["verdicts"]][:4] == [
        "bad output",
        "determinism",
        "look-ahead",
        "warm-up",
    ]


def test_the_newest_check_of_a_source_is_stored_under_its_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    user_fixtures(tmp_path)
    head = str(sample_head(tmp_path / "candles", 1000))  # rsi lives on 300: 900 needed
    assert main(["strategy", "check", "rsi", "--data", head]) == 0
    assert main(["strategy", "check", "rsi", "--data", head, "--param", "length=10"]) == 0
    assert main(["strategy", "check", ShortWarmup.name, "--data", head]) == 1
    capsys.readouterr()

    async def latest(name: str, source: str) -> dict[str, Any] | None:
        async with open_database(tmp_path / "data" / "pairpilot.sqlite") as db:
            return await SqliteStrategyCheckRepository(db).latest(name, source)

    newest = asyncio.run(latest("rsi", source_hash(build_strategy("rsi"))))
    assert newest is not None
    assert (newest["passed"], newest["params"]["length"], newest["pair"]) == (True, 10, "BTC/USDT")
    failed = asyncio.run(
        latest(ShortWarmup.name, source_hash(strategy_registry()[ShortWarmup.name]))
    )
    assert failed is not None
    assert failed["passed"] is False
    assert asyncio.run(latest("rsi", "0" * 32)) is None


# Two here, on a head of the sample a little longer than each needs: tests/unit/
# test_strategy_check.py checks every built-in on the whole sample without the command.
HEADS = {"ema_cross": 1700, "grid": 600}  # ema_cross lives on 540 candles: 1,620 needed


@pytest.mark.parametrize("name", sorted(HEADS))
def test_built_ins_pass_through_the_command(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    head = str(sample_head(tmp_path / "candles", HEADS[name]))
    assert main(["strategy", "check", name, "--data", head]) == 0, capsys.readouterr()
    assert [row["passed"] for row in stored(tmp_path)] == [1]


@pytest.mark.parametrize("peeker", [NextClose, CentredWindow, WholeSeriesMean, BackFilled])
def test_a_peeking_strategy_fails_naming_its_candle_and_is_stored_as_failed(
    peeker: type[strategies.Strategy],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    user_fixtures(tmp_path)
    monkeypatch.chdir(tmp_path)
    head = str(sample_head(tmp_path / "candles"))  # the whole sample: the unit tests
    assert main(["strategy", "check", peeker.name, "--data", head]) == 1
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("  look-ahead   FAIL")]
    assert "  the signal at candle " in line
    assert " UTC) is " in line
    assert "verdict: FAILED (look-ahead" in out
    assert [row["passed"] for row in stored(tmp_path)] == [0]


def test_a_too_short_warmup_exits_1_with_the_number_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    user_fixtures(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["strategy", "check", ShortWarmup.name, "--data", str(SAMPLE)]) == 1
    out = capsys.readouterr().out
    assert "needs at least 50 candles of history" in out
    assert "verdict: FAILED (warm-up)" in out


def test_too_little_data_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    with gzip.open(SAMPLE, "rt") as file:
        head = "".join(file.readline() for _ in range(301))  # the header and 300 candles
    short = tmp_path / "BTC_USDT-1h.csv"
    short.write_text(head)
    done = pairpilot("strategy", "check", "ema_cross", "--data", str(short), cwd=tmp_path)
    assert done.returncode == 2
    assert "too little data to check ema_cross: 300 candles, it needs at least 1620" in done.stderr
    assert done.stdout == ""
    assert stored(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["ema_cross", "--param", "fast=1"], "parameter fast=1 is out of bounds"),
        (["ema_crss"], "unknown strategy 'ema_crss'; did you mean ema_cross"),
        (["ema_cross", "--data", "missing.csv"], "candle file missing.csv does not exist"),
        (["ema_cross"], "give --data FILE, or --pair and --timeframe"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_stored(
    args: list[str],
    error: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    if "--data" not in args and "--param" in args:
        args = [*args, "--data", str(SAMPLE)]
    assert main(["strategy", "check", *args]) == 2
    assert error in capsys.readouterr().err
    assert stored(tmp_path) == []


def test_stored_candles_are_checked_by_pair_and_timeframe(tmp_path: Path) -> None:
    imported = pairpilot("data", "import", str(SAMPLE), cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    done = pairpilot(
        "strategy", "check", "rsi", "--pair", "BTC/USDT", "--timeframe", "1h", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("strategy check: rsi on BTC/USDT 1h, 2184 candles")
    (row,) = stored(tmp_path)
    assert row["candle_hash"] == candle_hash(read_candle_file(SAMPLE))


def test_an_edited_user_strategy_is_checked_under_a_new_source_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The hash a gate reads covers the user's own file, not only strategies/base.py: an edit
    that changes what the strategy does is a new source, checked anew."""
    monkeypatch.chdir(tmp_path)
    file = user_fixtures(tmp_path)
    assert main(["strategy", "check", ShortWarmup.name, "--data", str(SAMPLE)]) == 1
    short = (
        'name = "short_warmup"\n\n    @property\n    def warmup(self) -> int:\n        return 10'
    )
    assert short in file.read_text()
    file.write_text(file.read_text().replace(short, short.replace("return 10", "return 60")))
    assert main(["strategy", "check", ShortWarmup.name, "--data", str(SAMPLE)]) == 0
    capsys.readouterr()
    first, second = stored(tmp_path)
    assert (first["passed"], second["passed"]) == (0, 1)
    assert first["source_hash"] != second["source_hash"]
