"""Portfolio backtests (issue 17, item 2): the pairs share one account and its limits on one
clock, in config order, as the live engine trades them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.app.config import Settings, load_settings
from bot.core.errors import UserInputError
from bot.research.account_terms import Overrides, research_terms
from bot.research.backtest import BacktestSetup, run_backtest
from bot.research.portfolio import PortfolioResult, run_portfolio
from strategies import build_strategy

CANDLES = 700
# Every limit off but the one a test sets: entries sized by capital share alone.
RISK = "[risk]\nmax_position_fraction = 1.0\ndaily_loss_limit = 0\nmax_drawdown = 0\n"
OPEN = "[paper]\nmax_volume_share = 0\n" + RISK


def pair_entry(pair: str, share: float, strategy: str = "ema_cross") -> str:
    return (
        f'\n[[pairs]]\npair = "{pair}"\nstrategy = "{strategy}"\ntimeframe = "1h"\n'
        f"capital_share = {share}\n"
    )


def config(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, None)


@pytest.fixture(scope="module")
def btc(btc_candles: pd.DataFrame) -> pd.DataFrame:
    return btc_candles.iloc[:CANDLES].reset_index(drop=True)


def first_entries(result: PortfolioResult) -> dict[str, float]:
    """Each pair's first entry's spend (amount * price), keyed by pair."""
    return {
        pair.pair: float(pair.table.amount[0] * pair.table.entry_price[0])
        for pair in result.pairs
        if len(pair.table)
    }


def test_one_pair_with_all_the_capital_is_the_single_pair_backtest(
    tmp_path: Path, btc: pd.DataFrame
) -> None:
    settings = config(tmp_path, OPEN + pair_entry("BTC/USDT", 1.0))
    portfolio = run_portfolio(settings, {"BTC/USDT": btc})
    terms = research_terms(settings, "BTC/USDT")
    # The replay acts on candles 1 .. n-2 (candle 0 is history; the last gives the next open).
    single = run_backtest(
        btc.iloc[:-1],
        build_strategy("ema_cross", {}),
        BacktestSetup(
            "BTC/USDT",
            "1h",
            terms.balance,
            terms.fee_rate,
            terms.slippage,
            terms.limits,
            terms.timezone,
            terms.resting_stops,
            terms.fee_in_coin,
            terms.volume_share,
            trade_from=1,
        ),
    )
    assert len(portfolio.close_ms) == len(btc) - 2
    np.testing.assert_array_equal(portfolio.close_ms, single.close_ms[1:])
    # Bit for bit but the last step, where the replay still acts (the next open is known).
    np.testing.assert_array_equal(portfolio.equity[:-1], single.equity[1:-1])
    closed = [t for t in single.table.trades() if t.exit_reason != "open"]
    assert closed
    assert portfolio.trades()[: len(closed)] == closed
    assert portfolio.pairs[0].vetoes == dict.fromkeys(portfolio.pairs[0].vetoes, 0)
    np.testing.assert_allclose(portfolio.pairs[0].contribution + 1000.0, portfolio.equity)


def test_an_earlier_pairs_entry_takes_the_exposure_a_later_pair_wanted_on_the_same_step(
    tmp_path: Path, btc: pd.DataFrame
) -> None:
    """Two pairs with the same candles signal on the same steps: the first in config order
    enters at its share, the second gets what the exposure cap leaves (smaller); where that
    is under the minimum order, it is refused (min_order)."""
    frames = {"BTC/USDT": btc, "ETH/USDT": btc}
    pairs = pair_entry("BTC/USDT", 0.5) + pair_entry("ETH/USDT", 0.5)
    free = run_portfolio(config(tmp_path, OPEN + pairs), frames)
    # Both at their share of equity, the second's marked after the first paid its costs.
    assert first_entries(free)["ETH/USDT"] == pytest.approx(495.0, rel=2e-3)
    capped = run_portfolio(config(tmp_path, OPEN + "max_total_exposure = 0.8\n" + pairs), frames)
    spent = first_entries(capped)
    assert spent["BTC/USDT"] == pytest.approx(495.0, rel=1e-3)
    assert spent["ETH/USDT"] == pytest.approx(800.0 - spent["BTC/USDT"], rel=5e-3)
    reverse = pair_entry("ETH/USDT", 0.5) + pair_entry("BTC/USDT", 0.5)
    swapped = first_entries(
        run_portfolio(config(tmp_path, OPEN + "max_total_exposure = 0.8\n" + reverse), frames)
    )
    assert swapped["ETH/USDT"] == pytest.approx(spent["BTC/USDT"])
    full = run_portfolio(config(tmp_path, OPEN + "max_total_exposure = 0.5\n" + pairs), frames)
    first, second = full.pairs
    assert first.vetoes["min_order"] == 0
    assert len(first.table) > 0
    assert second.vetoes["min_order"] > 0


def test_with_one_position_allowed_the_second_pair_is_refused_for_max_open(
    tmp_path: Path, btc: pd.DataFrame
) -> None:
    pairs = pair_entry("BTC/USDT", 0.5) + pair_entry("ETH/USDT", 0.5)
    settings = config(tmp_path, OPEN + "max_open_positions = 1\n" + pairs)
    first, second = run_portfolio(settings, {"BTC/USDT": btc, "ETH/USDT": btc}).pairs
    assert len(first.table) > 0
    assert first.vetoes["max_open"] == 0
    assert len(second.table) == 0
    assert second.vetoes["max_open"] > 0


@pytest.mark.parametrize(
    ("text", "frames", "message"),
    [
        (
            pair_entry("BTC/USDT", 0.5) + pair_entry("ETH/USDT", 0.5),
            {"BTC/USDT": "btc"},
            "ETH/USDT has no candles",
        ),
        (
            pair_entry("BTC/USDT", 0.5) + pair_entry("ETH/USDT", 0.5),
            {"BTC/USDT": "btc", "ETH/USDT": "late"},
            "ETH/USDT has no candles in the window",
        ),
        (
            pair_entry("BTC/USDT", 0.5) + pair_entry("ETH/USDT", 0.5),
            {"BTC/USDT": "btc", "ETH/USDT": "2h"},
            "candles of one timeframe",
        ),
    ],
)
def test_bad_input_is_refused_before_anything_runs(
    tmp_path: Path, btc: pd.DataFrame, text: str, frames: dict[str, str], message: str
) -> None:
    late = btc.assign(timestamp=btc["timestamp"] + 10 * len(btc) * 3_600_000)
    two_hours = btc.iloc[::2].reset_index(drop=True)
    made = {"btc": btc, "late": late, "2h": two_hours}
    with pytest.raises(UserInputError, match=message):
        run_portfolio(config(tmp_path, text), {pair: made[name] for pair, name in frames.items()})


def test_capital_shares_over_1_are_refused_before_anything_runs(
    tmp_path: Path, btc: pd.DataFrame
) -> None:
    settings = config(tmp_path, pair_entry("BTC/USDT", 0.5) + pair_entry("ETH/USDT", 0.5))
    with pytest.raises(UserInputError, match="capital shares sum to 1.2, over 1"):
        run_portfolio(
            settings, {"BTC/USDT": btc, "ETH/USDT": btc}, overrides=Overrides(capital_share=0.6)
        )


def test_a_sale_larger_than_the_volume_cap_is_sold_in_parts(
    tmp_path: Path, btc: pd.DataFrame
) -> None:
    """Entries are capped at their fill candle's volume share; a sale of it all in a thinner
    candle sells that share, the rest at the pair's next turns, as the paper account sells
    it (tests/integration/test_parity.py holds the trades to the live engine's)."""
    rich = "[paper]\nbalance = 1e10\nmax_volume_share = {}\n" + RISK + pair_entry("BTC/USDT", 1)
    (capped,) = run_portfolio(config(tmp_path, rich.format(0.1)), {"BTC/USDT": btc}).pairs
    assert capped.partial_sales > 0
    uncapped = config(tmp_path, rich.format(0))
    assert run_portfolio(uncapped, {"BTC/USDT": btc}).pairs[0].partial_sales == 0
