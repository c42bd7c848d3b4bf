"""Monte Carlo robustness (issue 18): bootstraps of known trade sequences against figures
worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from bot.core.errors import UserInputError
from bot.research.monte_carlo import monte_carlo, resample_count, trade_returns


def test_trade_returns_are_pnl_over_the_equity_each_trade_was_entered_on() -> None:
    returns = trade_returns(np.array([10.0, -11.0, 5.0]), 100.0)
    assert returns.tolist() == pytest.approx([0.1, -0.1, 5 / 99])


def test_equal_trades_give_the_deterministic_result_at_every_percentile() -> None:
    gains = monte_carlo(np.full(7, 0.02), 500, halt=0.15, seed=3)
    assert gains.final_return == pytest.approx((1.02**7 - 1,) * 3)
    assert gains.max_drawdown == pytest.approx((0.0, 0.0, 0.0))
    assert gains.halt_chance == 0.0
    losses = monte_carlo(np.full(4, -0.05), 500, halt=0.15, seed=3)
    assert losses.final_return == pytest.approx((0.95**4 - 1,) * 3)
    assert losses.max_drawdown == pytest.approx((1 - 0.95**4,) * 3)
    assert losses.halt_chance == 1.0  # 18.5 % deep, past the 15 % halt


def test_the_halt_chance_of_one_big_loss_matches_the_hand_computation() -> None:
    # Nine gains of 10 % and one loss of 20 %: a resample goes past the 15 % halt exactly when
    # it draws the loss at least once, 1 - 0.9 ** 10 = 65.13 % of the time.
    returns = np.array([0.1] * 9 + [-0.2])
    figures = monte_carlo(returns, 20_000, halt=0.15, seed=7)
    assert figures.halt_chance == pytest.approx(1 - 0.9**10, abs=0.015)  # ~4 sigma
    assert figures.max_drawdown[0] == 0.0  # the 5th percentile drew no loss (0.9**10 = 35 %)
    assert figures.max_drawdown[1] == pytest.approx(0.2)
    assert figures.final_return[1] == pytest.approx(1.1**9 * 0.8 - 1)  # the median draws one
    assert figures == monte_carlo(returns, 20_000, halt=0.15, seed=7)  # seeded: reproducible
    assert figures != monte_carlo(returns, 20_000, halt=0.15, seed=8)


def test_the_starting_balance_is_the_first_peak() -> None:
    figures = monte_carlo(np.array([-0.1, -0.1]), 100, halt=0.5)
    assert figures.max_drawdown == pytest.approx((0.19, 0.19, 0.19))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "from 1 to 100,000"),
        ("-5", "from 1 to 100,000"),
        ("100001", "from 1 to 100,000"),
        ("2.5", "whole number"),
        ("lots", "whole number"),
    ],
)
def test_a_bad_resample_count_is_refused(text: str, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        resample_count(text, "--monte-carlo")
    assert resample_count("1000", "--monte-carlo") == 1000


def test_fewer_than_two_trades_are_refused() -> None:
    with pytest.raises(UserInputError, match="at least 2 closed trades; this backtest closed 1"):
        monte_carlo(np.array([0.1]), 100, halt=0.15)


def test_without_a_drawdown_halt_there_is_no_halt_chance() -> None:
    figures = monte_carlo(np.array([0.1, -0.2]), 100, halt=0.0)
    assert figures.halt_chance is None
    assert figures.lines()[-1] == "no drawdown halt set (risk max_drawdown 0)"
    assert "over the 12.5% halt" in monte_carlo(np.array([0.1, -0.2]), 100, halt=0.125).lines()[-1]
