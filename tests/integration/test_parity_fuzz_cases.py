"""Hostile review of session 22 (issue 17): the kernel selling capped sales in parts against
the live engine on the default paper account (paper.max_volume_share 0.1).

Each case is a small random-walk window (70 1h candles, seeded) whose volumes are often thin
or zero, with signals at given candle times: the kernel and the live engine (test_parity's
``live_trades``: the real service, paper exchange, SQLite) must make the same closed trades.
Found by a seeded fuzz of 250 windows; each seed here is one defect, explained in its id.
"""

from __future__ import annotations

import random

import pandas as pd
import pytest

from bot.core.domain import RiskLimits
from bot.research.backtest import BacktestSetup, run_backtest
from strategies import strategy_registry
from strategies.base import ENTER, EXIT
from strategies.registry import Origin, install
from tests.integration.test_parity import AtTimes
from tests.rigs.pair_replay import FEE, PAIR, SLIPPAGE, live_trades, same_trade

T0 = 1_679_616_000_000
HOUR = 3_600_000


def window(
    seed: int, n: int = 70
) -> tuple[pd.DataFrame, dict[int, int], dict[str, float], RiskLimits, bool]:
    """A seeded window: candles, signal times, exit parameters, limits, resting stops."""
    r = random.Random(seed)
    price, rows = 100.0, []
    for i in range(n):
        o = price
        c = o * (1 + r.gauss(0, 0.02))
        h = max(o, c) * (1 + abs(r.gauss(0, 0.01)))
        lo = min(o, c) * (1 - abs(r.gauss(0, 0.01)))
        v = r.choice([0.0, 5.0, 20.0, 40.0, 80.0, 1000.0, 1000.0])
        rows.append((T0 + i * HOUR, o, h, lo, c, v))
        price = c
    candles = pd.DataFrame(rows, columns=["timestamp", "open", "high", "low", "close", "volume"])
    times = {}
    for i in range(n):
        x = r.random()
        if x < 0.15:
            times[T0 + i * HOUR] = ENTER
        elif x < 0.25:
            times[T0 + i * HOUR] = EXIT
    params: dict[str, float] = {}
    for key, values in (
        ("stop_loss", [0.02, 0.04]),
        ("take_profit", [0.03, 0.06]),
        ("trailing_stop", [0.02, 0.03]),
        ("entry_offset", [0.002]),
    ):
        if r.random() < 0.35:
            params[key] = r.choice(values)
    limits = r.choice(
        [
            RiskLimits(),
            RiskLimits(max_position_fraction=1.0),
            RiskLimits(
                max_position_fraction=1.0,
                daily_loss_limit=0.01,
                max_drawdown=0.05,
                cooldown_losses=1,
                cooldown_candles=3,
            ),
        ]
    )
    return candles, times, params, limits, r.random() < 0.4


@pytest.mark.parametrize(
    "seed",
    [
        # F1 (the kernel): a limit entry fills in candle 25 16:00 and its stop is reached inside
        # that candle: the sale at the next open (17:00) sells 8 of 10.65 coins (the cap). Live,
        # Exits.sell puts the resting stop back on the rest at 17:00; candle 17:00 opens under
        # it, so it fills at that open (90.229, as the first part). The kernel put no stop back
        # (it rested one after a limit fill only when no exit triggered) and sold the rest at
        # the next turn's open (18:00, 87.48).
        5,
        # A limit entry fills in candle 24 04:00 whose signal is an exit; its sale meets the
        # zero-volume candle 05:00. The kernel sends it again at the next close (sold 06:00);
        # live loses it (remember_exit ran before the entry was booked, no exit_due, the sale
        # filled nothing so no exit_pending): held 32 more hours, to the next exit signal.
        76,
        # F2 again, with the cap: the lost exit signal's sale is missing from the parts sold.
        344,
    ],
    ids=[
        "resting-stop-put-back-after-a-capped-sale-in-the-limit-fill-candle",
        "exit-on-limit-fill-candle-meets-zero-volume",
        "exit-on-limit-fill-candle-then-capped-sales",
    ],
)
async def test_capped_and_zero_volume_sales_make_the_live_engines_trades(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    candles, times, params, limits, resting = window(seed)
    monkeypatch.setattr(AtTimes, "times", times)
    install(strategy_registry().adding(AtTimes, Origin("file", __file__)))
    setup = BacktestSetup(
        pair=PAIR,
        timeframe="1h",
        fee_rate=FEE,
        slippage=SLIPPAGE,
        limits=limits,
        resting_stops=resting,
        volume_share=0.1,
    )
    backtest = run_backtest(candles, AtTimes(params), setup)
    expected = backtest.table.trades()[: backtest.table.closed]
    live, vetoes = await live_trades(
        candles, AtTimes.name, params, limits, volume_share=0.1, rests_stops=resting
    )
    assert len(live) == len(expected)
    mismatches = [(a, b) for a, b in zip(live, expected, strict=True) if not same_trade(a, b)]
    assert not mismatches, mismatches[:1]
    assert vetoes == backtest.vetoes
