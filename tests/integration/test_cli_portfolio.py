"""`pairpilot backtest --config FILE` without a pair: every configured pair replayed together
(issue 17, item 2), through the real command in a real process on real files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tests.integration.test_cli import pairpilot

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "bot" / "sample_data"
HEADER = "timestamp,open,high,low,close,volume\n"


def write_config(folder: Path, pairs: str, files: dict[str, Path]) -> Path:
    replay = "".join(f'"{pair}" = "{path}"\n' for pair, path in files.items())
    path = folder / "portfolio.toml"
    path.write_text(
        '[market_data]\nsource = "replay"\n[market_data.replay_files]\n' + replay + pairs,
        encoding="utf-8",
    )
    return path


def entry(pair: str, share: float, timeframe: str = "1h") -> str:
    return (
        f'\n[[pairs]]\npair = "{pair}"\nstrategy = "ema_cross"\ntimeframe = "{timeframe}"\n'
        f"capital_share = {share}\n"
    )


BOTH = {"BTC/USDT": SAMPLES / "BTC_USDT-1h.csv.gz", "ETH/USDT": SAMPLES / "ETH_USDT-1h.csv.gz"}


def test_the_example_config_replays_its_pairs_offline(tmp_path: Path) -> None:
    result = pairpilot("backtest", "--config", str(ROOT / "config.example.toml"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0] for line in result.stdout.splitlines() if line}
    assert {"BTC/USDT", "ETH/USDT", "total"} <= rows
    assert "refused:" in result.stdout
    assert "max_open" in result.stdout
    assert "simulated: capital shares BTC/USDT 50%, ETH/USDT 50%" in result.stdout
    assert "balance 1,000.00" in result.stdout  # the terms used


def test_json_lists_every_trade_with_its_pair_and_the_refusals(tmp_path: Path) -> None:
    config = write_config(tmp_path, entry("BTC/USDT", 0.5) + entry("ETH/USDT", 0.5), BOTH)
    chart = tmp_path / "equity.png"
    result = pairpilot(
        "backtest",
        "--config",
        str(config),
        "--risk",
        "max_open_positions=1",
        "--json",
        "--chart",
        str(chart),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    pairs = {pair["pair"]: pair for pair in document["pairs"]}
    assert set(pairs) == {"BTC/USDT", "ETH/USDT"}
    assert {trade["pair"] for trade in document["trades"]} == set(pairs)
    assert sum(pair["metrics"]["trades"] for pair in pairs.values()) == len(document["trades"])
    assert document["total"]["trades"] == len(document["trades"])
    # One position at a time: whichever pair is in, the other's entries are refused.
    assert sum(pair["refused"]["max_open"] for pair in pairs.values()) > 0
    assert document["terms"]["limits"]["max_open_positions"] == 1
    point = document["equity_curve"][-1]
    assert set(point["contributions"]) == set(pairs)
    assert point["equity"] == pytest.approx(1000 + sum(point["contributions"].values()))
    assert chart.read_bytes().startswith(b"\x89PNG")


def shifted(folder: Path, source: Path, hours: int) -> Path:
    """``source``'s candles moved ``hours`` later, as a new file."""
    text = gzip.decompress(source.read_bytes()).decode().splitlines()
    body = [
        ",".join([str(int(row.split(",")[0]) + hours * 3_600_000), *row.split(",")[1:]])
        for row in text[1:]
    ]
    path = folder / "ETH_USDT-1h.csv"
    path.write_text(HEADER + "\n".join(body) + "\n", encoding="utf-8")
    return path


def two_hourly(folder: Path, source: Path) -> Path:
    text = gzip.decompress(source.read_bytes()).decode().splitlines()
    path = folder / "ETH_USDT-2h.csv"
    path.write_text(HEADER + "\n".join(text[1::2]) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("late", "ETH/USDT has no candles in the window"),
        ("timeframes", "different timeframes"),
        ("shares", "capital"),
    ],
)
def test_bad_portfolio_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path: Path, case: str, message: str
) -> None:
    files, pairs = dict(BOTH), entry("BTC/USDT", 0.5) + entry("ETH/USDT", 0.5)
    if case == "late":
        files["ETH/USDT"] = shifted(tmp_path, BOTH["ETH/USDT"], 24 * 365)
    elif case == "timeframes":
        files["ETH/USDT"] = two_hourly(tmp_path, BOTH["ETH/USDT"])
        pairs = entry("BTC/USDT", 0.5) + entry("ETH/USDT", 0.5, "2h")
    else:
        pairs = entry("BTC/USDT", 0.6) + entry("ETH/USDT", 0.6)
    config = write_config(tmp_path, pairs, files)
    before = sorted(tmp_path.rglob("*"))
    chart = tmp_path / "c.png"
    result = pairpilot("backtest", "--config", str(config), "--chart", str(chart), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert sorted(tmp_path.rglob("*")) == before
