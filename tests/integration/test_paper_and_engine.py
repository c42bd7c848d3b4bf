"""The paper exchange and the engine on real sample candles, through a real SQLite file."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from bot.alerts.outbox import AlertOutbox
from bot.app.bootstrap import PaperAccount, build_paper_engine, strategy_faults
from bot.core.clock import FakeClock
from bot.core.domain import (
    Action,
    ExecutionReport,
    Order,
    OrderIntent,
    OrderStatus,
    PairRun,
    RiskLimits,
    Side,
    Signal,
    from_ms,
)
from bot.core.errors import InsufficientFunds
from bot.exchange.paper import ACCOUNT_KEY, PaperExchange
from bot.execution.reconcile import reconcile
from bot.market.candle_files import ReplaySource
from bot.portfolio.books import Portfolio
from bot.risk.fills import sold_at
from bot.trading.service import TradingService
from storage.alerts import SqliteAlertRepository
from storage.db import Database, open_database
from storage.equity import SqliteEquityRepository
from storage.fills import SqliteFillRepository
from storage.orders import SqliteOrderRepository
from storage.pair_runs import SqlitePairRunRepository
from storage.positions import SqlitePositionRepository
from storage.state import SqliteStateRepository
from tests.rigs.builders import executor_on

PAIR = "BTC/USDT"
ACCOUNT = PaperAccount(balance=1000.0, quote="USDT", fee_rate=0.001, slippage=0.0005)


def at_open(candles: pd.DataFrame, index: int) -> datetime:
    return from_ms(int(candles["timestamp"].iloc[index]))


async def paper(db: Database, candles: pd.DataFrame, clock: FakeClock) -> PaperExchange:
    return await PaperExchange.restore(
        feed=ReplaySource({PAIR: candles}, {PAIR: "1h"}),
        clock=clock,
        state=SqliteStateRepository(db),
        initial={"USDT": 1000.0},
        fee_rate=0.001,
        slippage=0.0005,
    )


def intent(side: Side, amount: float, coid: str = "c1") -> OrderIntent:
    return OrderIntent(coid, 1, PAIR, side, amount, 0.0, datetime(2025, 6, 21, tzinfo=UTC))


async def test_market_orders_fill_at_the_next_open_with_fee_and_slippage(
    db: Database, btc_candles: pd.DataFrame
) -> None:
    clock = FakeClock(at_open(btc_candles, 5))  # candle 4 just closed; candle 5 is forming
    exchange = await paper(db, btc_candles, clock)
    next_open = float(btc_candles["open"].iloc[5])
    report = await exchange.create_market_order(intent(Side.BUY, 0.005))
    assert report.status is OrderStatus.FILLED
    (fill,) = report.fills
    assert fill.price == pytest.approx(next_open * 1.0005)
    assert fill.fee == pytest.approx(0.005 * next_open * 1.0005 * 0.001)
    assert exchange.balances()["USDT"] == pytest.approx(1000.0 - fill.notional - fill.fee)
    assert exchange.balances()["BTC"] == 0.005
    clock.set(at_open(btc_candles, 9))
    sold = (await exchange.create_market_order(intent(Side.SELL, 0.005, "c2"))).fills[0]
    assert sold.price == pytest.approx(float(btc_candles["open"].iloc[9]) * 0.9995)
    assert exchange.balances()["BTC"] == 0.0


async def test_a_quote_sized_buy_spends_exactly_its_budget_and_books_what_it_bought(
    db: Database, btc_candles: pd.DataFrame
) -> None:
    exchange = await paper(db, btc_candles, FakeClock(at_open(btc_candles, 5)))
    buy = dataclasses.replace(intent(Side.BUY, 0.001), quote_amount=500.0)  # amount: a guess
    report = await exchange.create_market_order(buy)
    (fill,) = report.fills
    assert fill.notional + fill.fee == pytest.approx(500.0, rel=1e-12)
    assert fill.amount == report.filled == exchange.balances()["BTC"]
    assert fill.amount == pytest.approx(500.0 / (fill.price * 1.001))
    assert exchange.balances()["USDT"] == pytest.approx(500.0)
    sell = await exchange.create_market_order(intent(Side.SELL, fill.amount, "c2"))
    assert sell.filled == fill.amount
    assert exchange.balances()["BTC"] == 0.0


async def test_a_protective_sell_fills_at_market_as_live_does(
    db: Database, btc_candles: pd.DataFrame
) -> None:
    """A stop or target seen at a close sells at market then (the forming candle's open),
    not at the level it triggered at (issue 15 item 11)."""
    exchange = await paper(db, btc_candles, FakeClock(at_open(btc_candles, 5)))
    await exchange.create_market_order(intent(Side.BUY, 0.002))
    stop = dataclasses.replace(intent(Side.SELL, 0.002, "c2"), trigger_price=99_000.0)
    (fill,) = (await exchange.create_market_order(stop)).fills
    assert fill.price == pytest.approx(float(btc_candles["open"].iloc[5]) * 0.9995)


async def test_unaffordable_order_is_refused_and_changes_nothing(
    db: Database, btc_candles: pd.DataFrame
) -> None:
    clock = FakeClock(at_open(btc_candles, 5))
    exchange = await paper(db, btc_candles, clock)
    state = SqliteStateRepository(db)
    before = await state.get(ACCOUNT_KEY)
    with pytest.raises(InsufficientFunds, match="needs .* USDT, the paper account has 1000"):
        await exchange.create_market_order(intent(Side.BUY, 1.0))  # ~103,000 USDT
    with pytest.raises(InsufficientFunds, match="BTC"):
        await exchange.create_market_order(intent(Side.SELL, 0.1, "c2"))
    assert exchange.balances() == {"USDT": 1000.0}
    assert await state.get(ACCOUNT_KEY) == before


async def test_the_same_client_order_id_never_fills_twice(
    db: Database, btc_candles: pd.DataFrame
) -> None:
    exchange = await paper(db, btc_candles, FakeClock(at_open(btc_candles, 5)))
    first = await exchange.create_market_order(intent(Side.BUY, 0.001))
    again = await exchange.create_market_order(intent(Side.BUY, 0.001))
    assert again == first
    assert exchange.balances()["BTC"] == 0.001


async def test_paper_balances_survive_a_restart(tmp_path: Path, btc_candles: pd.DataFrame) -> None:
    clock = FakeClock(at_open(btc_candles, 5))
    async with open_database(tmp_path / "p.sqlite") as db:
        await (await paper(db, btc_candles, clock)).create_market_order(intent(Side.BUY, 0.002))
    async with open_database(tmp_path / "p.sqlite") as db:
        restored = await paper(db, btc_candles, clock)
    assert restored.balances()["BTC"] == 0.002
    assert restored.balances()["USDT"] < 1000.0 - 0.002 * 100_000


async def new_run(db: Database, clock: FakeClock, share: float = 1.0) -> PairRun:
    return await SqlitePairRunRepository(db).add(
        pair=PAIR,
        strategy="ema_cross",
        timeframe="1h",
        params={},
        capital_share=share,
        now=clock.now(),
    )


async def test_engine_on_real_candles_is_deterministic_and_books_everything(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    async def replay(path: Path) -> tuple[list[tuple[object, ...]], Database | None]:
        clock = FakeClock(at_open(btc_candles, 0))
        async with open_database(path) as db:
            engine = await build_paper_engine(
                db,
                clock=clock,
                feed=ReplaySource({PAIR: btc_candles}, {PAIR: "1h"}),
                account=ACCOUNT,
                limits=RiskLimits(),
            )
            service = TradingService(
                engine=engine,
                source=ReplaySource({PAIR: btc_candles}, {PAIR: "1h"}),
                equity=SqliteEquityRepository(db),
                clock=clock,
                runs=[await new_run(db, clock)],
                faults=strategy_faults(db, clock),
            )
            for _ in range(600):
                clock.advance(timedelta(hours=1))
                await service.tick()
            fills = await SqliteFillRepository(db).all()
            positions = await SqlitePositionRepository(db).all()
            orders = await db.fetch_all("SELECT status, count(*) FROM orders GROUP BY status")
            assert [tuple(row) for row in orders] == [("filled", len(fills))]
            booked_cash = await SqliteStateRepository(db).get("portfolio.cash")
            assert booked_cash == pytest.approx(engine.portfolio.cash)
            assert sum(p.realised_pnl for p in positions) == pytest.approx(
                engine.portfolio.cash - 1000.0 + sum(p.amount * p.average_price for p in positions)
            )
        return [(f.side, f.time, f.amount, f.price) for f in fills], None

    first, _ = await replay(tmp_path / "a.sqlite")
    second, _ = await replay(tmp_path / "b.sqlite")
    assert len(first) >= 10
    assert first == second
    # The first entry: EMA 12 crossed above EMA 26 on the candle that opened 2025-06-23 08:00;
    # it filled at the open of the next candle.
    assert first[0][0] is Side.BUY
    assert first[0][1] == datetime(2025, 6, 23, 9, tzinfo=UTC)


class JournalCheckingExchange:
    """Records whether the order was already journaled when the exchange was called."""

    def __init__(self, inner: PaperExchange, orders: SqliteOrderRepository) -> None:
        self._inner = inner
        self._orders = orders
        self.journaled_first: list[bool] = []

    async def create_market_order(self, order: OrderIntent) -> ExecutionReport:
        self.journaled_first.append(await self._orders.get(order.client_order_id) is not None)
        return await self._inner.create_market_order(order)

    async def fetch_balances(self) -> dict[str, float]:
        return await self._inner.fetch_balances()


async def test_intent_is_journaled_before_the_exchange_is_called_and_sent_once(
    db: Database, btc_candles: pd.DataFrame
) -> None:
    clock = FakeClock(at_open(btc_candles, 100))
    orders = SqliteOrderRepository(db)
    checker = JournalCheckingExchange(await paper(db, btc_candles, clock), orders)
    executor = executor_on(db, checker, clock)
    await new_run(db, clock)
    buy = dataclasses.replace(intent(Side.BUY, 0.001, "pp1-1-buy"), quote_amount=100.0)
    fills, _ = await executor.execute(buy)
    assert len(fills) == 1
    assert checker.journaled_first == [True]
    again, _ = await executor.execute(buy)  # the same decision again: a re-run tick
    assert again == []
    assert checker.journaled_first == [True]  # the exchange heard of it once


async def test_an_order_the_exchange_refuses_is_journaled_rejected_and_alerted(
    db: Database, btc_candles: pd.DataFrame
) -> None:
    clock = FakeClock(at_open(btc_candles, 100))
    # The books think there are 1,000 USDT; the paper account holds 50 (drift).
    await SqliteStateRepository(db).set(
        ACCOUNT_KEY, {"balances": {"USDT": 50.0}, "orders": {}}, clock.now()
    )
    engine = await build_paper_engine(
        db,
        clock=clock,
        feed=ReplaySource({PAIR: btc_candles}, {PAIR: "1h"}),
        account=ACCOUNT,
        limits=RiskLimits(),
    )
    run = await new_run(db, clock)
    close = float(btc_candles["close"].iloc[99])
    signal = Signal(PAIR, at_open(btc_candles, 99), Action.ENTER, close)
    assert await engine.on_signal(run, signal, {PAIR: close}) == []
    orders = await db.fetch_all("SELECT client_order_id, status FROM orders")
    assert [row["status"] for row in orders] == ["rejected"]
    history = await SqliteOrderRepository(db).history(orders[0]["client_order_id"])
    assert [status for status, _, _ in history] == [OrderStatus.NEW, OrderStatus.REJECTED]
    assert "the exchange holds 50.00 USDT" in history[-1][2]  # re-read before sending
    assert await SqliteFillRepository(db).all() == []
    assert await SqlitePositionRepository(db).all() == []
    assert engine.portfolio.cash == 1000.0
    alerts = await SqliteAlertRepository(db).pending()
    assert [(a.kind, "Order rejected" in a.text) for a in alerts] == [("order_rejected", True)]


async def test_a_paper_fill_the_books_missed_is_settled_at_restart(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    clock = FakeClock(at_open(btc_candles, 5))
    order = dataclasses.replace(intent(Side.BUY, 0.001, "pp1-1-buy"), quote_amount=100.0)
    async with open_database(tmp_path / "p.sqlite") as db:
        await new_run(db, clock)
        await SqliteOrderRepository(db).add(order)  # journaled ...
        await (await paper(db, btc_candles, clock)).create_market_order(order)  # ... filled, crash
    async with open_database(tmp_path / "p.sqlite") as db:
        exchange = await paper(db, btc_candles, clock)
        portfolio = Portfolio(1000.0)
        result = await reconcile(
            orders=SqliteOrderRepository(db),
            exchange=exchange,
            executor=executor_on(db, exchange, clock, portfolio),
            portfolio=portfolio,
            alerts=AlertOutbox(SqliteAlertRepository(db), clock),
            clock=clock,
            quote="USDT",
            pairs=["BTC/USDT"],
        )
        assert (result.settled, result.never_sent, result.clean) == (["pp1-1-buy"], [], True)
        position = portfolio.position(PAIR)
        assert position is not None
        assert position.amount == exchange.balances()["BTC"]
        assert portfolio.cash == pytest.approx(exchange.balances()["USDT"])


async def replay_fills(
    db: Database,
    candles: pd.DataFrame,
    volume_share: float,
    until: int,
    params: dict[str, float] | None = None,
    rests_stops: bool = False,
) -> tuple[list, list[str]]:
    """EMA 12/26 (with ``params``) through the service on ``candles`` for ``until`` candles:
    fills and alerts; ``rests_stops``: the paper account rests stop-losses."""
    source = ReplaySource({PAIR: candles}, {PAIR: "1h"})
    clock = FakeClock(at_open(candles, 1))
    engine = await build_paper_engine(
        db,
        clock=clock,
        feed=source,
        limits=RiskLimits(max_position_fraction=1.0),
        account=dataclasses.replace(ACCOUNT, volume_share=volume_share, rests_stops=rests_stops),
    )
    run = await SqlitePairRunRepository(db).add(
        pair=PAIR,
        strategy="ema_cross",
        timeframe="1h",
        params=params or {},
        capital_share=1.0,
        now=clock.now(),
    )
    service = TradingService(
        engine=engine,
        source=source,
        equity=SqliteEquityRepository(db),
        clock=clock,
        runs=[run],
        faults=strategy_faults(db, clock),
    )
    for index in range(2, until):
        clock.set(at_open(candles, index))
        await service.tick()
    alerts = [alert.text for alert in await SqliteAlertRepository(db).pending(1000)]
    return await SqliteFillRepository(db).all(), alerts


async def test_an_exit_larger_than_the_candles_volume_share_sells_the_rest_next_candle(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    async with open_database(tmp_path / "whole.sqlite") as db:
        whole, _ = await replay_fills(db, btc_candles, 0.1, 400)
    first_sell = next(fill for fill in whole if fill.side is Side.SELL)
    thin = btc_candles.copy()
    index = int(thin.index[thin["timestamp"] == int(first_sell.time.timestamp() * 1000)][0])
    thin.loc[index, "volume"] = first_sell.amount  # the exit's candle trades little ...
    async with open_database(tmp_path / "thin.sqlite") as db:
        fills, alerts = await replay_fills(db, thin, 0.25, 400)  # ... so a quarter fills
    sells = [fill for fill in fills if fill.side is Side.SELL]
    assert sells[0].amount == pytest.approx(first_sell.amount * 0.25)
    rest = sells[1]
    assert rest.client_order_id.endswith("srest")  # a sell, "rest" (risk.client_order_id)
    assert rest.time == sells[0].time + timedelta(hours=1)  # the next candle's open
    assert sells[0].amount + rest.amount == pytest.approx(first_sell.amount)
    assert any("partly filled" in text for text in alerts)
    upto_rest = fills[: fills.index(rest) + 1]
    held = sum(f.amount if f.side is Side.BUY else -f.amount for f in upto_rest)
    assert held == pytest.approx(0.0, abs=1e-12)  # flat once the rest sold
    assert len(fills) > len(upto_rest)  # and trading went on


def thinned(candles: pd.DataFrame, time: datetime, volume: float) -> pd.DataFrame:
    """``candles`` with the candle opening at ``time`` trading only ``volume``."""
    thin = candles.copy()
    thin.loc[thin["timestamp"] == int(time.timestamp() * 1000), "volume"] = volume
    return thin


async def test_through_the_engine_a_capped_buys_rest_expires_and_the_position_is_what_filled(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    async with open_database(tmp_path / "whole.sqlite") as db:
        whole, _ = await replay_fills(db, btc_candles, 0.1, 400)
    first_buy = whole[0]
    assert first_buy.side is Side.BUY
    thin = thinned(btc_candles, first_buy.time, first_buy.amount)  # its fill candle trades little
    async with open_database(tmp_path / "thin.sqlite") as db:
        fills, alerts = await replay_fills(db, thin, 0.25, 400)
    assert (fills[0].side, fills[0].time) == (Side.BUY, first_buy.time)
    assert fills[0].amount == pytest.approx(first_buy.amount * 0.25)
    assert fills[1].side is Side.SELL  # the rest is never bought: the next fill is the exit ...
    assert fills[1].amount == pytest.approx(fills[0].amount)  # ... of what filled, in one sale
    assert fills[1].time == whole[1].time  # on the same signal as uncapped
    assert any("partly filled" in text for text in alerts)


async def test_a_partly_filled_resting_stops_rest_is_sold_at_market_at_the_next_open(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    """The stop fills a share of the candle that reached it (the one closing as it fills); the
    per-candle check then sees that candle reached the stop and sells the rest at market at
    the next open (the stop's fill time), as a "stop loss", with slippage."""
    params = {"stop_loss": 0.01}
    async with open_database(tmp_path / "whole.sqlite") as db:
        whole, _ = await replay_fills(db, btc_candles, 0.1, 400, params, rests_stops=True)
    stop = next(fill for fill in whole if fill.client_order_id.endswith("sstop"))
    reached = stop.time - timedelta(hours=1)
    thin = thinned(btc_candles, reached, stop.amount)
    async with open_database(tmp_path / "thin.sqlite") as db:
        fills, alerts = await replay_fills(db, thin, 0.25, 400, params, rests_stops=True)
    index = next(i for i, fill in enumerate(fills) if fill.client_order_id.endswith("sstop"))
    capped, rest = fills[index], fills[index + 1]
    assert (capped.time, capped.price) == (stop.time, stop.price)
    assert capped.amount == pytest.approx(stop.amount * 0.25)
    assert rest.client_order_id.endswith("sstoploss")  # the per-candle check's sale
    assert (rest.side, rest.time) == (Side.SELL, stop.time)  # at the next open
    next_open = float(
        thin.loc[thin["timestamp"] == int(stop.time.timestamp() * 1000), "open"].iloc[0]
    )
    assert rest.price == pytest.approx(sold_at(next_open, ACCOUNT.slippage))
    assert capped.amount + rest.amount == pytest.approx(stop.amount)
    assert any("partly filled" in text for text in alerts)


async def test_a_buy_fills_at_most_its_share_of_the_candles_volume_and_the_rest_expires(
    db: Database, btc_candles: pd.DataFrame
) -> None:
    thin = btc_candles.assign(volume=0.004)
    clock = FakeClock(at_open(thin, 5))
    exchange = await PaperExchange.restore(
        feed=ReplaySource({PAIR: thin}, {PAIR: "1h"}),
        clock=clock,
        state=SqliteStateRepository(db),
        initial={"USDT": 1000.0},
        fee_rate=0.001,
        slippage=0.0,
        volume_share=0.5,
    )
    report = await exchange.create_market_order(
        dataclasses.replace(intent(Side.BUY, 0.009), quote_amount=900.0)
    )
    assert report.status is OrderStatus.EXPIRED
    assert report.filled == pytest.approx(0.002)
    spent = 0.002 * float(thin["open"].iloc[5]) * 1.001
    assert exchange.balances()["USDT"] == pytest.approx(1000.0 - spent)
    thin.loc[5, "volume"] = 0.0
    nothing = await exchange.create_market_order(intent(Side.SELL, 0.001, "c2"))
    assert (nothing.status, nothing.filled, nothing.fills) == (OrderStatus.EXPIRED, 0.0, ())


def limit_buy(price: float, coid: str) -> OrderIntent:
    return dataclasses.replace(intent(Side.BUY, 0.0, coid), quote_amount=300.0, limit_price=price)


async def test_a_limit_buy_rests_with_its_money_set_aside_then_fills_or_is_cancelled(
    db: Database, btc_candles: pd.DataFrame
) -> None:
    clock = FakeClock(at_open(btc_candles, 5))
    exchange = await paper(db, btc_candles, clock)
    candle = btc_candles.iloc[5]
    reached = float(candle["low"]) * 1.001  # the candle's low goes under it: it fills
    missed = float(candle["low"]) * 0.99  # never reached
    for coid, price in (("reach", reached), ("miss", missed)):
        placed = await exchange.create_limit_order(limit_buy(price, coid))
        assert (placed.status, placed.filled) == (OrderStatus.OPEN, 0.0)
    assert exchange.balances()["USDT"] == pytest.approx(400.0)  # 2 x 300 set aside
    assert (await exchange.fetch_balances())["USDT"] == pytest.approx(1000.0)
    order = Order("reach", 1, PAIR, Side.BUY, 0.001, OrderStatus.OPEN, clock.now(), clock.now())
    assert (await exchange.lookup(order)).status is OrderStatus.OPEN  # candle 5 still forming
    clock.set(at_open(btc_candles, 6))
    restored = await paper(db, btc_candles, clock)  # a restart keeps what rests
    filled = await restored.lookup(order)
    price = min(float(candle["open"]), reached)
    assert filled.status is OrderStatus.FILLED
    assert filled.average_price == pytest.approx(price)
    assert price < reached  # the candle opened under the limit: the order fills there
    # sized at its limit when placed, as a venue's (the adapter's) is: its coins cost less
    assert filled.filled == pytest.approx(300.0 / (reached * 1.001))
    missing = dataclasses.replace(order, client_order_id="miss")
    assert (await restored.cancel_order(missing)).status is OrderStatus.CANCELED
    assert restored.balances()["USDT"] == pytest.approx(1000.0 - filled.filled * price * 1.001)
    assert restored.balances()["BTC"] == pytest.approx(filled.filled)
