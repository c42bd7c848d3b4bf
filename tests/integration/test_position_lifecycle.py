"""A position's whole life on a real-shaped exchange: booked by any path, always protected,
closed however pairpilot was interrupted. The live stack (ccxt, SQLite) on the fake exchange.

EMA 12/26 on the BTC/USDT sample enters on the candle of 2025-06-27 04:00 (acted on at 05:00)
and exits on the candle of 07:00 (acted on at 08:00).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from aiohttp import web

from bot.core.domain import Order, OrderIntent, Position, Side
from bot.core.errors import OrderOutcomeUnknown, UserInputError
from bot.exchange.ccxt_exchange import CcxtExchange
from bot.portfolio.performance import round_trips
from bot.trading.protection import protection_key
from storage.alerts import SqliteAlertRepository
from storage.db import open_database
from storage.fills import SqliteFillRepository
from storage.orders import SqliteOrderRepository
from storage.pair_runs import SqlitePairRunRepository
from storage.state import SqliteStateRepository
from tests.doubles.exchange_chaos import run_fault_soak
from tests.doubles.fake_exchange import FakeBinance, Fault
from tests.rigs.checked import record_check
from tests.rigs.invariants import Invariants
from tests.rigs.live_rig import HOUR, PAIR, funded_fake, hourly, live_stack

START = datetime(2025, 6, 27, 4, 30, tzinfo=UTC)
ENTRY_TICK = datetime(2025, 6, 27, 5, 0, 5, tzinfo=UTC)
EXIT_TICK = datetime(2025, 6, 27, 8, 0, 5, tzinfo=UTC)
DATABASE = "pairpilot.sqlite"


def resting_stops(fake: FakeBinance) -> list:
    return [o for o in fake.orders.values() if o.kind == "STOP_LOSS" and o.status == "NEW"]


def assert_under_its_stop(fake: FakeBinance, position: Position, stop_loss: float) -> None:
    """One stop rests on the exchange for the whole position, at the stop-loss level."""
    (stop,) = resting_stops(fake)
    assert stop.quantity == pytest.approx(position.amount)
    assert stop.stop_price == pytest.approx(position.average_price * (1 - stop_loss), abs=0.01)


def fills_while_down(fake: FakeBinance, order: object, price: float) -> None:
    """The market reaches ``order`` (a resting limit or stop) while pairpilot is down."""
    fake.prices["BTCUSDT"] = price
    fake.trigger_stops()
    assert order.status == "FILLED"


def lose_the_next_answer(fake: FakeBinance, lookups: int) -> None:
    """The next order is placed but its answer lost, and the next ``lookups`` look-ups fail."""
    fake.faults += [
        Fault("/api/v3/order", 503, {"code": -1000, "msg": "lost"}, method="POST", after=True),
        Fault("/api/v3/order", 503, {"code": -1000, "msg": "busy"}, method="GET", times=lookups),
    ]


async def alerts_of(tmp_path: Path) -> list[tuple[str, str]]:
    async with open_database(tmp_path / DATABASE) as db:
        return [(a.kind, a.text) for a in await SqliteAlertRepository(db).pending(10_000)]


async def saved(tmp_path: Path, key: str) -> object:
    async with open_database(tmp_path / DATABASE) as db:
        return await SqliteStateRepository(db).get(key)


async def test_an_exit_that_meets_an_outage_at_the_close_is_sold_on_the_next_tick(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    async with live_stack(tmp_path, fake, START) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, EXIT_TICK)
        assert trading.engine.portfolio.position(PAIR) is not None
        # The exit meets a short outage: answered 503, nothing placed (and not resent).
        fake.faults.append(
            Fault("/api/v3/order", 503, {"code": -1000, "msg": "busy"}, method="POST")
        )
        await hourly(trading, market, EXIT_TICK, EXIT_TICK + HOUR)
        assert fake.faults[0].times == 0
        assert trading.engine.portfolio.position(PAIR) is not None
        await hourly(trading, market, EXIT_TICK + HOUR, EXIT_TICK + 2 * HOUR)  # no new signal
        assert trading.engine.portfolio.position(PAIR) is None
    sells = [o for o in fake.orders.values() if o.side == "SELL"]
    assert [o.status for o in sells] == ["FILLED"]
    assert fake.balances.get("BTC", 0.0) == pytest.approx(0.0)


@pytest.mark.parametrize("restart", [False, True], ids=["next tick", "crash and restart"])
async def test_an_entry_booked_later_gets_its_resting_stop_and_atr_stop(
    tmp_path: Path, btc_candles: pd.DataFrame, restart: bool
) -> None:
    """The entry's answer is lost: it is booked on the next tick, or (the process died between
    sending and booking) by the start-up reconciliation."""
    fake = funded_fake(btc_candles)
    params = {"stop_loss": 0.05, "atr_stop": 2.0}
    async with live_stack(tmp_path, fake, START, params) as (trading, market, _):
        await hourly(trading, market, START + HOUR / 2, ENTRY_TICK - HOUR)
        # The entry is placed but its answer is lost, and so is every lookup after it.
        fake.faults += [
            Fault("/api/v3/order", 503, {"code": -1000, "msg": "lost"}, method="POST", after=True),
            Fault("/api/v3/order", 503, {"code": -1000, "msg": "busy"}, method="GET", times=2),
        ]
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
        assert [f.times for f in fake.faults] == [0, 0]
        assert trading.engine.portfolio.position(PAIR) is None  # not known yet
        assert resting_stops(fake) == []
        if not restart:
            await hourly(trading, market, ENTRY_TICK + HOUR, ENTRY_TICK + 2 * HOUR)
            position = trading.engine.portfolio.position(PAIR)
    if restart:
        async with live_stack(tmp_path, fake, ENTRY_TICK + HOUR / 2, params) as (
            trading,
            market,
            _,
        ):
            assert trading.engine.portfolio.position(PAIR) is not None  # booked at start-up
            await hourly(trading, market, ENTRY_TICK + HOUR, ENTRY_TICK + 2 * HOUR)
            position = trading.engine.portfolio.position(PAIR)
    assert position is not None
    protection = await saved(tmp_path, protection_key(PAIR))
    assert protection["atr_distance"] > 0  # the ATR stop kept its distance
    (stop,) = resting_stops(fake)
    assert stop.quantity == pytest.approx(position.amount)
    entry = position.average_price
    expected = max(entry * 0.95, entry - protection["atr_distance"])
    assert stop.stop_price == pytest.approx(expected, abs=0.01)


async def test_a_refused_stop_placement_is_placed_again_on_the_next_tick(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    posts: list[str] = []

    def refuse_second_order(request: web.Request) -> Fault | None:
        if request.method != "POST" or request.path != "/api/v3/order":
            return None
        posts.append(request.path)
        if len(posts) != 2:  # the first is the entry, the second its stop
            return None
        return Fault(
            request.path, 400, {"code": -2010, "msg": "Stop price would trigger immediately."}
        )

    fake.chaos = refuse_second_order
    async with live_stack(tmp_path, fake, START, {"stop_loss": 0.05}) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
        assert trading.engine.portfolio.position(PAIR) is not None
        assert resting_stops(fake) == []  # refused
        await hourly(trading, market, ENTRY_TICK + HOUR, ENTRY_TICK + 2 * HOUR)
        position = trading.engine.portfolio.position(PAIR)
    assert_under_its_stop(fake, position, 0.05)


async def test_a_limit_entry_that_filled_during_a_restart_gets_its_stop(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    params = {"entry_offset": 0.001, "stop_loss": 0.05}
    async with live_stack(tmp_path, fake, START, params) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
    (limit,) = [o for o in fake.orders.values() if o.kind == "LIMIT"]
    assert limit.status == "NEW"
    fills_while_down(fake, limit, limit.stop_price * 0.999)
    restart = ENTRY_TICK + HOUR / 2
    async with live_stack(tmp_path, fake, restart, params) as (trading, market, _):
        position = trading.engine.portfolio.position(PAIR)
        assert position is not None  # booked by the start-up reconciliation
        await hourly(trading, market, ENTRY_TICK + HOUR, ENTRY_TICK + 2 * HOUR)
    assert_under_its_stop(fake, position, 0.05)


async def test_stoppair_takes_a_resting_limit_entry_off_the_exchange(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    params = {"entry_offset": 0.001}
    async with live_stack(tmp_path, fake, START, params) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
        (limit,) = [o for o in fake.orders.values() if o.kind == "LIMIT"]
        assert limit.status == "NEW"
        stopped = await trading.control.stop(PAIR)
        assert stopped.state.value == "stopped"
    assert limit.status == "CANCELED"
    assert fake.locked.get("USDT", 0.0) == pytest.approx(0.0)
    async with open_database(tmp_path / DATABASE) as db:
        order = await SqliteOrderRepository(db).require(limit.client_id)
    assert order.status.value == "canceled"


async def test_coins_of_a_pair_without_a_run_are_alerted_once_and_flatten_sells_them(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    async with live_stack(tmp_path, fake, START) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
        assert trading.engine.portfolio.position(PAIR) is not None
    async with open_database(tmp_path / DATABASE) as db:  # the run stopped, its coins stayed
        runs = SqlitePairRunRepository(db)
        (run,) = await runs.active()
        await runs.set_state(run.id, run.state.STOPPED, ENTRY_TICK)
    restart = ENTRY_TICK + HOUR
    async with live_stack(tmp_path, fake, restart) as (trading, market, _):
        assert trading.service.runs() == []
        for hour in range(1, 4):
            market.at(restart + hour * HOUR)
            await trading.service.tick()
        report = await trading.control.flatten()
        assert report.closed[PAIR] > 0
        assert report.clean
    unowned = [text for _, text in await alerts_of(tmp_path) if "no run trading it" in text]
    assert len(unowned) == 1
    assert fake.balances.get("BTC", 0.0) == pytest.approx(0.0)


async def test_a_configured_pair_stopped_with_stoppair_stays_stopped_after_a_restart(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    async with live_stack(tmp_path, fake, START) as (trading, _, _):
        await trading.control.stop(PAIR)
        assert trading.service.runs() == []
    async with live_stack(tmp_path, fake, START + HOUR) as (trading, market, _):
        assert trading.service.runs() == []
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + 2 * HOUR)
    assert fake.order_posts == 0
    async with open_database(tmp_path / DATABASE) as db:
        assert await SqlitePairRunRepository(db).active() == []
        started = await SqlitePairRunRepository(db).latest_for(PAIR)
    assert started.id == 1  # no new run was made


async def test_a_stop_that_fired_while_down_is_booked_with_its_alert_and_the_cooldown(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    risk = {"cooldown_losses": 1, "cooldown_candles": 6}
    params = {"stop_loss": 0.01}
    async with live_stack(tmp_path, fake, START, params, risk=risk) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
        run = trading.service.runs()[0]
    (stop,) = resting_stops(fake)
    fills_while_down(fake, stop, stop.stop_price * 0.999)
    restart = ENTRY_TICK + HOUR / 2
    async with live_stack(tmp_path, fake, restart, params, risk=risk) as (trading, _, _):
        assert trading.engine.portfolio.position(PAIR) is None
        block = await trading.engine.guard.entry_block(run, restart + HOUR)
    trades = [
        text for kind, text in await alerts_of(tmp_path) if kind == "trade" and "SELL" in text
    ]
    assert len(trades) == 1
    assert "trade PnL -" in trades[0]
    assert block is not None
    assert "cooling down" in block


async def test_a_sale_that_fails_or_is_refused_leaves_the_position_with_its_stop(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    async with live_stack(tmp_path, fake, START, {"stop_loss": 0.05}) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
        position = trading.engine.portfolio.position(PAIR)
        assert len(resting_stops(fake)) == 1
        fake.faults.append(
            Fault(
                "/api/v3/order",
                400,
                {"code": -1013, "msg": "Filter failure: LOT_SIZE"},
                method="POST",
            )
        )  # /stoppair: refused
        with pytest.raises(UserInputError, match="could not be closed"):
            await trading.control.stop(PAIR)
        (stop,) = resting_stops(fake)  # the stop it took off is back at once
        assert stop.quantity == pytest.approx(position.amount)
        assert [run.pair for run in trading.service.runs()] == [PAIR]
        fake.faults.append(
            Fault("/api/v3/order", 503, {"code": -1000, "msg": "busy"}, method="POST")
        )  # the sale fails (not resent)
        failed = await trading.control.flatten()  # goes on with every other pair, says why
        assert not failed.clean
        assert "ExchangeUnavailable" in failed.problems[PAIR]
        assert trading.engine.portfolio.position(PAIR) is not None
        (stop,) = resting_stops(fake)  # protected again at once
        assert stop.quantity == pytest.approx(position.amount)
        market.at(ENTRY_TICK + HOUR + HOUR / 60)
        report = await trading.control.flatten()  # the exchange answers again
        assert report.clean
    assert resting_stops(fake) == []
    assert fake.balances.get("BTC", 0.0) + fake.locked.get("BTC", 0.0) == pytest.approx(0.0)


async def test_a_halt_while_an_entry_is_prepared_sends_no_buy(
    tmp_path: Path, btc_candles: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/halt (and the kill switch) never wait for the tick: one lands after the entry passed
    its checks, while the entry is remembered. No buy is sent, as the halt's reply promised
    ("no new entries"). (Review r6 F2: the buy went out after the halt.)"""
    fake = funded_fake(btc_candles)
    async with live_stack(tmp_path, fake, START, {"stop_loss": 0.05}) as (trading, market, _):
        engine, state = trading.engine, trading.engine.state
        remember = state.set

        async def halted_meanwhile(key: str, value: object, now: datetime) -> None:
            if isinstance(value, dict) and "atr_distance" in value:  # the entry, remembered
                await engine.guard.halt("/halt by the admin", now)
            await remember(key, value, now)

        monkeypatch.setattr(state, "set", halted_meanwhile)
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
        assert await engine.guard.halted() is not None
        assert engine.portfolio.position(PAIR) is None
        assert [order for order in fake.orders.values() if order.side == "BUY"] == []


async def test_a_kill_switch_whose_first_balance_read_fails_goes_on_and_sells(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    """The kill switch reads the balances to record the user's own coins before it sells.
    A failed read there (the venue busy for a moment) is one problem of the report; the
    position is still sold. (The read raised out of the kill switch: nothing was sold.)"""
    fake = funded_fake(btc_candles)
    async with live_stack(tmp_path, fake, START, {"stop_loss": 0.05}) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
        assert trading.engine.portfolio.position(PAIR) is not None
        fake.faults.append(
            Fault("/api/v3/account", 503, {"code": -1000, "msg": "busy"}, times=2, method="GET")
        )  # both attempts of one read
        report = await trading.control.flatten()
        assert not report.clean
        assert "ExchangeUnavailable" in report.problems["your own holdings"]
        assert PAIR in report.closed
        assert trading.engine.portfolio.position(PAIR) is None
    assert resting_stops(fake) == []
    assert fake.balances.get("BTC", 0.0) + fake.locked.get("BTC", 0.0) == pytest.approx(0.0)


async def test_a_stop_whose_cancel_is_not_confirmed_is_kept_and_the_exit_retried(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    async with live_stack(tmp_path, fake, START, {"stop_loss": 0.05}) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, EXIT_TICK)
        (stop,) = resting_stops(fake)
        # Binance answers a cancel it could not act on "Unknown order sent."; the stop rests on.
        fake.faults.append(
            Fault(
                "/api/v3/order", 400, {"code": -2011, "msg": "Unknown order sent."}, method="DELETE"
            )
        )
        await hourly(trading, market, EXIT_TICK, EXIT_TICK + HOUR)
        assert stop.status == "NEW"
        assert trading.engine.portfolio.position(PAIR) is not None
        await hourly(trading, market, EXIT_TICK + HOUR, EXIT_TICK + 2 * HOUR)
        assert trading.engine.portfolio.position(PAIR) is None
    assert stop.status == "CANCELED"
    assert not [text for kind, text in await alerts_of(tmp_path) if kind == "order_rejected"]
    assert fake.balances.get("BTC", 0.0) + fake.locked.get("BTC", 0.0) == pytest.approx(0.0)


async def test_reconciliation_compares_cash_and_leaves_the_users_own_holdings_alone(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    fake.balances.update({"BNB": 3.0, "DOGE": 5.0, "BTC": 0.01})  # the user's own
    async with live_stack(tmp_path, fake, START) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
        assert trading.engine.portfolio.position(PAIR) is not None
    async with live_stack(tmp_path, fake, ENTRY_TICK + HOUR) as (trading, _, _):
        report = await trading.control.flatten()
        assert report.clean
    assert fake.balances["BTC"] == pytest.approx(0.01)  # never sold
    assert (fake.balances["BNB"], fake.balances["DOGE"]) == (3.0, 5.0)
    alerts = await alerts_of(tmp_path)
    assert not [text for kind, text in alerts if kind == "reconciliation_drift"]
    listed = [text for _, text in alerts if "beside pairpilot" in text]
    assert len(listed) == 1  # at the first start only
    assert all(coin in listed[0] for coin in ("BNB 3", "DOGE 5", "BTC 0.01"))
    fake.balances["USDT"] -= 100.0  # a withdrawal: the books' cash no longer matches
    async with live_stack(tmp_path, fake, ENTRY_TICK + 2 * HOUR) as _:
        pass
    drift = [text for kind, text in await alerts_of(tmp_path) if kind == "reconciliation_drift"]
    assert len(drift) == 1
    assert "USDT" in drift[0]
    assert "BNB" not in drift[0]


async def test_a_resting_limit_entry_counts_toward_the_open_positions(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    fake.add_candles("ETHUSDT", "1h", btc_candles)  # the same signals, on a second pair
    risk = {"max_open_positions": 1}
    async with live_stack(tmp_path, fake, START, {"entry_offset": 0.001}, risk=risk) as (
        trading,
        market,
        _,
    ):
        await check_defaults(tmp_path)  # ETH/USDT starts at the defaults
        await trading.control.start_pair("ETH/USDT", "ema_cross", "1h", {}, 0.25)
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
    assert [(o.symbol, o.kind) for o in fake.orders.values()] == [("BTCUSDT", "LIMIT")]
    async with open_database(tmp_path / DATABASE) as db:
        vetoes = await db.fetch_all("SELECT pair, reason FROM vetoes")
    assert [(row["pair"], "1 entries resting" in row["reason"]) for row in vetoes] == [
        ("ETH/USDT", True)
    ]


async def test_dust_left_by_fees_in_the_coin_bought_never_keeps_a_trade_open(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    fake.fee_asset = "received"  # Binance's default: the fee is taken from the coins bought
    risk = {"cooldown_losses": 1, "cooldown_candles": 3, "max_open_positions": 1}
    second_exit = datetime(2025, 6, 30, 12, 0, 5, tzinfo=UTC)  # the 11:00 candle's exit
    async with live_stack(tmp_path, fake, START, risk=risk) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, EXIT_TICK + HOUR)
        engine = trading.engine
        dust = engine.portfolio.position(PAIR)
        assert dust is not None  # the rest under the exchange's step: dust
        assert engine.exchange.too_small(PAIR, dust.amount, dust.average_price)
        run = trading.service.runs()[0]
        block = await engine.guard.entry_block(run, EXIT_TICK + HOUR)
        assert block is not None
        assert "cooling down" in block  # the losing trade counted
        # The next entry is not blocked by the dust (max_open_positions = 1) and its exit
        # sweeps the dust along.
        await hourly(trading, market, EXIT_TICK + HOUR, second_exit + HOUR)
        assert len([o for o in fake.orders.values() if o.side == "SELL"]) == 2
        left = engine.portfolio.position(PAIR)
        assert left is None or engine.exchange.too_small(PAIR, left.amount, left.average_price)
        await trading.control.stop(PAIR)  # dust never blocks /stoppair
        assert trading.service.runs() == []
        too_small = engine.exchange.too_small
    held = fake.balances.get("BTC", 0.0)
    assert held == pytest.approx(left.amount if left else 0.0, abs=1e-12)
    async with open_database(tmp_path / DATABASE) as db:
        fills = await SqliteFillRepository(db).all()
    trips = round_trips(fills, too_small)
    assert len(trips) == 2  # every round trip closed
    alerts = await alerts_of(tmp_path)
    closed = [text for kind, text in alerts if kind == "trade" and "trade PnL" in text]
    assert len(closed) == 2
    assert len([kind for kind, _ in alerts if kind == "dust"]) == 1  # said once, not per trade


async def test_an_entry_refused_while_dust_is_held_opens_nothing(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    fake.fee_asset = "received"
    second_entry = datetime(2025, 6, 28, 4, 0, 5, tzinfo=UTC)  # the 03:00 candle's entry
    async with live_stack(tmp_path, fake, START, {"stop_loss": 0.05}) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, second_entry)
        dust = trading.engine.portfolio.position(PAIR)
        assert dust is not None
        assert trading.engine.exchange.too_small(PAIR, dust.amount, dust.average_price)
        fake.faults.append(
            Fault(
                "/api/v3/order",
                400,
                {"code": -1013, "msg": "Filter failure: LOT_SIZE"},
                method="POST",
            )
        )  # the entry is refused
        posts = fake.order_posts
        await hourly(trading, market, second_entry, second_entry + HOUR)
        assert fake.order_posts == posts + 1  # the entry only: no stop for the dust
    async with open_database(tmp_path / DATABASE) as db:
        refused = await db.fetch_all("SELECT client_order_id FROM orders WHERE status = 'rejected'")
    assert len(refused) == 1


async def test_the_soak_invariants_catch_an_unprotected_position_and_a_ledger_gap(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    invariants = Invariants(fake, tmp_path / DATABASE, grace=1)
    async with live_stack(tmp_path, fake, START, {"stop_loss": 0.05}) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
        assert invariants.check("entered") == []
        (stop,) = resting_stops(fake)
        fake.cancel(stop)  # gone from the exchange behind pairpilot's back
        assert invariants.check("first look") == []  # placed again on the next tick, maybe
        assert "under a resting stop" in invariants.check("second look")[0]
        await hourly(trading, market, ENTRY_TICK + HOUR, ENTRY_TICK + 2 * HOUR)
        assert invariants.check("after a tick") == []  # the tick placed it again
        fake.balances["USDT"] += 1.0
        assert "USDT: books" in invariants.check("deposit")[0]


async def test_the_stop_streak_skips_a_check_with_no_tick_between_and_outlasts_a_second_buy(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    """Review s18: a crash soak's kill inside the first tick after a restart is no tick without
    a stop; a buy into an unprotected position (a double entry) or a partial sale of it does
    not start a new streak."""
    fake = funded_fake(btc_candles)
    invariants = Invariants(fake, tmp_path / DATABASE, grace=1)
    async with live_stack(tmp_path, fake, START, {"stop_loss": 0.05}) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
        (stop,) = resting_stops(fake)
        fake.cancel(stop)  # gone from the exchange behind pairpilot's back
        assert invariants.check("first look") == []
        assert invariants.check("killed before a tick ended", ticked=False) == []
        run = trading.service.runs()[0]
        price = fake.prices["BTCUSDT"]
        later = ENTRY_TICK + 2 * HOUR
        again = OrderIntent(
            "pp1x9b", run.id, PAIR, Side.BUY, 20.0 / price, price, later, quote_amount=20.0
        )
        market.at(later)
        await trading.engine.executor.execute(again)
        assert "under a resting stop" in invariants.check("second look")[0]
        held = trading.engine.portfolio.position(PAIR).amount
        part = OrderIntent("pp1x9s", run.id, PAIR, Side.SELL, round(held * 0.3, 5), price, later)
        await trading.engine.executor.execute(part)  # a partial sale protects nothing either
        assert "under a resting stop" in invariants.check("third look")[0]


async def test_the_soak_invariants_see_one_tick_without_a_stop_unless_the_exchange_failed_it(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    invariants = Invariants(fake, tmp_path / DATABASE, grace=0)  # as the fault soak checks
    posts = {"seen": 0}

    def refuse_the_first_stop(request: web.Request) -> Fault | None:
        if request.method == "POST" and request.path == "/api/v3/order":
            posts["seen"] += 1
            if posts["seen"] == 2:  # the entry goes through, its stop is refused
                return Fault(request.path, 400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"})
        return None

    fake.chaos = refuse_the_first_stop
    async with live_stack(tmp_path, fake, START, {"stop_loss": 0.05}) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
        assert resting_stops(fake) == []
        assert invariants.check("stop refused") == []  # the exchange failed it: excused once
        await hourly(trading, market, ENTRY_TICK + HOUR, ENTRY_TICK + 2 * HOUR)
        assert invariants.check("placed again") == []
        (stop,) = resting_stops(fake)
        fake.cancel(stop)  # gone, and no attempt of pairpilot's failed
        assert "under a resting stop" in invariants.check("one tick unprotected")[0]


async def test_the_fault_soak_keeps_every_position_invariant_on_binances_defaults(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    report = await run_fault_soak(
        tmp_path, btc_candles, ticks=200, seed=5, split=(0.4, 0.6), fee_asset="received"
    )  # Binance's defaults
    assert report.problems == []
    assert report.invariants is not None
    assert report.invariants.checks == 200
    assert report.invariants.dust_seen > 0  # the fees in the coin bought left dust
    assert report.exchange_trades > 2 * 10  # every order in two trades


async def test_a_kill_switch_whose_sale_is_refused_leaves_the_stop_in_place(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    async with live_stack(tmp_path, fake, START, {"stop_loss": 0.05}) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
        position = trading.engine.portfolio.position(PAIR)
        fake.faults.append(
            Fault(
                "/api/v3/order",
                400,
                {"code": -1013, "msg": "Filter failure: LOT_SIZE"},
                method="POST",
            )
        )
        report = await trading.control.flatten()
        assert not report.clean
        assert trading.engine.portfolio.position(PAIR) is not None  # not sold
        (stop,) = resting_stops(fake)  # and still protected
        assert stop.quantity == pytest.approx(position.amount)


async def test_a_stop_remembered_but_never_journaled_is_placed_again(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    params = {"stop_loss": 0.05}
    async with live_stack(tmp_path, fake, START, params) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
    (stop,) = resting_stops(fake)
    fake.cancel(stop)
    async with open_database(tmp_path / DATABASE) as db:  # what a kill between the two leaves
        state = SqliteStateRepository(db)
        saved = await state.get(protection_key(PAIR))
        await state.set(
            protection_key(PAIR), {**saved, "resting_stop": "pp1x9999snever"}, ENTRY_TICK
        )
    async with live_stack(tmp_path, fake, ENTRY_TICK + HOUR / 2, params) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK + HOUR, ENTRY_TICK + 2 * HOUR)
        position = trading.engine.portfolio.position(PAIR)
    assert_under_its_stop(fake, position, 0.05)


async def test_a_pair_started_later_keeps_the_users_own_coins_out_of_drift_and_flatten(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    fake.add_candles("ETHUSDT", "1h", btc_candles)
    fake.balances["ETH"] = 2.0  # the user's own
    async with live_stack(tmp_path, fake, START) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
        await trading.control.start_pair("ETH/USDT", "ema_cross", "1h", {}, 0.2)
        report = await trading.control.flatten()
        assert report.clean
    async with live_stack(tmp_path, fake, ENTRY_TICK + HOUR) as (trading, _, _):
        assert (await trading.control.flatten()).clean
    assert fake.balances["ETH"] == 2.0
    assert not [text for kind, text in await alerts_of(tmp_path) if kind == "reconciliation_drift"]


@pytest.mark.parametrize("fee_asset", ["quote", "received"])
async def test_a_sale_with_an_unknown_outcome_leaves_no_stop_once_it_is_known_sold(
    tmp_path: Path, btc_candles: pd.DataFrame, fee_asset: str
) -> None:
    fake = funded_fake(btc_candles)
    fake.fee_asset = fee_asset
    fake.balances["BTC"] = 0.01  # the user's own: a stray stop could sell it
    armed = {"sale": False, "lookups": 0}

    def lose_the_sale(request: web.Request) -> Fault | None:
        if request.path != "/api/v3/order":
            return None
        if request.method == "POST" and armed["sale"]:  # executed, its answer lost
            armed["sale"], armed["lookups"] = False, 2
            return Fault(request.path, 503, {"code": -1000, "msg": "lost"}, after=True)
        if request.method == "GET" and armed["lookups"]:
            armed["lookups"] -= 1  # and the look-ups right after it fail too
            return Fault(request.path, 503, {"code": -1000, "msg": "busy"})
        return None

    fake.chaos = lose_the_sale
    async with live_stack(tmp_path, fake, START, {"stop_loss": 0.05}) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, EXIT_TICK)
        assert len(resting_stops(fake)) == 1
        armed["sale"] = True
        await hourly(trading, market, EXIT_TICK, EXIT_TICK + 4 * HOUR)
        assert not armed["sale"]
        left = trading.engine.portfolio.position(PAIR)
        assert left is None or trading.engine.exchange.too_small(PAIR, left.amount, 1e5)
    assert resting_stops(fake) == []
    sales = [o for o in fake.orders.values() if o.side == "SELL" and o.kind == "MARKET"]
    assert [o.status for o in sales] == ["FILLED"]
    assert fake.balances["BTC"] + fake.locked.get("BTC", 0.0) == pytest.approx(
        0.01 + (left.amount if left else 0.0), abs=1e-9
    )  # the user's own coins untouched


async def test_a_kill_switch_sale_filled_in_part_leaves_the_rest_under_a_stop(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    async with live_stack(tmp_path, fake, START, {"stop_loss": 0.05}) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
        fake.faults.append(Fault("/api/v3/order", method="POST", fill_share=0.5))
        report = await trading.control.flatten()
        assert not report.clean
        rest = trading.engine.portfolio.position(PAIR)
        assert rest is not None
        (stop,) = resting_stops(fake)
        assert stop.quantity == pytest.approx(rest.amount, abs=1e-5)


async def test_the_kill_switch_settles_an_entry_whose_answer_was_lost_and_sells_it(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    async with live_stack(tmp_path, fake, START) as (trading, market, _):
        lose_the_next_answer(fake, lookups=2)
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
        assert trading.engine.portfolio.position(PAIR) is None  # not known yet
        report = await trading.control.flatten()
        assert report.closed[PAIR] > 0
        assert report.clean
    assert fake.balances.get("BTC", 0.0) == pytest.approx(0.0)


async def test_an_exit_never_sells_the_users_own_coins_to_cover_a_gap_in_the_books(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    fake.balances["BTC"] = 0.003  # the user's own, recorded as such at the first start
    async with live_stack(tmp_path, fake, START) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
        held = trading.engine.portfolio.position(PAIR).amount
        fake.balances["BTC"] -= 0.002  # pairpilot's coins went without the books seeing it
        await hourly(trading, market, ENTRY_TICK + HOUR, EXIT_TICK + HOUR)
    (sale,) = [o for o in fake.orders.values() if o.side == "SELL" and o.kind == "MARKET"]
    assert sale.quantity == pytest.approx(held - 0.002, abs=1e-5)  # pairpilot's own, no more
    assert fake.balances["BTC"] + fake.locked.get("BTC", 0.0) == pytest.approx(0.003, abs=1e-5)
    drift = [text for kind, text in await alerts_of(tmp_path) if kind == "reconciliation_drift"]
    assert len(drift) == 1
    assert "pairpilot" in drift[0]


async def test_the_kill_switch_leaves_the_users_own_orders_alone(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    fake.balances["USDT"] += 500.0  # the user's own cash, for the user's own order
    async with live_stack(tmp_path, fake, START, {"stop_loss": 0.05}) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
        (stop,) = resting_stops(fake)
        mine = fake.open_order("web_5f1c0a", "BTCUSDT", "BUY", "LIMIT", 0.004, 90_000.0)
        assert mine is not None
        report = await trading.control.flatten()
        assert report.clean
    assert mine.status == "NEW"  # placed on the website: not pairpilot's to cancel
    assert stop.status == "CANCELED"


async def test_the_kill_switch_goes_on_when_one_pairs_order_cannot_be_looked_up(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    fake.add_candles("ETHUSDT", "1h", btc_candles)

    def eth_unreadable(request: web.Request) -> Fault | None:
        if request.path == "/api/v3/order" and request.query.get("symbol") == "ETHUSDT":
            return Fault(request.path, 503, {"code": -1000, "msg": "busy"})
        return None

    async with live_stack(tmp_path, fake, START, {"stop_loss": 0.05}) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
        await check_defaults(tmp_path)  # ETH/USDT starts at the defaults
        run = await trading.control.start_pair("ETH/USDT", "ema_cross", "1h", {}, 0.2)
        lost = "pp2x1b"  # an ETH buy whose answer was lost (journaled, outcome unknown)
        await trading.engine.executor.journal.add(
            OrderIntent(lost, run.id, "ETH/USDT", Side.BUY, 0.1, 2500.0, ENTRY_TICK)
        )
        fake.chaos = eth_unreadable  # and the exchange cannot say anything about ETH orders
        report = await trading.control.flatten()
        assert trading.engine.portfolio.position(PAIR) is None  # every other pair: sold
        assert report.closed[PAIR] > 0
        assert not report.clean
        assert lost in report.problems["ETH/USDT"]
        assert "unknown" in report.problems["ETH/USDT"]
    assert fake.balances.get("BTC", 0.0) + fake.locked.get("BTC", 0.0) == pytest.approx(0.0)


async def test_dust_stays_dust_when_the_price_rises_above_the_exchanges_minimum(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    async with live_stack(tmp_path, fake, START) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, EXIT_TICK)
        held = trading.engine.portfolio.position(PAIR).amount
        rest = 0.00003  # three lot steps: worth about 3.2 USDT, under the 5 USDT minimum
        fake.faults.append(Fault("/api/v3/order", method="POST", fill_share=1 - rest / held))
        await hourly(trading, market, EXIT_TICK, EXIT_TICK + 2 * HOUR)  # exit, then its rest
        dust = trading.engine.portfolio.position(PAIR)
        assert dust is not None
        assert dust.amount == pytest.approx(rest, abs=1e-5)
        run = trading.service.runs()[0]
        assert await trading.engine.holding(run, fake.prices["BTCUSDT"]) is None  # dust
        # At a price where it is worth more than the minimum it is still the same dust: no
        # position that would block an entry or count toward max_open_positions.
        assert trading.engine.exchange.too_small(PAIR, dust.amount, 200_000.0) is None
        assert await trading.engine.holding(run, 200_000.0) is None


@pytest.mark.parametrize("lost_answer", [False, True], ids=["engine_sale", "booked_later"])
async def test_a_rest_that_turns_to_dust_after_its_exit_closes_the_trade_at_its_last_sale(
    tmp_path: Path, btc_candles: pd.DataFrame, lost_answer: bool
) -> None:
    """Review s18: the exit leaves 4e-05 BTC, 5.20 USDT at 130,000 (over Binance's 5 USDT
    minimum, so that sale closes no trade); at the next close (~107,000) it is 4.28 USDT, dust,
    and the engine never sells it. The trade closed at its last sale: announced with its PnL,
    counted toward the cooldown (a win: no losses in a row), in the trade list. The same when
    the exit's answer is lost and its sale is booked at the next tick (``settle_unknown``)."""
    fake = funded_fake(btc_candles)
    async with live_stack(tmp_path, fake, START) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, EXIT_TICK)
        engine, run = trading.engine, trading.service.runs()[0]
        held = engine.portfolio.position(PAIR).amount
        market.at(EXIT_TICK)
        fake.prices["BTCUSDT"] = 130_000.0
        fake.fill_share = 1 - 0.00004 / held
        if lost_answer:
            lose_the_next_answer(fake, lookups=5)
        await trading.service.tick("1h")
        fake.fill_share = 1.0
        assert await saved(tmp_path, f"cooldown:{run.id}") is None  # no trade closed yet
        await hourly(trading, market, EXIT_TICK + HOUR, EXIT_TICK + 3 * HOUR)
        rest = engine.portfolio.position(PAIR)
        assert rest.amount == pytest.approx(0.00004)
        assert await engine.is_dust(rest, fake.prices["BTCUSDT"])
    assert await saved(tmp_path, f"cooldown:{run.id}") == {"losses": 0}
    async with open_database(tmp_path / DATABASE) as db:
        fills = await SqliteFillRepository(db).all()
    too_small = engine.exchange.too_small
    (trade,) = round_trips(fills, too_small, {PAIR: rest.amount})  # the engine's word
    assert trade.exit_price == pytest.approx(130_000.0, rel=1e-3)
    assert round_trips(fills, too_small) == []  # the fills alone cannot tell
    closed = [text for kind, text in await alerts_of(tmp_path) if "trade PnL" in text]
    assert closed == [
        f"{PAIR}: the 4e-05 left of the exit is too small to sell now, so its "
        f"trade closed at its last sale: trade PnL {trade.pnl:+,.2f} "
        f"({trade.return_pct:+.2%})"
    ]
    assert Invariants(fake, tmp_path / DATABASE).check("after the exit") == []


async def test_a_position_the_restart_finds_unprotected_gets_its_stop_at_start_up(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    """A buy whose answer was lost is booked by the start-up reconciliation after a restart:
    its stop rests on the exchange before trading starts, not at the next candle close."""
    fake = funded_fake(btc_candles)
    params = {"stop_loss": 0.05}
    async with live_stack(tmp_path, fake, START, params) as (trading, market, _):
        lose_the_next_answer(fake, lookups=10)
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
        assert trading.engine.portfolio.position(PAIR) is None  # not known yet
    assert resting_stops(fake) == []
    fake.faults.clear()
    async with live_stack(tmp_path, fake, ENTRY_TICK + HOUR / 2, params) as (trading, _, _):
        position = trading.engine.portfolio.position(PAIR)
        assert position is not None
        assert_under_its_stop(fake, position, 0.05)


SALE = "pp1x1751000000000sexit"


async def test_no_stop_is_placed_at_start_up_on_a_pair_held_for_an_unknown_order(
    tmp_path: Path, btc_candles: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review s18 (start-up protection): the exit's answer was lost and the venue cannot tell
    its outcome (it filled: the coins are gone); another bot on the account bought BTC since.
    The start-up holds the pair, and places no stop on it: it would rest on that bot's coins."""
    fake = funded_fake(btc_candles)
    params = {"stop_loss": 0.05}
    async with live_stack(tmp_path, fake, START, params) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
        position = trading.engine.portfolio.position(PAIR)
        assert position is not None
    # As the engine's exit leaves it when the sale's answer is lost: the stop cancelled (and
    # forgotten) first, the sale journaled NEW; on the venue the sale filled.
    (stop,) = resting_stops(fake)
    fake.cancel(stop)
    fake.balances["BTC"] -= position.amount
    fake.balances["USDT"] += position.amount * fake.prices["BTCUSDT"]
    fake.balances["BTC"] += 3 * position.amount  # another bot on the account buys BTC
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        state = SqliteStateRepository(db)
        saved = dict(await state.get(protection_key(PAIR)))
        saved.pop("resting_stop"), saved.pop("resting_level")
        await state.set(protection_key(PAIR), saved, ENTRY_TICK)
        await SqliteOrderRepository(db).add(
            OrderIntent(
                SALE, 1, PAIR, Side.SELL, position.amount, 100_000.0, ENTRY_TICK, reason="signal"
            )
        )
    original = CcxtExchange.lookup

    async def lookup(self: CcxtExchange, order: Order) -> object:
        if order.client_order_id == SALE:
            raise OrderOutcomeUnknown("repro: more pages than a lookup reads")
        return await original(self, order)

    monkeypatch.setattr(CcxtExchange, "lookup", lookup)
    async with live_stack(tmp_path, fake, ENTRY_TICK + HOUR * 1.5, params) as (trading, _, _):
        held = [o.client_order_id for o in trading.engine.executor.unknown.waiting(PAIR)]
        assert held == [SALE]  # the pair is held: TradingService._due will not tick it
        assert resting_stops(fake) == [], (
            f"a stop rests on a held pair, over coins not pairpilot's: {resting_stops(fake)}"
        )


async def check_defaults(tmp_path: Path) -> None:
    """A passed check of ema_cross at its defaults: the live gate clears a run at its own
    parameters, and the stack's configured pair was checked at the ones it trades."""
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        await record_check(db, "ema_cross", "ETH/USDT")
