"""Live mode end to end: the service trading a real account through ccxt on the fake exchange."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from bot.app.config import Settings
from bot.app.serve import run_service
from bot.core.errors import ConfigError
from storage.alerts import SqliteAlertRepository
from storage.db import open_database
from storage.fills import SqliteFillRepository
from storage.orders import SqliteOrderRepository
from tests.doubles.fake_exchange import FakeBinance, Fault, serve
from tests.rigs.live_rig import HOUR, PAIR, SECRETS, funded_fake, hourly, live_settings, live_stack


async def test_live_mode_places_books_and_matches_the_exchange_ledger(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    start = datetime(2025, 6, 23, 9, 30, tzinfo=UTC)
    async with live_stack(tmp_path, fake, start) as (trading, market, jobs):
        assert trading.engine.portfolio.cash == pytest.approx(1000.0)  # the account's balance
        assert jobs.has("tick-1h")
        moment = datetime(2025, 6, 23, 10, 0, 5, tzinfo=UTC)
        while moment < datetime(2025, 7, 10, tzinfo=UTC):
            market.at(moment)
            await trading.service.tick("1h")
            moment += HOUR
        db_path = tmp_path / "pairpilot.sqlite"
        assert db_path.exists()
        portfolio = trading.engine.portfolio
        position = portfolio.position(PAIR)
        held = fake.balances.get("BTC", 0.0)
        assert (position.amount if position else 0.0) == pytest.approx(held, abs=1e-12)
        assert portfolio.cash == pytest.approx(fake.balances["USDT"], rel=1e-9)
    async with open_database(db_path) as db:
        fills = await SqliteFillRepository(db).all()
        orders = await SqliteOrderRepository(db).recent(1000)
        alerts = [alert.text for alert in await SqliteAlertRepository(db).pending()]
    exchange_trades = [fill for order in fake.orders.values() for fill in order.fills]
    assert len(fills) == len(exchange_trades) >= 4  # every fill booked exactly once
    assert sorted(f.trade_id for f in fills) == sorted(
        f"BTCUSDT-{t['tradeId']}" for t in exchange_trades
    )
    assert {o.client_id for o in fake.orders.values()} == {o.client_order_id for o in orders}
    assert fake.order_posts == len(fake.orders)  # nothing sent twice
    assert any("BTC/USDT BUY" in text for text in alerts)


async def test_a_pair_started_at_runtime_gets_its_tick_job_and_ignores_old_signals(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    fake.add_candles("ETHUSDT", "4h", btc_candles.iloc[::4].reset_index(drop=True))
    # 09:00 closed an EMA 12/26 entry candle on BTC/USDT 1h (see the exchange-source test).
    async with live_stack(tmp_path, fake, datetime(2025, 6, 23, 9, 30, tzinfo=UTC)) as (
        trading,
        market,
        jobs,
    ):
        assert not jobs.has("tick-4h")
        await trading.control.start_pair("ETH/USDT", "ema_cross", "4h", {}, 0.25)
        assert jobs.has("tick-4h")
        await trading.control.stop("BTC/USDT")
        await trading.control.start_pair("BTC/USDT", "ema_cross", "1h", {}, 0.25)
        assert await trading.service.tick("1h") == 0  # the 09:00 entry was before its start
        assert fake.order_posts == 0


async def test_run_service_in_live_mode_starts_reconciles_and_stops(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = FakeBinance(
        now_ms=int(btc_candles["timestamp"].iloc[-1]) + 60_000,
        balances={"USDT": 1000.0, "DOGE": 5.0},
    )
    fake.add_candles("BTCUSDT", "1h", btc_candles)
    lines: list[str] = []
    async with serve(fake) as base:
        stop = asyncio.Event()
        service = asyncio.create_task(
            run_service(live_settings(tmp_path, base), SECRETS, stop=stop, write=lines.append)
        )
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.wait_for(service, timeout=5)
    text = "\n".join(lines)
    assert "pairpilot started: live mode on binance, BTC/USDT" in text
    assert "DOGE" in text  # held on the exchange, not placed by us: alerted, never adopted
    assert "pairpilot stopped" in text
    assert fake.order_posts == 0


async def test_live_mode_needs_exchange_candles(tmp_path: Path) -> None:
    sample = Path(__file__).parents[2] / "bot/sample_data/BTC_USDT-1h.csv.gz"
    settings = Settings.model_validate(
        {
            "mode": "live",
            "data_dir": tmp_path,
            "market_data": {"source": "replay", "replay_files": {PAIR: str(sample)}},
            "pairs": [{"pair": PAIR, "capital_share": 0.5}],
        }
    )
    with pytest.raises(ConfigError, match="market_data.source = 'exchange'"):
        await run_service(settings, SECRETS, stop=asyncio.Event())


async def test_stops_rest_on_the_exchange_survive_a_restart_and_never_sell_twice(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    params = {"stop_loss": 0.01, "trailing_stop": 0.02}
    start = datetime(2025, 6, 23, 9, 30, tzinfo=UTC)
    middle = datetime(2025, 7, 8, 10, 0, 5, tzinfo=UTC)
    async with live_stack(tmp_path, fake, start, params) as (trading, market, _):
        await hourly(trading, market, datetime(2025, 6, 23, 10, 0, 5, tzinfo=UTC), middle)
    resting_before = {o.client_id for o in fake.orders.values() if o.status == "NEW"}
    async with live_stack(tmp_path, fake, middle, params) as (trading, market, _):  # a restart
        assert {o.client_id for o in fake.orders.values() if o.status == "NEW"} == resting_before
        await hourly(trading, market, middle, datetime(2025, 7, 25, tzinfo=UTC))
        position = trading.engine.portfolio.position(PAIR)
        cash = trading.engine.portfolio.cash
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        fills = await SqliteFillRepository(db).all()
        journal = {o.client_order_id: o for o in await SqliteOrderRepository(db).recent(10_000)}
        alerts = [alert.text for alert in await SqliteAlertRepository(db).pending(10_000)]
    stops = [o for o in fake.orders.values() if o.kind == "STOP_LOSS"]
    assert any(o.status == "FILLED" for o in stops)  # the exchange sold at a resting stop
    assert any(o.status == "CANCELED" for o in stops)  # taken off before other sells / re-placed
    assert any(o.client_id.endswith("strail") for o in stops)  # the trailing stop moved
    resting = [o for o in stops if o.status == "NEW"]
    assert len(resting) == (1 if position else 0)
    status = {"FILLED": "filled", "CANCELED": "canceled", "NEW": "open", "EXPIRED": "expired"}
    assert all(journal[o.client_id].status.value == status[o.status] for o in fake.orders.values())
    held = fake.balances.get("BTC", 0.0) + fake.locked.get("BTC", 0.0)
    assert (position.amount if position else 0.0) == pytest.approx(held, abs=1e-12)
    assert cash == pytest.approx(fake.balances["USDT"], rel=1e-9)
    trades = [f"BTCUSDT-{t['tradeId']}" for o in fake.orders.values() for t in o.fills]
    assert sorted(f.trade_id for f in fills) == sorted(trades)  # each fill booked once
    assert fake.order_posts == len(fake.orders)  # nothing sent twice
    assert not [text for text in alerts if "rejected" in text.lower()]


async def test_exchange_trouble_is_alerted_once_and_refused_keys_halt_trading(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    start = datetime(2025, 6, 23, 9, 30, tzinfo=UTC)
    async with live_stack(tmp_path, fake, start) as (trading, market, _):
        fake.faults.append(Fault("/api/v3/klines", 503, {"code": -1000, "msg": "down"}, times=20))
        first = datetime(2025, 6, 23, 10, 0, 5, tzinfo=UTC)
        await hourly(trading, market, first, first + 3 * HOUR)  # three ticks, all failing
        fake.faults.clear()
        await hourly(trading, market, first + 3 * HOUR, first + 5 * HOUR)
        assert not await trading.engine.guard.halted()
        # Someone rotated the keys: signatures fail from now on. (A -2015 "Invalid API-key"
        # after a good start is a temporary ban to ccxt, so it counts as an outage instead.)
        fake.secret = "rotated-by-someone"
        await hourly(trading, market, first + 5 * HOUR, datetime(2025, 7, 2, tzinfo=UTC))
        halt = await trading.engine.guard.halted()
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        texts = [alert.text for alert in await SqliteAlertRepository(db).pending(1000)]
    troubles = [text for text in texts if text.startswith("Exchange trouble")]
    assert len(troubles) == 1  # the outage, once, however many ticks it lasted
    assert "down" in troubles[0]
    assert texts.count("The exchange answers again.") == 1
    assert halt is not None
    assert "refused the API keys" in halt["reason"]
    halts = [text for text in texts if text.startswith("Trading halted: the exchange refused")]
    assert len(halts) == 1
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        stuck = await SqliteOrderRepository(db).not_final()
    assert stuck == []  # the order the refused keys stopped is closed as never sent


async def test_limit_entries_rest_for_one_candle_on_the_exchange(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    params = {"entry_offset": 0.001, "stop_loss": 0.02}
    async with live_stack(tmp_path, fake, datetime(2025, 6, 23, 9, 30, tzinfo=UTC), params) as (
        trading,
        market,
        _,
    ):
        await hourly(
            trading,
            market,
            datetime(2025, 6, 23, 10, 0, 5, tzinfo=UTC),
            datetime(2025, 7, 20, tzinfo=UTC),
        )
        position = trading.engine.portfolio.position(PAIR)
        cash = trading.engine.portfolio.cash
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        fills = await SqliteFillRepository(db).all()
        journal = {o.client_order_id: o for o in await SqliteOrderRepository(db).recent(10_000)}
    limits = [o for o in fake.orders.values() if o.kind == "LIMIT"]
    assert any(o.status == "FILLED" for o in limits)
    assert any(o.status == "CANCELED" for o in limits)  # good for one candle only
    assert not [o for o in limits if o.status == "NEW"]
    status = {"FILLED": "filled", "CANCELED": "canceled", "NEW": "open", "EXPIRED": "expired"}
    assert all(journal[o.client_id].status.value == status[o.status] for o in fake.orders.values())
    held = fake.balances.get("BTC", 0.0) + fake.locked.get("BTC", 0.0)
    assert (position.amount if position else 0.0) == pytest.approx(held, abs=1e-12)
    assert cash == pytest.approx(fake.balances["USDT"] + fake.locked.get("USDT", 0.0), rel=1e-9)
    trades = [f"BTCUSDT-{t['tradeId']}" for o in fake.orders.values() for t in o.fills]
    assert sorted(f.trade_id for f in fills) == sorted(trades)


async def test_the_kill_switch_works_while_the_exchange_fails_on_and_off(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    params = {"stop_loss": 0.05}
    async with live_stack(tmp_path, fake, datetime(2025, 6, 23, 9, 30, tzinfo=UTC), params) as (
        trading,
        market,
        _,
    ):
        moment = datetime(2025, 6, 23, 10, 0, 5, tzinfo=UTC)
        while trading.engine.portfolio.position(PAIR) is None:
            market.at(moment)
            await trading.service.tick("1h")
            moment += HOUR
        assert [o.kind for o in fake.orders.values() if o.status == "NEW"] == ["STOP_LOSS"]
        fake.faults += [
            Fault("/api/v3/openOrders", 503, {"code": -1000, "msg": "busy"}, method="GET"),
            Fault(
                "/api/v3/order", 503, {"code": -1000, "msg": "lost"}, method="POST", after=True
            ),  # the sell is placed, its answer lost
            Fault("/api/v3/account", 503, {"code": -1000, "msg": "busy"}),
        ]
        report = await trading.control.flatten()
        assert [fault.times for fault in fake.faults] == [0, 0, 0]  # every fault was met
        again = await trading.control.flatten()  # idempotent
        assert report.clean
        assert report.halted_now
        assert not again.halted_now
        assert again.closed == {}
        assert trading.engine.portfolio.positions() == []
    sells = [o for o in fake.orders.values() if o.side == "SELL" and o.kind == "MARKET"]
    assert len(sells) == 1  # sold once, though its answer was lost
    assert fake.order_posts == len(fake.orders)
    assert not [o for o in fake.orders.values() if o.status == "NEW"]  # the stop is gone
    assert fake.balances.get("BTC", 0.0) + fake.locked.get("BTC", 0.0) == pytest.approx(0.0)


@pytest.mark.parametrize("readable", [True, False])
async def test_entries_are_sized_and_costed_at_the_accounts_own_fee_read_at_start_up(
    tmp_path: Path,
    btc_candles: pd.DataFrame,
    caplog: pytest.LogCaptureFixture,
    readable: bool,
) -> None:
    """The account pays its VIP tier's 0.075%, not the published 0.1%: Binance tells it
    (GET /sapi/v1/asset/tradeFee) and the engine sizes and shows its costs with it. A venue
    that does not answer leaves the published fee, and a start-up log line says so."""
    fake = funded_fake(btc_candles)
    fake.fee_rate = 0.00075
    if not readable:
        fake.faults.append(
            Fault("/sapi/v1/asset/tradeFee", 403, {"code": -2015, "msg": "no permission"}, times=5)
        )
    start = datetime(2025, 6, 23, 9, 30, tzinfo=UTC)
    async with live_stack(tmp_path, fake, start) as (trading, _, _):
        fee = trading.engine.costs.fee_rate
        sized = trading.engine.exchange.taker_fee(PAIR)
    assert (fee, sized) == ((0.00075, 0.00075) if readable else (0.001, 0.001))
    assert any(path == "/sapi/v1/asset/tradeFee" for path, _ in fake.requests)
    said = [r.getMessage() for r in caplog.records if "account's fee" in r.getMessage()]
    assert bool(said) is not readable  # the fallback is said at start-up


async def test_a_pair_started_at_runtime_has_the_accounts_fee_read_for_it(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    """/startpair reads the new pair's own fee (the account's 0.075% here), as start-up reads
    the configured pairs': until then it is sized at the most it may cost, its published 0.1%
    (the highest fee read for other pairs could be below it)."""
    fake = funded_fake(btc_candles)
    fake.fee_rate = 0.00075
    fake.add_candles("ETHUSDT", "4h", btc_candles.iloc[::4].reset_index(drop=True))
    async with live_stack(tmp_path, fake, datetime(2025, 6, 23, 9, 30, tzinfo=UTC)) as (
        trading,
        _,
        _,
    ):
        assert trading.engine.exchange.taker_fee("ETH/USDT") == pytest.approx(0.001)
        await trading.control.start_pair("ETH/USDT", "ema_cross", "4h", {}, 0.25)
        assert trading.engine.exchange.taker_fee("ETH/USDT") == pytest.approx(0.00075)
