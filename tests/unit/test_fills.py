"""The one fill model (bot/risk/fills.py): its prices and sizes, and that no other module keeps
a copy of it (a copy is how the backtest and paper trading drift apart)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bot.risk.fills import (
    bought_at,
    capped,
    coins_for,
    fee_of,
    held_return,
    limit_bought_at,
    sold_at,
    stop_sold_at,
)

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "bot" / "risk" / "fills.py"


def test_prices_with_slippage_stops_that_gap_and_limits_that_open_under() -> None:
    assert bought_at(100.0, 0.001) == pytest.approx(100.1)
    assert sold_at(100.0, 0.001) == pytest.approx(99.9)
    assert stop_sold_at(99.0, 97.0, 0.001) == pytest.approx(97.0 * 0.999)  # at its level
    assert stop_sold_at(95.0, 97.0, 0.001) == pytest.approx(95.0 * 0.999)  # gapped below it
    assert limit_bought_at(101.0, 100.0) == 100.0  # no slippage on a limit
    assert limit_bought_at(99.0, 100.0) == 99.0  # opened under it


def test_a_budget_buys_coins_and_their_fee_or_only_coins_when_the_fee_is_taken_from_them() -> None:
    in_quote = coins_for(1000.0, 100.0, 0.001, False)
    assert in_quote * 100.0 + fee_of(in_quote, 100.0, 0.001) == pytest.approx(1000.0)
    assert coins_for(1000.0, 100.0, 0.001, True) == pytest.approx(10.0)
    assert fee_of(2.0, 50.0, 0.001) == pytest.approx(0.1)


def test_an_order_fills_at_most_its_share_of_the_candles_volume_and_nothing_in_an_empty_one() -> (
    None
):
    assert capped(5.0, 20.0, 0.1) == 2.0  # the rest does not fill
    assert capped(1.5, 20.0, 0.1) == 1.5  # under the cap: all of it
    assert capped(5.0, 20.0, 0.0) == 5.0  # 0: no cap
    for share in (0.0, 0.1):  # nobody traded in the candle: nothing fills, whatever the cap
        assert capped(5.0, 0.0, share) == 0.0
        assert capped(5.0, -1.0, share) == 0.0


def test_the_buy_and_hold_return_keeps_its_float_operations() -> None:
    """Bit for bit what the benchmark computed before the model had it (a reordered formula
    differs in the last bit for about 40% of prices)."""
    for first_open, last_close, fee, slippage in [
        (22675.06, 16468.3, 0.001, 0.0005),
        (100.0, 123.45, 0.00075, 0.0),
        (0.5123, 0.4987, 0.002, 0.001),
    ]:
        bought, sold = first_open * (1 + slippage), last_close * (1 - slippage)
        assert held_return(bought, sold, fee) == sold * (1 - fee) / (bought * (1 + fee)) - 1


def _copies(path: Path) -> list[str]:
    """Arithmetic of the model written out: ``1 +/- slippage`` or ``1 + fee_rate`` anywhere."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub):
            sides = (node.left, node.right)
            one = any(isinstance(s, ast.Constant) and s.value == 1 for s in sides)
            names = {ast.unparse(s).rpartition(".")[2] for s in sides}
            if one and names & {"slippage", "_slippage", "fee_rate", "_fee_rate"}:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_but_the_model_computes_a_fill() -> None:
    copies = [
        copy
        for path in sorted((ROOT / "bot").rglob("*.py"))
        if path != MODEL
        for copy in _copies(path)
    ]
    assert not copies, f"fill arithmetic outside bot/risk/fills.py: {copies}"
