"""Research receipts through the `pairpilot` command: a real process, a real SQLite file.

Every backtest stores a receipt; `pairpilot backtest --rerun ID` makes the same trades byte
for byte, or refuses, running and storing nothing, naming what changed (issue 17)."""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_cli import SAMPLE, pairpilot

# Overrides of every kind: a rerun takes each from its receipt.
RUN = ["--param", "fast=9", "--param", "slow=30", "--param", "stop_loss=0.02"]
RUN += ["--fee", "0.002", "--slippage", "0.0005", "--balance", "500"]
RUN += ["--risk", "daily_loss_limit=0.004", "--risk", "max_drawdown=0"]


def run_json(*args: str, cwd: Path) -> dict[str, Any]:
    done = pairpilot(*args, "--json", cwd=cwd)
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def database(cwd: Path) -> Path:
    return cwd / "data" / "pairpilot.sqlite"


def receipts(cwd: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(database(cwd)) as connection:
        return list(connection.execute("SELECT id, body FROM receipts ORDER BY created_at"))


def edit_receipt(cwd: Path, receipt_id: str, **changes: object) -> None:
    with sqlite3.connect(database(cwd)) as connection:
        query = "SELECT body FROM receipts WHERE id = ?"
        (body,) = connection.execute(query, (receipt_id,)).fetchone()
        connection.execute(
            "UPDATE receipts SET body = ? WHERE id = ?",
            (json.dumps({**json.loads(body), **changes}), receipt_id),
        )


def same_trades(first: dict[str, Any], second: dict[str, Any]) -> bool:
    """The trade tables as bytes: every value's shortest repr round-trips its float64."""
    assert first["trades"], "a test of trades needs trades"
    return json.dumps(first["trades"]).encode() == json.dumps(second["trades"]).encode()


def test_a_rerun_of_a_candle_file_makes_the_same_trades_byte_for_byte(tmp_path: Path) -> None:
    data = tmp_path / "BTC_USDT-1h.csv.gz"
    data.write_bytes(SAMPLE.read_bytes())
    first = run_json("backtest", "--data", str(data), *RUN, cwd=tmp_path)
    receipt_id = first["receipt"]
    ((stored_id, body),) = receipts(tmp_path)
    assert stored_id == receipt_id
    stored = json.loads(body)
    assert stored["terms"] == first["terms"]
    assert stored["params"] == first["backtest"]["params"]
    assert stored["result"]["trades"] == first["metrics"]["trades"] > 0
    (series,) = stored["series"]
    assert series["source"] == {"kind": "file", "path": str(data), "size": data.stat().st_size}
    assert series["candles"] == first["backtest"]["candles"]

    again = run_json("backtest", "--rerun", receipt_id.upper(), cwd=tmp_path)
    assert same_trades(first, again)
    assert again["metrics"] == first["metrics"]
    assert again["terms"] == first["terms"]
    assert again["rerun"] == {"matched": True, "differences": []}
    assert len(receipts(tmp_path)) == 1  # a rerun reproduces a receipt: it stores none

    text = pairpilot("backtest", "--rerun", receipt_id, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert text.stdout.rstrip().endswith(f"identical to receipt {receipt_id}")
    assert "fee 0.2000% in the quote (given)" in text.stdout


def test_a_rerun_keeps_the_receipts_terms_when_the_config_changed(tmp_path: Path) -> None:
    config = tmp_path / "bot.toml"
    config.write_text('timezone = "America/New_York"\n[paper]\nfee = 0.002\n', encoding="utf-8")
    first = run_json("backtest", "--data", str(SAMPLE), "--config", str(config), cwd=tmp_path)
    config.write_text("[paper]\nfee = 0.004\n", encoding="utf-8")
    again = run_json("backtest", "--rerun", first["receipt"], "--config", str(config), cwd=tmp_path)
    assert same_trades(first, again)
    assert again["rerun"]["matched"]
    assert again["terms"]["fee_rate"] == 0.002
    assert again["terms"]["timezone"] == "America/New_York"


def test_a_rerun_of_stored_candles_matches_then_refuses_once_they_change(tmp_path: Path) -> None:
    assert pairpilot("data", "import", str(SAMPLE), cwd=tmp_path).returncode == 0
    window = ["--pair", "BTC/USDT", "--timeframe", "1h", "--since", "2025-07-01"]
    first = run_json("backtest", *window, "--until", "2025-08-20", *RUN, cwd=tmp_path)
    receipt_id = first["receipt"]
    (series,) = json.loads(receipts(tmp_path)[0][1])["series"]
    assert series["source"] == {"kind": "stored", "exchange": "binance"}
    again = run_json("backtest", "--rerun", receipt_id, cwd=tmp_path)
    assert same_trades(first, again)
    assert again["rerun"]["matched"]

    with sqlite3.connect(database(tmp_path)) as connection:
        connection.execute(
            "UPDATE candles SET open = open * 1.01, high = high * 1.01, low = low * 1.01,"
            " close = close * 1.01 WHERE timestamp = ?",
            (series["first_ms"] + 3_600_000 * 100,),
        )
    changed = pairpilot("backtest", "--rerun", receipt_id, cwd=tmp_path)
    assert changed.returncode == 2
    assert changed.stdout == ""
    assert f"receipt {receipt_id} cannot be rerun exactly" in changed.stderr
    assert "the BTC/USDT 1h candles of 2025-07-01 00:00 .. 2025-08-19 23:00 changed" in (
        changed.stderr
    )

    with sqlite3.connect(database(tmp_path)) as connection:
        connection.execute("DELETE FROM candles")
    gone = pairpilot("backtest", "--rerun", receipt_id, cwd=tmp_path)
    assert gone.returncode == 2
    assert "the BTC/USDT 1h candles are gone (binance candles)" in gone.stderr
    assert len(receipts(tmp_path)) == 1


def test_a_candle_file_gone_or_changed_is_refused_naming_it(tmp_path: Path) -> None:
    data = tmp_path / "BTC_USDT-1h.csv.gz"
    data.write_bytes(SAMPLE.read_bytes())
    receipt_id = run_json("backtest", "--data", str(data), *RUN, cwd=tmp_path)["receipt"]
    rows = gzip.decompress(SAMPLE.read_bytes()).decode().splitlines()
    fields = rows[50].split(",")
    fields[2] = str(float(fields[2]) + 1)  # one candle's high, one unit higher
    data.write_bytes(gzip.compress("\n".join([*rows[:50], ",".join(fields), *rows[51:]]).encode()))
    changed = pairpilot("backtest", "--rerun", receipt_id, cwd=tmp_path)
    assert changed.returncode == 2
    assert "the BTC/USDT 1h candles of 2025-" in changed.stderr
    assert f"changed (file {data}" in changed.stderr

    data.unlink()
    gone = pairpilot("backtest", "--rerun", receipt_id, "--chart", "c.png", cwd=tmp_path)
    assert gone.returncode == 2
    assert f"the BTC/USDT 1h candles are gone (file {data}" in gone.stderr
    assert "Nothing was run." in gone.stderr
    assert not (tmp_path / "c.png").exists()
    assert len(receipts(tmp_path)) == 1


def test_a_changed_strategy_source_or_version_is_refused_naming_both(tmp_path: Path) -> None:
    receipt_id = run_json("backtest", "--data", str(SAMPLE), *RUN, cwd=tmp_path)["receipt"]
    edit_receipt(tmp_path, receipt_id, source_hash="0" * 32, version="0.0.1")
    refused = pairpilot("backtest", "--rerun", receipt_id, cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert "pairpilot version 0.0.1 is now" in refused.stderr
    assert "the source of strategy ema_cross changed" in refused.stderr


def test_a_rerun_whose_trades_differ_says_how_and_exits_1(tmp_path: Path) -> None:
    """The trade hash is the proof: a receipt whose result is not what the run makes now."""
    receipt_id = run_json("backtest", "--data", str(SAMPLE), *RUN, cwd=tmp_path)["receipt"]
    stored = json.loads(receipts(tmp_path)[0][1])
    edit_receipt(tmp_path, receipt_id, result={**stored["result"], "trade_hash": "f" * 32})
    done = pairpilot("backtest", "--rerun", receipt_id, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.rstrip().splitlines()[-1] == (
        f"differs from receipt {receipt_id}: trade_hash {'f' * 32} now "
        f"{stored['result']['trade_hash']}"
    )


@pytest.mark.parametrize(
    ("rerun", "extra", "message"),
    [
        ("k3m9x", [], "receipt id 'k3m9x': expected 6 letters and digits"),
        ("k3m9x0", [], "receipt id 'k3m9x0': expected 6 letters and digits"),
        ("k3m9xq", [], "no receipt k3m9xq"),
        ("k3m9xq", ["--param", "fast=3", "--fee", "0.1"], "drop --param, --fee"),
    ],
)
def test_bad_rerun_input_is_one_clear_line_and_changes_nothing(
    tmp_path: Path, rerun: str, extra: list[str], message: str
) -> None:
    before = sorted(tmp_path.rglob("*"))
    done = pairpilot("backtest", "--rerun", rerun, *extra, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert message in done.stderr
    assert sorted(tmp_path.rglob("*")) == before


def test_a_failed_backtest_stores_no_receipt(tmp_path: Path) -> None:
    run_json("backtest", "--data", str(SAMPLE), cwd=tmp_path)
    short = tmp_path / "BTC_USDT-1h.csv"
    rows = gzip.decompress(SAMPLE.read_bytes()).decode().splitlines()[:20]
    short.write_text("\n".join(rows) + "\n")
    failed = pairpilot("backtest", "--data", str(short), cwd=tmp_path)
    assert failed.returncode == 2
    assert "needs at least" in failed.stderr
    assert len(receipts(tmp_path)) == 1


def test_a_sweep_stores_its_receipt_and_reruns_its_table_exactly(tmp_path: Path) -> None:
    refused = pairpilot("sweep", "--data", str(SAMPLE), cwd=tmp_path)
    assert refused.returncode == 2
    assert not database(tmp_path).exists()  # a sweep that failed stores nothing

    data = tmp_path / "BTC_USDT-1h.csv.gz"
    data.write_bytes(SAMPLE.read_bytes())
    space = ["--param", "fast=8,12", "--param", "slow=30", "--fee", "0.002"]
    done = pairpilot("sweep", "--data", str(data), *space, "--workers", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ((receipt_id, body),) = receipts(tmp_path)
    assert f"receipt {receipt_id}: pairpilot backtest --rerun {receipt_id} runs it again" in (
        done.stdout
    )
    stored = json.loads(body)
    assert stored["kind"] == "sweep"
    assert stored["params"]["space"] == {"fast": [8, 12], "slow": [30]}
    assert stored["terms"]["fee_rate"] == 0.002
    assert stored["terms"]["given"] == ["fee_rate"]
    (series,) = stored["series"]
    assert series["source"]["path"] == str(data)
    assert series["candles"] == 2184
    result = stored["result"]
    assert result["results"] == 2
    assert result["best"]["params"]["fast"] in (8, 12)
    assert isinstance(result["trades"], int)
    assert result["rows_hash"]

    # Dask ran the sweep; the rerun runs every set in this process: the same table, exactly.
    table = done.stdout[done.stdout.index("BTC/USDT 1h, by sharpe") :].rstrip()
    rerun = pairpilot("backtest", "--rerun", receipt_id, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    lines = rerun.stdout.rstrip().splitlines()
    assert lines[-1] == f"identical to receipt {receipt_id} (every set's result)"
    assert "\n".join(lines[:-1]) == table
    assert len(receipts(tmp_path)) == 1  # a rerun stores nothing

    data.unlink()
    gone = pairpilot("backtest", "--rerun", receipt_id, cwd=tmp_path)
    assert gone.returncode == 2
    assert f"the BTC/USDT 1h candles are gone (file {data}" in gone.stderr

    old = {**stored, "result": {k: v for k, v in result.items() if k != "rows_hash"}}
    edit_receipt(tmp_path, receipt_id, **old)
    before = pairpilot("backtest", "--rerun", receipt_id, cwd=tmp_path)
    assert before.returncode == 2
    assert len(before.stderr.strip().splitlines()) == 1
    assert "was stored before sweep receipts kept the hash of every result" in before.stderr
    assert "pairpilot sweep --strategy ema_cross --param fast=8,12 --param slow=30" in (
        before.stderr
    )
