"""Client order ids of resting stops (review finding F7 of session 22, issue 17).

A position bought in the very tick its predecessor's rest was sold must get its own resting
stop: the stop the tick's ``Protector.ensure`` placed on the predecessor's rest and the new
position's stop are two placements, so they carry two (deterministic) client order ids.
Found by a seeded portfolio fuzz (kernel vs live engine, paper exchange holding stops).
"""

from __future__ import annotations

import dataclasses
import random
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from bot.app.bootstrap import paper_account, risk_limits
from bot.app.config import Settings
from bot.core.domain import OrderIntent, OrderStatus, Side
from bot.research.account_terms import Overrides
from bot.research.portfolio import run_portfolio
from bot.risk.sizing import client_order_id
from bot.trading.protection import protection_key
from storage.alerts import SqliteAlertRepository
from storage.db import open_database
from storage.orders import SqliteOrderRepository
from storage.state import SqliteStateRepository
from strategies import Strategy, strategy_registry
from strategies.base import ENTER, EXIT, HOLD
from strategies.registry import Origin, install
from tests.integration.test_portfolio_parity import demo_start, plans_of
from tests.integration.test_position_lifecycle import (
    DATABASE,
    ENTRY_TICK,
    START,
    assert_under_its_stop,
    resting_stops,
)
from tests.rigs.live_rig import HOUR, PAIR, funded_fake, hourly, live_stack
from tests.rigs.pair_replay import FEE, SLIPPAGE, same_trade
from tests.rigs.portfolio_replay import replay_portfolio

T0 = 1_679_616_000_000
HOUR_MS = 3_600_000


class PairTimes(Strategy):
    """Signals at given (candle time, open) keys: each pair its own."""

    name = "pair_times"
    description = "test signals by time and open"
    param_specs = ()
    times: ClassVar[dict[tuple[int, float], int]] = {}

    @property
    def warmup(self) -> int:
        return 1

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        keys = zip(candles["timestamp"].tolist(), candles["open"].round(9).tolist(), strict=True)
        signals = [self.times.get(key, HOLD) for key in keys]
        return pd.Series(signals, index=candles.index).astype(np.int8)


def portfolio_window(  # noqa: C901  (the generator draws every setting in turn)
    seed: int, n: int = 80
) -> tuple[dict[str, pd.DataFrame], dict[tuple[int, float], int], dict[str, float], dict, bool]:
    """A seeded portfolio: 2-3 pairs' candles, signal keys, exits, [risk], resting stops."""
    r = random.Random(seed)
    count = r.choice([2, 3])
    frames, times = {}, {}
    for pair in ("BTC/USDT", "ETH/USDT", "SOL/USDT")[:count]:
        price = r.choice([100.0, 20.0, 3.0])
        rows = []
        for i in range(n):
            o = price
            c = o * (1 + r.gauss(0, 0.02))
            h = max(o, c) * (1 + abs(r.gauss(0, 0.01)))
            lo = min(o, c) * (1 - abs(r.gauss(0, 0.01)))
            v = r.choice([0.0, 5.0, 20.0, 40.0, 80.0, 1000.0, 1000.0, 1000.0]) * (100.0 / price)
            rows.append((T0 + i * HOUR_MS, o, h, lo, c, v))
            price = c
            x = r.random()
            if x < 0.15:
                times[(T0 + i * HOUR_MS, round(o, 9))] = ENTER
            elif x < 0.25:
                times[(T0 + i * HOUR_MS, round(o, 9))] = EXIT
        columns = ["timestamp", "open", "high", "low", "close", "volume"]
        frames[pair] = pd.DataFrame(rows, columns=columns)
    params: dict[str, float] = {}
    for key, values in (
        ("stop_loss", [0.02, 0.04]),
        ("take_profit", [0.03, 0.06]),
        ("trailing_stop", [0.02, 0.03]),
        ("entry_offset", [0.002, 0.002]),
    ):
        if r.random() < 0.35:
            params[key] = r.choice(values)
    risk: dict[str, float] = {}
    if r.random() < 0.5:
        risk["max_open_positions"] = r.choice([1, 2])
    if r.random() < 0.4:
        risk["max_drawdown"] = r.choice([0.02, 0.04])
    if r.random() < 0.4:
        risk["daily_loss_limit"] = r.choice([0.005, 0.01])
    if r.random() < 0.4:
        risk["cooldown_losses"] = 1
        risk["cooldown_candles"] = r.choice([2, 5])
    if r.random() < 0.3:
        risk["max_total_exposure"] = 0.5
    risk.setdefault("max_position_fraction", 1.0)
    return frames, times, params, risk, r.random() < 0.3


async def test_a_position_opened_as_the_last_one_is_sold_keeps_its_resting_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """F7 (live engine): ETH/USDT's resting stop fills in part (the cap: 80 of 159 coins) in the
    candle opening 2023-03-26 13:00; at that close Protector.ensure places a stop on the rest
    (id pp2x<13:00>sstop), the per-candle check sells the rest at market (cancelling it), and
    the entry signal of the same candle buys 183 coins: Engine._opened places their stop with
    the SAME client order id (same run, candle, side, purpose), which the executor finds
    journaled and never sends, while the stop book remembers it as resting. The new position
    has no stop on the account for its life (Protector.ensure sees a level and places none);
    only the per-candle check sells it, at the next open (2.4368) instead of the stop's level
    (2.4476, the kernel's)."""
    frames, times, params, risk, resting = portfolio_window(1273)
    assert (params, resting) == ({"stop_loss": 0.02}, True)
    monkeypatch.setattr(PairTimes, "times", times)
    install(strategy_registry().adding(PairTimes, Origin("file", __file__)))
    settings = Settings.model_validate(
        {
            "market_data": {
                "source": "replay",
                "replay_files": {pair: f"{pair.replace('/', '_')}-1h.csv.gz" for pair in frames},
            },
            "paper": {"balance": 1000.0, "fee": FEE, "slippage": SLIPPAGE, "max_volume_share": 0.1},
            "risk": risk,
            "pairs": [
                {
                    "pair": pair,
                    "strategy": PairTimes.name,
                    "timeframe": "1h",
                    "params": params,
                    "capital_share": 1 / len(frames),
                }
                for pair in frames
            ],
        }
    )
    account = dataclasses.replace(paper_account(settings), rests_stops=True)
    outcome = await replay_portfolio(
        plans_of(settings, frames), account, risk_limits(settings), start=demo_start(frames)
    )
    result = run_portfolio(settings, frames, overrides=Overrides(resting_stops=True))
    for pair in result.pairs:
        expected = pair.table.trades()[: pair.table.closed]
        got = outcome.trades[pair.pair]
        assert len(got) == len(expected), pair.pair
        moved = [(a, b) for a, b in zip(got, expected, strict=True) if not same_trade(a, b)]
        assert not moved, (pair.pair, moved[:1])


async def test_a_stop_whose_id_is_another_orders_already_is_alerted_and_placed_next_tick(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    """A stop placement whose client order id the journal holds already (for an order taken off
    before) is sent nowhere by the executor: the stop book must not believe it rests. It is
    alerted as the books disagreeing with the exchange, and the next tick places a stop."""
    fake = funded_fake(btc_candles)
    params = {"stop_loss": 0.05}
    async with live_stack(tmp_path, fake, START, params) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
    (stop,) = resting_stops(fake)
    fake.cancel(stop)
    run_id = int(stop.client_id.removeprefix("pp").split("x")[0])
    last_candle = ENTRY_TICK - HOUR - timedelta(seconds=5)  # the last closed at the restart
    taken = client_order_id(run_id, last_candle, Side.SELL, "restop")
    async with open_database(tmp_path / DATABASE) as db:  # the restart's stop id, taken already
        state, orders = SqliteStateRepository(db), SqliteOrderRepository(db)
        saved = await state.get(protection_key(PAIR))
        await state.set(protection_key(PAIR), {**saved, "resting_stop": None}, ENTRY_TICK)
        intent = OrderIntent(taken, run_id, PAIR, Side.SELL, stop.quantity, 1.0, ENTRY_TICK)
        await orders.add(intent)
        await orders.update(taken, OrderStatus.CANCELED, ENTRY_TICK)
    async with live_stack(tmp_path, fake, ENTRY_TICK + HOUR / 2, params) as (trading, market, _):
        assert resting_stops(fake) == []
        async with open_database(tmp_path / DATABASE) as db:
            alerts = await SqliteAlertRepository(db).pending(100)
        assert [a.text for a in alerts if a.kind == "reconciliation_drift" and taken in a.text]
        await hourly(trading, market, ENTRY_TICK + HOUR, ENTRY_TICK + 2 * HOUR)
        position = trading.engine.portfolio.position(PAIR)
    assert position is not None
    assert_under_its_stop(fake, position, 0.05)
