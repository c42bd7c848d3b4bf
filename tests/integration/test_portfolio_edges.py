"""Edges of the portfolio backtest a hostile review found (session 21), each a test that
failed before its fix: the window from stored candles as from files, a resting stop before a
gap stamped as live stamps it, a one-pair portfolio's benchmark, warm-up, and clear refusals
(shares just over 1, --since after --until, --timeframe, a window one pair's data cuts)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bot.app.bootstrap import paper_account, risk_limits
from bot.app.config import Settings
from bot.core.errors import UserInputError
from bot.market.candle_files import read_candle_file
from bot.research.account_terms import Overrides, research_terms
from bot.research.portfolio import run_portfolio
from bot.risk.fills import bought_at, held_return, sold_at
from strategies import build_strategy
from tests.integration.test_cli import pairpilot
from tests.integration.test_cli_portfolio import BOTH, entry, write_config
from tests.integration.test_portfolio_parity import demo_start, plans_of
from tests.rigs.portfolio_replay import replay_portfolio

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "bot" / "sample_data"
PAIRS = ("BTC/USDT", "ETH/USDT")


def sample(pair: str, first: int, last: int) -> pd.DataFrame:
    path = SAMPLES / f"{pair.replace('/', '_')}-1h.csv.gz"
    return read_candle_file(path).iloc[first:last].reset_index(drop=True)


def settings(params: dict[str, float], risk: dict[str, float]) -> Settings:
    return Settings.model_validate(
        {
            "market_data": {
                "source": "replay",
                "replay_files": {p: f"{p.replace('/', '_')}-1h.csv.gz" for p in PAIRS},
            },
            "paper": {"balance": 1000.0, "fee": 0.001, "slippage": 0.0005},
            "risk": risk,
            "pairs": [
                {
                    "pair": pair,
                    "strategy": "grid",
                    "timeframe": "1h",
                    "params": params,
                    "capital_share": 0.45,
                }
                for pair in PAIRS
            ],
        }
    )


def run_json(tmp_path: Path, *args: str) -> dict[str, Any]:
    result = pairpilot("backtest", *args, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


# --- 1. the same --since/--until, the same candles: two different backtests ----------------


def test_since_until_cut_the_same_window_from_stored_candles_as_from_replay_files(
    tmp_path: Path,
) -> None:
    """With replay files, candles before --since warm the indicators up and the last step
    closes at --until; with the same candles stored (pairpilot data import), the frame is
    cut at load ([since, until)), so the first step is one candle later, the indicators start
    cold and the last step is one candle earlier: other trades, other PnL (+31.03 against
    +34.76 on the samples' August 2025, ema_cross 12/26)."""
    pairs = entry("BTC/USDT", 0.5) + entry("ETH/USDT", 0.5)
    files = write_config(tmp_path, pairs, BOTH)
    stored_dir = tmp_path / "stored"
    stored_dir.mkdir()
    stored = stored_dir / "portfolio.toml"
    stored.write_text(
        f'data_dir = "{stored_dir}"\n[market_data]\nsource = "exchange"\n' + pairs,
        encoding="utf-8",
    )
    for path in BOTH.values():
        done = pairpilot("data", "import", "--config", str(stored), str(path), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    window = ("--since", "2025-08-01", "--until", "2025-09-01")
    from_files = run_json(tmp_path, "--config", str(files), *window)
    from_store = run_json(tmp_path, "--config", str(stored), *window)
    assert from_store["portfolio"] == from_files["portfolio"]
    assert from_store["total"]["pnl"] == pytest.approx(from_files["total"]["pnl"], rel=1e-9)


# --- 2. trade for trade: a resting stop filled just before a gap in its pair's data ---------


async def test_a_resting_stop_filled_before_a_gap_is_stamped_as_the_live_engine_stamps_it() -> None:
    """Resting stops + limit entries, each pair with its own holes (every 5th BTC candle,
    every 7th ETH candle missing). The live engine stamps a stop that fills in candle i at
    T = candle i's close; the portfolio kernel stamps it at act_ms[i], the next open after
    the gap (spec s20 §3 (h), never tested): BTC's trailing stop of 2025-08-14 exits at 17:00
    live, 18:00 in the backtest. Same price; the trade's times and holding hours are wrong."""
    candles = {
        pair: frame[(np.arange(len(frame)) % every) != skip].reset_index(drop=True)
        for pair, every, skip in (("BTC/USDT", 5, 3), ("ETH/USDT", 7, 2))
        for frame in [sample(pair, 1000, 1400)]
    }
    config = settings(
        {"stop_loss": 0.02, "take_profit": 0.03, "trailing_stop": 0.01, "entry_offset": 0.003},
        {"position_fraction": 1.0, "max_position_fraction": 1.0, "max_open_positions": 1},
    )
    account = dataclasses.replace(paper_account(config), rests_stops=True)
    live = await replay_portfolio(
        plans_of(config, candles), account, risk_limits(config), start=demo_start(candles)
    )
    result = run_portfolio(config, candles, overrides=Overrides(resting_stops=True))
    for pair in result.pairs:
        kernel = pair.table.trades()[: pair.table.closed]
        assert [(t.entry_time, t.exit_time) for t in live.trades[pair.pair]] == [
            (t.entry_time, t.exit_time) for t in kernel
        ], pair.pair


# --- 3. a one-pair portfolio against `backtest --pair` -------------------------------------


def test_a_one_pair_portfolio_reports_what_the_one_pair_backtest_reports(tmp_path: Path) -> None:
    """Same trades, same PnL, and buy and hold from the same first open the strategy could
    buy at (it was the window's 2nd open, 1.3 points off). The portfolio's window is the
    demo's: candle 0 is history and the last step is one candle before the data ends, so its
    buy and hold sells at that candle's close, and span, exposure, Sharpe and CAGR count from
    its first step."""
    config = write_config(tmp_path, entry("BTC/USDT", 1.0), {"BTC/USDT": BOTH["BTC/USDT"]})
    portfolio = run_json(tmp_path, "--config", str(config))["total"]
    single = run_json(
        tmp_path, "--config", str(config), "--pair", "BTC/USDT", "--data", str(BOTH["BTC/USDT"])
    )["metrics"]
    assert portfolio["pnl"] == pytest.approx(single["pnl"], rel=1e-12)
    frame = read_candle_file(BOTH["BTC/USDT"])
    first = build_strategy("ema_cross", {}).ready_after
    terms = research_terms(Settings.model_validate({}), "BTC/USDT")
    bought = bought_at(float(frame["open"].iloc[first]), terms.slippage)
    for held, last in ((single, -1), (portfolio, -2)):
        sold = sold_at(float(frame["close"].iloc[last]), terms.slippage)
        expected = held_return(bought, sold, terms.fee_rate)
        assert held["buy_and_hold_return"] == pytest.approx(expected, rel=1e-12)


# --- 4. bad input accepted without a word --------------------------------------------------


def test_a_pair_too_short_for_its_strategys_warmup_is_refused_as_backtest_pair_refuses_it() -> None:
    """ETH with only the window's last 20 candles (ema_cross needs 27): `backtest --pair`
    refuses such a series (backtest.py: "needs at least N candles"); the portfolio runs it,
    reports ETH as 0 trades, +0.00%, and weights ETH's 20-candle buy and hold by its share
    into the total's benchmark."""
    config = Settings.model_validate(
        {
            "pairs": [
                {"pair": p, "strategy": "ema_cross", "timeframe": "1h", "capital_share": 0.5}
                for p in PAIRS
            ]
        }
    )
    candles = {"BTC/USDT": sample("BTC/USDT", 0, 2184), "ETH/USDT": sample("ETH/USDT", 2164, 2184)}
    with pytest.raises(UserInputError, match="ETH/USDT"):
        run_portfolio(config, candles)


def test_shares_just_over_one_say_by_how_much(tmp_path: Path) -> None:
    """0.5 + 0.5000001 is refused (good), as "capital_share adds up to 1 over all pairs; at
    most 1": the message contradicts itself (config.py formats the sum with :g)."""
    config = write_config(tmp_path, entry("BTC/USDT", 0.5) + entry("ETH/USDT", 0.5000001), BOTH)
    result = pairpilot("backtest", "--config", str(config), cwd=tmp_path)
    assert result.returncode != 0
    assert "adds up to 1 over" not in result.stderr, result.stderr


def test_since_after_until_is_named_as_such(tmp_path: Path) -> None:
    """--since 2025-09-01 --until 2025-08-01 is refused as "BTC/USDT has no candles in the
    window (2025-09-01 01:00 to 2025-08-01 00:00)": it blames the first pair's data, not the
    reversed options."""
    config = write_config(tmp_path, entry("BTC/USDT", 0.5) + entry("ETH/USDT", 0.5), BOTH)
    result = pairpilot(
        "backtest",
        "--config",
        str(config),
        "--since",
        "2025-09-01",
        "--until",
        "2025-08-01",
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "--since" in result.stderr, result.stderr


def test_a_window_cut_short_by_one_pairs_data_says_which_pair_cut_it(tmp_path: Path) -> None:
    """--since 2025-06-01 --until 2025-09-01 with ETH's file ending 2025-07-03: the whole
    portfolio silently stops at 2025-07-03 11:00 (min last close, as the demo's replay), a
    12-day backtest where 3 months were asked, and nothing but the header's dates says so;
    neither BTC's figures nor the total hint that 80% of the window is missing."""
    eth = tmp_path / "ETH_USDT-1h.csv"
    pd.read_csv(BOTH["ETH/USDT"]).iloc[:300].to_csv(eth, index=False)
    files = {"BTC/USDT": BOTH["BTC/USDT"], "ETH/USDT": eth}
    config = write_config(tmp_path, entry("BTC/USDT", 0.5) + entry("ETH/USDT", 0.5), files)
    result = pairpilot(
        "backtest",
        "--config",
        str(config),
        "--since",
        "2025-06-01",
        "--until",
        "2025-09-01",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "2025-07-03 11:00" in result.stdout  # where it stopped
    notes = [line for line in result.stdout.splitlines() if "ETH/USDT" in line and "end" in line]
    assert notes, result.stdout


def test_a_timeframe_given_to_a_portfolio_backtest_is_not_silently_dropped(tmp_path: Path) -> None:
    """`backtest --config X --timeframe 4h` takes the portfolio path (main._backtest looks
    only at --data/--pair/--strategy/--param), which ignores --timeframe: the pairs' 1h
    result is printed, and neither the header nor the JSON names a timeframe, so the trader
    reads a 1h backtest as the 4h one asked for. Refuse it (as --capital-share is refused)."""
    config = write_config(tmp_path, entry("BTC/USDT", 0.5) + entry("ETH/USDT", 0.5), BOTH)
    result = pairpilot("backtest", "--config", str(config), "--timeframe", "4h", cwd=tmp_path)
    assert result.returncode != 0, result.stdout[:300]
    assert "--timeframe" in result.stderr
