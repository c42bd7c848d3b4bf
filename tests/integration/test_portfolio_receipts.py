"""Receipts of portfolio backtests and sweeps through the `pairpilot` command: a real process,
a real SQLite file. `pairpilot backtest --config FILE` stores one covering every pair; `--rerun
ID` makes the same trades byte for byte, or refuses naming the pair and what changed, running
and storing nothing (issue 17)."""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_cli import pairpilot
from tests.integration.test_cli_portfolio import BOTH, entry, write_config
from tests.integration.test_receipts import database, edit_receipt, receipts

PAIRS = entry("BTC/USDT", 0.5) + entry("ETH/USDT", 0.4)
TERMS = ["--fee", "0.002", "--risk", "max_open_positions=1", "--since", "2025-07-01"]


def copied(folder: Path) -> dict[str, Path]:
    """The sample candle files, copied where a test may change them."""
    files = {}
    for pair, source in BOTH.items():
        files[pair] = folder / source.name
        shutil.copyfile(source, files[pair])
    return files


def run_json(*args: str, cwd: Path) -> dict[str, Any]:
    done = pairpilot(*args, "--json", cwd=cwd)
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def test_a_portfolio_backtest_stores_its_receipt_and_reruns_byte_for_byte(tmp_path: Path) -> None:
    files = copied(tmp_path)
    config = write_config(tmp_path, PAIRS, files)
    first = run_json("backtest", "--config", str(config), *TERMS, cwd=tmp_path)
    receipt_id = first["receipt"]
    ((stored_id, body),) = receipts(tmp_path)
    assert stored_id == receipt_id
    stored = json.loads(body)
    assert stored["kind"] == "portfolio"
    assert stored["code"]  # the backtest code's fingerprint
    assert [p["pair"] for p in stored["params"]["pairs"]] == ["BTC/USDT", "ETH/USDT"]
    assert all(p["strategy"] == "ema_cross" and p["source_hash"] for p in stored["params"]["pairs"])
    assert stored["params"]["since"] is not None
    assert stored["terms"]["account"] == first["terms"]
    assert stored["terms"]["by_pair"]["ETH/USDT"]["capital_share"] == 0.4
    assert [s["source"]["path"] for s in stored["series"]] == [str(p) for p in files.values()]
    result = stored["result"]
    assert result["trades"] == first["total"]["trades"] > 0
    assert set(result["pairs"]) == {"BTC/USDT", "ETH/USDT"}
    assert result["trade_hash"]
    assert result["equity_hash"]

    # the config's terms and parameters changed since: the receipt's are rerun
    changed = PAIRS.replace("capital_share = 0.4", "capital_share = 0.3\nparams = {fast = 5}")
    write_config(tmp_path, changed + "\n[paper]\nfee = 0.004\n", files)
    again = run_json("backtest", "--rerun", receipt_id, "--config", str(config), cwd=tmp_path)
    assert again["rerun"] == {"matched": True, "differences": []}
    assert json.dumps(again["trades"]).encode() == json.dumps(first["trades"]).encode()
    for key in ("total", "pairs", "terms", "equity_curve", "portfolio"):
        assert again[key] == first[key], key
    assert len(receipts(tmp_path)) == 1  # a rerun stores nothing

    text = pairpilot("backtest", "--rerun", receipt_id, "--config", str(config), cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert text.stdout.rstrip().endswith(f"identical to receipt {receipt_id}")
    write_config(tmp_path, PAIRS, files)
    shown = pairpilot("backtest", "--config", str(config), *TERMS, cwd=tmp_path)
    last = shown.stdout.rstrip().splitlines()[-1]
    assert last.startswith("receipt ")
    assert last.endswith("runs it again")
    table = shown.stdout.rstrip().splitlines()[:-1]
    assert text.stdout.rstrip().splitlines()[:-1] == table  # the same table, byte for byte


def test_a_portfolio_rerun_refuses_naming_the_pair_and_what_changed(tmp_path: Path) -> None:
    files = copied(tmp_path)
    config = write_config(tmp_path, PAIRS, files)
    receipt_id = run_json("backtest", "--config", str(config), *TERMS, cwd=tmp_path)["receipt"]
    rerun = ["backtest", "--rerun", receipt_id, "--config", str(config)]

    def refused(*expected: str) -> None:
        done = pairpilot(*rerun, "--chart", "c.png", cwd=tmp_path)
        assert done.returncode == 2, done.stdout
        assert done.stdout == ""
        assert len(done.stderr.strip().splitlines()) == 1
        assert f"receipt {receipt_id} cannot be rerun exactly" in done.stderr
        for text in expected:
            assert text in done.stderr
        assert "Nothing was run." in done.stderr
        assert not (tmp_path / "c.png").exists()
        assert len(receipts(tmp_path)) == 1

    write_config(tmp_path, entry("BTC/USDT", 0.5), files)
    refused("ETH/USDT is not in the config any more (the receipt ran it)")
    write_config(tmp_path, entry("ETH/USDT", 0.4) + entry("BTC/USDT", 0.5), files)
    refused("the config lists the pairs in another order (ETH/USDT, BTC/USDT)")
    write_config(tmp_path, PAIRS, files)

    rows = gzip.decompress(files["ETH/USDT"].read_bytes()).decode().splitlines()
    fields = rows[900].split(",")
    fields[2] = str(float(fields[2]) + 1)  # one candle's high, one unit higher
    files["ETH/USDT"].write_bytes(
        gzip.compress("\n".join([*rows[:900], ",".join(fields), *rows[901:]]).encode())
    )
    refused("the ETH/USDT 1h candles of 2025-", f"changed (file {files['ETH/USDT']}")
    files["ETH/USDT"].unlink()
    refused(f"the ETH/USDT 1h candles are gone (file {files['ETH/USDT']}")

    shutil.copyfile(BOTH["ETH/USDT"], files["ETH/USDT"])
    edit_receipt(tmp_path, receipt_id, code="0" * 32)
    refused("the backtest code changed")
    no_config = pairpilot("backtest", "--rerun", receipt_id, cwd=tmp_path)
    assert no_config.returncode == 2
    assert "is a portfolio's: give the --config FILE" in no_config.stderr


@pytest.mark.parametrize("kind", ["backtest", "portfolio"])
def test_a_receipt_stored_before_the_code_fingerprint_still_reruns(
    tmp_path: Path, kind: str
) -> None:
    """Old receipts load: without a code fingerprint the trade hash alone proves the match."""
    files = copied(tmp_path)
    config = write_config(tmp_path, PAIRS, files)
    args = ["--config", str(config)] + (["--data", str(files["BTC/USDT"])] * (kind == "backtest"))
    receipt_id = run_json("backtest", *args, cwd=tmp_path)["receipt"]
    ((_, body),) = receipts(tmp_path)
    old = json.loads(body)
    del old["code"]
    with sqlite3.connect(database(tmp_path)) as connection:
        connection.execute(
            "UPDATE receipts SET body = ? WHERE id = ?", (json.dumps(old), receipt_id)
        )
    again = run_json("backtest", "--rerun", receipt_id, "--config", str(config), cwd=tmp_path)
    assert again["rerun"]["matched"]


def test_a_single_pair_rerun_refuses_once_the_backtest_code_changed(tmp_path: Path) -> None:
    files = copied(tmp_path)
    receipt_id = run_json("backtest", "--data", str(files["BTC/USDT"]), cwd=tmp_path)["receipt"]
    edit_receipt(tmp_path, receipt_id, code="0" * 32)
    done = pairpilot("backtest", "--rerun", receipt_id, cwd=tmp_path)
    assert done.returncode == 2
    assert "the backtest code changed (the kernel, its rules or the metrics)" in done.stderr
    assert "Nothing was run." in done.stderr


def test_a_portfolio_sweep_stores_its_receipt_and_reruns_its_table_exactly(
    tmp_path: Path,
) -> None:
    files = copied(tmp_path)
    config = write_config(tmp_path, PAIRS, files)
    sets = ["--strategy", "ema_cross", "--param", "fast=5,8", "--param", "slow=30,50"]
    done = pairpilot("sweep", "--config", str(config), "--portfolio", *sets, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ((receipt_id, body),) = receipts(tmp_path)
    assert (
        f"receipt {receipt_id}: pairpilot backtest --rerun {receipt_id} --config {config} "
        "runs it again"
    ) in done.stdout
    stored = json.loads(body)
    assert stored["kind"] == "portfolio sweep"
    assert stored["strategy"] == "ema_cross"
    assert stored["params"]["space"] == {"fast": [5, 8], "slow": [30, 50]}
    assert stored["params"]["swept"] == ["BTC/USDT", "ETH/USDT"]
    assert [s["pair"] for s in stored["series"]] == ["BTC/USDT", "ETH/USDT"]
    assert stored["result"]["results"] == 4
    assert stored["result"]["rows_hash"]
    table = done.stdout[done.stdout.index("portfolio 1h, by sharpe") :].rstrip()

    rerun = ["backtest", "--rerun", receipt_id, "--config", str(config)]
    again = pairpilot(*rerun, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    lines = again.stdout.rstrip().splitlines()
    assert lines[-1] == f"identical to receipt {receipt_id} (every set's result)"
    assert "\n".join(lines[:-1]).endswith(table)  # the sweep's ranked table, byte for byte
    assert len(receipts(tmp_path)) == 1
    with sqlite3.connect(database(tmp_path)) as connection:
        (sweeps,) = connection.execute("SELECT count(*) FROM sweeps").fetchone()
    assert sweeps == 1  # a rerun stores no sweep

    write_config(tmp_path, entry("BTC/USDT", 0.5), files)
    gone = pairpilot(*rerun, cwd=tmp_path)
    assert gone.returncode == 2
    assert "ETH/USDT is not in the config any more (the receipt ran it)" in gone.stderr


def test_a_portfolio_of_stored_candles_reruns_then_refuses_once_a_pairs_candles_are_gone(
    tmp_path: Path,
) -> None:
    for source in BOTH.values():
        assert pairpilot("data", "import", str(source), cwd=tmp_path).returncode == 0
    config = tmp_path / "stored.toml"
    config.write_text(PAIRS, encoding="utf-8")
    first = run_json("backtest", "--config", str(config), *TERMS, cwd=tmp_path)
    stored = json.loads(receipts(tmp_path)[0][1])
    assert [s["source"] for s in stored["series"]] == [
        {"kind": "stored", "exchange": "binance"}
    ] * 2
    rerun = ["backtest", "--rerun", first["receipt"], "--config", str(config)]
    again = run_json(*rerun, cwd=tmp_path)
    assert again["rerun"]["matched"]
    assert again["trades"] == first["trades"]

    with sqlite3.connect(database(tmp_path)) as connection:
        connection.execute("DELETE FROM candles WHERE pair = 'ETH/USDT'")
    gone = pairpilot(*rerun, cwd=tmp_path)
    assert gone.returncode == 2
    assert "the ETH/USDT 1h candles are gone (binance candles)" in gone.stderr
    assert "BTC/USDT" not in gone.stderr  # only the pair that changed is named
