"""Parity for user code (issue 18): the backtest == live engine suites run on a user strategy
loaded as a trader loads one, from a strategies folder and from an installed package's entry
point (tests/rigs/user_loads.py: the real ``load_strategies``, a real dist-info read by the
real importlib.metadata), never on the fixture class imported directly. The strategy is
tests/strategy_fixtures.py's ``UserTrend``: parameters with bounds, SMA and RSI from pandas-ta,
its own exit policy (a stop-loss and a take-profit by default).

The user strategy only computes the signal series; the kernel (numba) and the live engine do
the rest as for a built-in, so the same tolerances hold as in test_parity.py (trade for trade,
rel 1e-9), test_portfolio_parity.py and test_venue_parity.py (a venue's lot and price steps).

Suite time: the one-pair cases replay 1,200 candles live each; every case runs on the folder
load, and one (signals only: the strategy's own exits) on the entry point, whose point is the
load path, not the engine. One portfolio case (2 pairs, 300 candles) per load; one venue case
(Bybit, 300 candles) on the folder load.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from bot.app.bootstrap import paper_account, risk_limits
from bot.app.strategy_loading import LoadedStrategies, load_strategies
from bot.core.domain import RiskLimits
from bot.research.backtest import BacktestSetup, run_backtest
from bot.research.strategy_check import check_strategy
from strategies.registry import install
from tests.integration.test_parity import CASES, PARITY_CANDLES
from tests.integration.test_portfolio_parity import (
    Case,
    assert_same,
    demo_start,
    kernel,
    plans_of,
    settings_for,
    windows,
)
from tests.integration.test_venue_parity import ACCOUNTS, both_trades, differences
from tests.rigs.pair_replay import FEE, PAIR, SLIPPAGE, backtest_equals_live, live_trades
from tests.rigs.portfolio_replay import replay_portfolio
from tests.rigs.user_loads import LOADS, NAME, forget, load_user
from tests.rigs.venue_parity import FIRST, TRADED, WARM
from tests.strategy_fixtures import UserTrend, user_strategy_source

ENTRY_POINT_CASES = ("signals only",)  # the strategy's own exits
MATRIX = [
    (how, case) for how in LOADS for case in CASES if how == "folder" or case in ENTRY_POINT_CASES
]
OWN_EXITS = {"stop_loss", "take_profit"}  # UserTrend.exit_defaults


@pytest.fixture(scope="module")
def loads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LoadedStrategies]]:
    """The user strategy loaded each way, once for the module (the folder first: with the
    package on the path the folder's copy would be refused as taking its name)."""
    root = tmp_path_factory.mktemp("user_strategies")
    yield {how: load_user(how, root / how.replace(" ", "_")) for how in LOADS}
    forget()


@pytest.fixture(scope="module")
def candles(btc_candles: pd.DataFrame) -> pd.DataFrame:
    return btc_candles.iloc[:PARITY_CANDLES].reset_index(drop=True)


def loaded(loads: dict[str, LoadedStrategies], how: str) -> LoadedStrategies:
    """The process's registry is the one ``how`` loaded, as the config installs it."""
    install(loads[how].registry)
    return loads[how]


@pytest.mark.parametrize(("how", "case"), MATRIX, ids=[f"{h}-{c}" for h, c in MATRIX])
async def test_a_user_strategys_backtest_trades_equal_the_live_engines(
    how: str, case: str, candles: pd.DataFrame, loads: dict[str, LoadedStrategies]
) -> None:
    params, limits = CASES[case]
    strategy = loaded(loads, how).registry.build(NAME, params)
    assert type(strategy).__module__ != UserTrend.__module__
    reasons = {t.exit_reason for t in await backtest_equals_live(candles, strategy, params, limits)}
    assert "signal" in reasons
    if params:
        assert reasons - {"signal"}, "no protective exit fired"
    else:
        assert reasons >= OWN_EXITS, "the strategy's own exit policy never fired"


# The user strategy on one pair, a built-in on the other, competing for one position with limit
# entries and volatility scaling (test_portfolio_parity's first case).
USER_MIX = Case(
    risk={
        2: {
            "max_position_fraction": 1.0,
            "max_open_positions": 1,
            "volatility_short": 12,
            "volatility_long": 96,
        }
    },
    params={"entry_offset": 0.002},
    mixes={2: [(NAME, {"length": 20}), ("grid", {})]},
    fires=("max_open",),
)


@pytest.mark.parametrize("how", LOADS)
async def test_a_portfolio_with_a_user_strategy_equals_the_live_engine(
    how: str, loads: dict[str, LoadedStrategies]
) -> None:
    loaded(loads, how)
    settings = settings_for(USER_MIX, 2)
    candles = windows(2)
    outcome = await replay_portfolio(
        plans_of(settings, candles),
        paper_account(settings),
        risk_limits(settings),
        start=demo_start(candles),
    )
    user_pair = settings.pairs[0].pair
    assert len(outcome.trades[user_pair]) >= 2
    assert outcome.veto_count("max_open") > 0
    assert_same(kernel(settings, candles, False), outcome, candles)


async def test_a_user_strategy_on_a_venue_makes_the_backtests_trades(
    tmp_path: Path, btc_candles: pd.DataFrame, loads: dict[str, LoadedStrategies]
) -> None:
    """Bybit's fake (split fills, the fee in the coin bought, stops resting on the venue), a
    stop-loss and a trailing stop: the venue parity's tolerances (test_venue_parity's
    ``differences``). The folder's load: the entry point's point is the load path, which its
    one-pair and portfolio cases above cover; the engine runs either load's class alike."""
    loaded(loads, "folder")
    window = btc_candles.iloc[FIRST : FIRST + WARM + TRADED].reset_index(drop=True)
    params = {"stop_loss": 0.01, "trailing_stop": 0.015}
    live, expected, reasons, fake = await both_trades(tmp_path, window, "bybit", NAME, params)
    assert len(expected) >= 3
    assert {"stop_loss", "trailing_stop"} <= set(reasons)
    fired = {o.kind for o in fake.orders.values() if o.kind != "MARKET" and o.executed}
    assert "STOP_LOSS" in fired  # resting on the venue, filled inside a candle
    assert len(live) == len(expected), (live, expected)
    account = ACCOUNTS["bybit"]
    found = [
        (a, b, why)
        for a, b in zip(live, expected, strict=True)
        if (why := differences(a, b, account.tick, resting_stops=True, limit_entries=False))
    ]
    assert not found, found[:2]


SMOOTHING = """    @property
    def smoothing_length(self) -> int:
        return max(int(self.params["rsi_length"]), super().smoothing_length)

"""


async def test_a_user_strategy_that_hides_its_smoothing_trades_otherwise_live_and_fails_its_check(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    """Why parity can break for user code, and what says so: the live engine hands a strategy
    ``history`` candles, max(warmup, 20 x (smoothing_length + 1)). Without its
    ``smoothing_length`` UserTrend gets 31, and its RSI, an exponential smoothing, is still
    remembering where that window began: live it decides otherwise than the backtest, which
    saw the whole history. `strategy check`'s warm-up analysis names the history it needs."""
    source = user_strategy_source()
    assert SMOOTHING in source
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    (folder / f"{NAME}.py").write_text(source.replace(SMOOTHING, ""), encoding="utf-8")
    loaded = load_strategies(folder, explicit=True)
    install(loaded.registry)
    strategy = loaded.registry.build(NAME)
    assert strategy.history == strategy.warmup == 31
    setup = BacktestSetup(pair=PAIR, timeframe="1h", fee_rate=FEE, slippage=SLIPPAGE)
    candles = btc_candles.iloc[:400].reset_index(drop=True)
    backtest = run_backtest(candles, strategy, setup)
    expected = backtest.table.trades()[: backtest.table.closed]
    live, _ = await live_trades(candles, NAME, {}, RiskLimits())
    assert [(t.entry_time, t.exit_time) for t in live] != [
        (t.entry_time, t.exit_time) for t in expected
    ]
    report = check_strategy(strategy, candles)  # the candles it traded otherwise on
    warmup = next(verdict for verdict in report.verdicts if verdict.check == "warm-up")
    assert not warmup.passed
    assert "declared warm-up too short: it needs at least" in warmup.detail
    assert report.warmup_needed is not None
    assert report.warmup_needed > strategy.history
    sys.modules.pop(f"pairpilot_user_strategies.{NAME}", None)
