from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.core.domain import Action
from bot.market.candle_files import read_candle_file
from bot.trading.strategy_calls import signal_from_candles
from strategies import BUILT_INS, ExitPolicy, StrategyConfigError, build_strategy
from strategies.base import ENTER, EXIT


def test_ema_cross_defaults_are_12_and_26_with_every_exit_off() -> None:
    strategy = build_strategy("ema_cross")
    assert (strategy.params["fast"], strategy.params["slow"]) == (12, 26)
    assert strategy.warmup == 27
    assert strategy.exit_policy == ExitPolicy()


def test_params_from_strings_are_coerced() -> None:
    strategy = build_strategy("ema_cross", {"fast": "5", "slow": "40", "stop_loss": "0.05"})
    assert (strategy.params["fast"], strategy.params["slow"]) == (5, 40)
    assert strategy.exit_policy.stop_loss == 0.05


def test_grid_takes_profit_one_spacing_up_by_default() -> None:
    policy = build_strategy("grid").exit_policy
    assert (policy.take_profit, policy.stop_loss) == (0.01, 0.05)
    assert build_strategy("grid", {"take_profit": 0}).exit_policy.take_profit == 0


@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_every_default_is_inside_its_bounds(name: str) -> None:
    for spec in BUILT_INS[name].specs():
        assert spec.minimum <= spec.default <= spec.maximum, spec.name
    build_strategy(name)  # the defaults together are valid too


@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_every_strategy_enters_and_exits_on_real_data(name: str, btc_candles: pd.DataFrame) -> None:
    codes = build_strategy(name).signals(btc_candles)
    assert codes.dtype == np.int8
    assert set(codes.unique()) == {ENTER, EXIT, 0}
    assert (codes.iloc[: build_strategy(name).warmup - 1] == 0).all()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"fast": "abc"}, "expected a whole number"),
        ({"fast": 2.5}, "expected a whole number"),
        ({"fast": 1}, "out of bounds"),
        ({"slow": 501}, "out of bounds"),
        ({"fast": 30, "slow": 26}, "must be below slow"),
        ({"fast": True}, "expected a number"),
        ({"speed": 3}, "has no parameter speed"),
        ({"stop_loss": 0.9}, "out of bounds"),
        ({"atr_stop": -1}, "out of bounds"),
    ],
)
def test_ema_cross_bad_params_are_refused(params: dict[str, object], message: str) -> None:
    with pytest.raises(StrategyConfigError, match=message):
        build_strategy("ema_cross", params)


@pytest.mark.parametrize("given", [1, "1", " 1 ", 1.0])
def test_an_out_of_bounds_parameter_reads_the_same_from_config_cli_and_chat(given: object) -> None:
    """A config gives 1, the CLI and chat give "1": the error names the value, not its type."""
    with pytest.raises(StrategyConfigError) as refused:
        build_strategy("ema_cross", {"fast": given})
    assert str(refused.value) == "parameter fast=1 is out of bounds: expected 2 <= fast <= 200"


def test_unknown_strategy_names_the_closest_match() -> None:
    with pytest.raises(StrategyConfigError, match="did you mean ema_cross"):
        build_strategy("ema_crss")


@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_signals_never_look_ahead(name: str, btc_candles: pd.DataFrame) -> None:
    """Appending future candles never changes an earlier signal."""
    strategy = build_strategy(name)
    full = strategy.signals(btc_candles).to_numpy()
    for end in (strategy.warmup, 100, 333, 1000, 1777, len(btc_candles) - 1):
        prefix = strategy.signals(btc_candles.iloc[:end]).to_numpy()
        np.testing.assert_array_equal(prefix, full[:end], err_msg=f"differs with {end} candles")


def test_the_atr_of_the_atr_stop_never_looks_ahead(btc_candles: pd.DataFrame) -> None:
    strategy = build_strategy("ema_cross", {"atr_stop": 2.0, "atr_length": 14})
    full = strategy.atr(btc_candles).to_numpy()
    for end in (15, 200, 1500):
        np.testing.assert_array_equal(strategy.atr(btc_candles.iloc[:end]).to_numpy(), full[:end])
    assert strategy.history >= 20 * 15  # live windows long enough for the ATR to settle


def test_ema_cross_signals_alternate_and_trade_on_real_data(btc_candles: pd.DataFrame) -> None:
    codes = build_strategy("ema_cross").signals(btc_candles)
    events = codes[codes != 0].to_list()
    assert len(events) > 20
    assert all(a != b for a, b in zip(events, events[1:], strict=False))
    assert set(events) == {ENTER, EXIT}
    assert (codes.iloc[:27] == 0).all()  # nothing before the slow EMA exists twice


def test_signals_do_not_modify_their_input(btc_candles: pd.DataFrame) -> None:
    before = btc_candles.copy()
    build_strategy("ema_cross").signals(btc_candles)
    pd.testing.assert_frame_equal(btc_candles, before)


def test_too_short_series_gives_no_signal(btc_candles: pd.DataFrame) -> None:
    codes = build_strategy("ema_cross").signals(btc_candles.iloc[:10])
    assert (codes == 0).all()
    assert len(codes) == 10


def _candles(closes: list[float]) -> pd.DataFrame:
    hour = 3_600_000
    return pd.DataFrame(
        {
            "timestamp": [k * hour for k in range(len(closes))],
            "open": closes,
            "high": closes,
            "low": closes,
            "close": closes,
            "volume": 1.0,
        }
    )


def test_rsi_values_before_its_warm_up_never_signal() -> None:
    """pandas-ta's RSI exists from the second candle: a dip and a bounce inside the warm-up
    cross its levels, and the strategy interface holds them back (backtest and live alike)."""
    closes = [100.0, 99.0, 98.0, 97.0, 120.0, 121.0, 80.0, 70.0, *[71.0] * 30]
    strategy = build_strategy("rsi", {"length": 14})
    raw = strategy.compute_signals(_candles(closes)).to_numpy()
    assert (raw[: strategy.warmup - 1] != 0).any()  # the indicator did signal early
    codes = strategy.signals(_candles(closes)).to_numpy()
    assert (codes[: strategy.warmup - 1] == 0).all()
    np.testing.assert_array_equal(codes[strategy.warmup - 1 :], raw[strategy.warmup - 1 :])


def test_a_real_window_whose_rsi_signals_inside_its_warm_up(shared_data: Path) -> None:
    """BTC 1h from its 98th candle: RSI(14) enters on the window's 7th candle."""
    window = read_candle_file(shared_data / "BTC_USDT-1h.csv.gz").iloc[97:140]
    strategy = build_strategy("rsi")
    assert strategy.compute_signals(window).iloc[6] == ENTER
    assert (strategy.signals(window).iloc[: strategy.warmup - 1] == 0).all()
    live = [
        signal_from_candles("BTC/USDT", strategy, window.iloc[:end]).action
        for end in range(1, strategy.warmup)
    ]
    assert set(live) == {Action.HOLD}


def test_the_grids_description_says_what_its_exits_are_for_any_spacing() -> None:
    grid = build_strategy("grid", {"spacing": 0.03})
    assert "one spacing up" not in grid.description
    assert "independent of `spacing`" in grid.description
    assert (grid.exit_policy.take_profit, grid.exit_policy.stop_loss) == (0.01, 0.05)


@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_no_entry_before_the_atr_of_its_stop_exists(name: str, btc_candles: pd.DataFrame) -> None:
    """ATR(100) exists from the 100th candle, later than any built-in's own warm-up: an entry
    before it would run without the stop it was configured with (live has it: it is handed a
    longer history). The warm-up rule waits for it."""
    strategy = build_strategy(name, {"atr_stop": 2.0, "atr_length": 100})
    window = btc_candles.iloc[2000:2400].reset_index(drop=True)
    codes = strategy.signals(window)
    missing = strategy.atr(window).isna()
    assert missing.sum() == 99
    assert (codes[missing] == 0).all()
    assert strategy.ready_after == 100
