"""`pairpilot backtest --monte-carlo N` as a user runs it: a real process, real files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tests.integration.test_cli import SAMPLE, pairpilot


def test_monte_carlo_adds_its_figures_to_the_table_and_the_json(tmp_path: Path) -> None:
    base = ["backtest", "--data", str(SAMPLE), "--monte-carlo", "2000"]
    table = pairpilot(*base, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "Monte Carlo: 2,000 resamples of" in table.stdout
    assert "final return p5/p50/p95: " in table.stdout
    assert "chance of drawdown over the 15% halt: " in table.stdout
    first = json.loads(pairpilot(*base, "--json", cwd=tmp_path).stdout)
    again = json.loads(pairpilot(*base, "--json", cwd=tmp_path).stdout)
    figures = first["monte_carlo"]
    assert figures == again["monte_carlo"]  # the default seed is fixed: reproducible
    closed = [t for t in first["trades"] if t["exit_reason"] != "open"]
    assert figures["trades"] == len(closed) >= 2
    assert figures["resamples"] == 2000
    assert figures["halt_drawdown"] == first["backtest"]["risk_limits"]["max_drawdown"]
    p5, p50, p95 = (figures["final_return"][k] for k in ("p5", "p50", "p95"))
    assert p5 <= p50 <= p95
    assert 0 <= figures["halt_chance"] <= 1
    other = json.loads(pairpilot(*base, "--json", "--seed", "5", cwd=tmp_path).stdout)
    assert other["monte_carlo"]["seed"] == 5
    assert other["monte_carlo"] != figures
    assert "monte_carlo" not in json.loads(
        pairpilot("backtest", "--data", str(SAMPLE), "--json", cwd=tmp_path).stdout
    )


def _few_candles(tmp_path: Path) -> Path:
    with gzip.open(SAMPLE, "rt") as source:
        lines = source.read().splitlines()[:60]
    path = tmp_path / "BTC_USDT-1h.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--monte-carlo", "0"], "--monte-carlo 0: resamples must be from 1 to 100,000"),
        (["--monte-carlo", "1e9"], "--monte-carlo '1e9': give a whole number"),
        (["--monte-carlo", "100001"], "from 1 to 100,000"),
        (["--monte-carlo", "100", "FEW"], "Monte Carlo needs at least 2 closed trades"),
        (["--monte-carlo", "100", "PORTFOLIO"], "--monte-carlo resamples one pair's trades"),
        (["--seed", "3"], "--seed goes with --monte-carlo N"),
        (["--monte-carlo", "100", "--rerun", "abcdef"], "not --rerun"),
    ],
)
def test_a_refused_monte_carlo_exits_2_with_one_line_and_stores_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    data = tmp_path / "in"
    data.mkdir()
    source = ["--data", str(SAMPLE)]
    if "FEW" in args:
        source = ["--data", str(_few_candles(data))]
    if "PORTFOLIO" in args:
        config = data / "config.toml"
        config.write_text('[[pairs]]\npair = "BTC/USDT"\nstrategy = "ema_cross"\n')
        source = ["--config", str(config)]
    flags = [a for a in args if a not in ("FEW", "PORTFOLIO")]
    before = sorted(tmp_path.rglob("*"))
    result = pairpilot(
        "backtest", *source, *flags, "--chart", str(tmp_path / "c.png"), cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert sorted(tmp_path.rglob("*")) == before  # no receipt database, no chart


def test_a_rerun_draws_the_receipt_s_monte_carlo_again_and_matches_it(tmp_path: Path) -> None:
    """The receipt keeps --monte-carlo's resamples, seed and figures; --rerun draws the same
    and prints them (neither lost nor copied from the receipt unchecked)."""
    base = ["backtest", "--data", str(SAMPLE), "--monte-carlo", "300", "--seed", "7"]
    first = json.loads(pairpilot(*base, "--json", cwd=tmp_path).stdout)
    again = pairpilot("backtest", "--rerun", first["receipt"], "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    rerun = json.loads(again.stdout)
    assert rerun["rerun"] == {"matched": True, "differences": []}
    assert rerun["monte_carlo"] == first["monte_carlo"]
    assert rerun["monte_carlo"]["seed"] == 7
    table = pairpilot("backtest", "--rerun", first["receipt"], cwd=tmp_path)
    assert "Monte Carlo: 300 resamples of " in table.stdout
    assert "(seed 7)" in table.stdout
    plain = json.loads(pairpilot("backtest", "--data", str(SAMPLE), "--json", cwd=tmp_path).stdout)
    without = json.loads(
        pairpilot("backtest", "--rerun", plain["receipt"], "--json", cwd=tmp_path).stdout
    )
    assert "monte_carlo" not in without
    assert without["rerun"]["matched"]
