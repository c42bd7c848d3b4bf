"""The exchange fault soak: the live stack trading on the fake while a share of its calls fail.

``Chaos`` picks, for each signed or market-data request, whether it fails and how, across every
class production sees: timeouts (the order placed, the answer lost), 429/418 with Retry-After,
5xx (before or after the order was placed), dropped connections, rejections, partial fills and
clock skew (Binance -1021). Waits between retries run on simulated time, so Retry-After is
honoured without the soak sleeping through it: a request sent while a Retry-After is still
running counts as a violation.

``run_fault_soak`` drives the real service tick by tick and checks the books against the fake's
own ledger at the end. Used by the suite (short) and by `python -m bench.exchange_fault_soak`
(long).
"""

from __future__ import annotations

import collections
import json
import logging
import random
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pandas as pd
from aiohttp import web

from bot.core.domain import from_ms
from bot.exchange.venues import profile_for
from storage.db import open_database
from storage.fills import SqliteFillRepository
from tests.doubles.fake_exchange import Fault
from tests.rigs.invariants import Invariants
from tests.rigs.live_rig import HOUR, VENUES, VenueRig, funded_fake, live_stack

KINDS = ("timeout", "rate_limit", "server_error", "dropped", "rejected", "partial", "clock_skew")
_ORDER_ONLY = {"rejected", "partial"}
CLIENT_TIMEOUT_MS = 150  # ccxt's request timeout in the soak; a "timeout" answers later


@dataclass
class Chaos:
    """Fails ``rate`` of the requests after start-up, each with a random class of fault."""

    rate: float
    rng: random.Random
    rig: VenueRig = VENUES["binance"]  # whose paths and refusals
    enabled: bool = False
    injected: collections.Counter[str] = field(default_factory=collections.Counter)
    requests: int = 0
    now: float = 0.0  # simulated seconds, advanced by the client's waits
    banned_until: float = 0.0
    violations: int = 0  # requests sent before a Retry-After had run out
    unanswered_orders: int = 0  # placed on the exchange, but the client got a fault

    async def sleep(self, seconds: float) -> None:
        """The adapter's wait between retries, on simulated time."""
        self.now += seconds

    def __call__(self, request: web.Request) -> Fault | None:
        if not self.enabled or request.path in self.rig.start_up:
            return None
        self.requests += 1
        if self.now < self.banned_until:
            self.violations += 1
        if self.rng.random() >= self.rate:
            return None
        placing = request.method == "POST" and request.path in self.rig.order_paths
        kinds = [kind for kind in KINDS if placing or kind not in _ORDER_ONLY]
        if request.path in self.rig.market_data:
            kinds.remove("clock_skew")  # public calls carry no timestamp
        kind = self.rng.choice(kinds)
        self.injected[kind] += 1
        fault = self._fault(kind, request.path, placing)
        self.unanswered_orders += fault.after
        return fault

    def _fault(self, kind: str, path: str, placing: bool) -> Fault:
        if kind == "timeout":  # for an order: placed, but the answer never arrives in time
            return Fault(path, 200, {}, after=placing, delay=CLIENT_TIMEOUT_MS / 1000 + 0.05)
        if kind == "rate_limit":
            wait = self.rng.choice(self.rig.limit_waits)
            self.banned_until = self.now + wait
            status, body = self.rig.refusals["rate_limit"]
            if self.rig.name == "binance":  # 418: Binance's ban after ignored 429s
                status = self.rng.choice((429, 418))
            return Fault(path, status, body, headers=self.rig.limit_headers(wait))
        if kind == "server_error":  # for an order, half the time it was placed all the same
            return Fault(
                path,
                self.rng.choice((500, 502, 503, 504)),
                {"msg": "unavailable"},
                after=placing and self.rng.random() < 0.5,
            )
        if kind == "dropped":
            return Fault(path, 200, {}, after=placing and self.rng.random() < 0.5, drop=True)
        if kind == "rejected":
            return Fault(path, *self.rig.refusals["rejected"])
        if kind == "partial":
            return Fault(path, fill_share=self.rng.choice((0.3, 0.5, 0.8)))
        return Fault(path, *self.rig.refusals["clock_skew"])


@dataclass
class SoakReport:
    ticks: int
    requests: int
    injected: dict[str, int]
    unhandled: list[str]
    violations: int  # Retry-After not honoured
    unanswered_orders: int
    fills_booked: int
    exchange_trades: int
    duplicate_client_ids: int
    books_vs_exchange: dict[str, tuple[float, float]]  # asset: (books, exchange less the
    # user's own), if they differ
    alerts: dict[str, int]
    rejected_orders: int
    logged_errors: list[str]
    invariants: Invariants | None = None  # checked after every tick (tests/rigs/invariants.py)

    @property
    def faults(self) -> int:
        return sum(self.injected.values())

    @property
    def problems(self) -> list[str]:
        found = [f"unhandled: {text}" for text in self.unhandled]
        found += self.invariants.violations if self.invariants else []
        found += [f"logged error: {text}" for text in self.logged_errors]
        if self.violations:
            found.append(f"{self.violations} request(s) inside a Retry-After")
        if self.fills_booked != self.exchange_trades:
            found.append(f"{self.fills_booked} fills booked, {self.exchange_trades} traded")
        if self.duplicate_client_ids:
            found.append(f"{self.duplicate_client_ids} client order id(s) placed twice")
        found += [
            f"{asset}: books {b}, exchange {v}" for asset, (b, v) in self.books_vs_exchange.items()
        ]
        if self.alerts.get("order_rejected", 0) != self.rejected_orders:
            found.append(
                f"{self.rejected_orders} orders rejected, "
                f"{self.alerts.get('order_rejected', 0)} alerted"
            )
        return found


class _Errors(logging.Handler):
    """Collects ERROR records: an exception logged anywhere is a finding."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(record.getMessage()[:300])


async def run_fault_soak(
    tmp_path: Path,
    candles: pd.DataFrame,
    *,
    ticks: int,
    rate: float = 0.2,
    seed: int = 1,
    venue: str = "binance",
    split: tuple[float, ...] = (1.0,),
    fee_asset: str = "quote",
    walks: bool = False,
) -> SoakReport:
    """``ticks`` hourly ticks of EMA 3/7 (it trades often) with a stop-loss on BTC/USDT,
    ``rate`` of the calls failing; returns what was injected and every invariant's result.
    ``venue``: whose fake and ccxt class; ``split`` and ``fee_asset``: the fake's trades per
    order and fee currency, ``walks``: its market walks each candle (see ``FakeBinance``)."""
    fake = funded_fake(candles, venue, fee_asset)
    fake.split, fake.walks = split, walks
    chaos = Chaos(rate, random.Random(seed), VENUES[venue])
    fake.chaos = chaos
    start = from_ms(int(candles["timestamp"].iloc[0])) + timedelta(days=10, seconds=5)
    errors = _Errors()
    logging.getLogger().addHandler(errors)
    unhandled: list[str] = []
    params = {"fast": 3, "slow": 7, "stop_loss": 0.02}
    try:
        stack = live_stack(
            tmp_path,
            fake,
            start,
            params,
            attempts=5,
            sleep=chaos.sleep,
            client={"timeout": CLIENT_TIMEOUT_MS},
            risk={"max_drawdown": 0, "daily_loss_limit": 0},
            venue=venue,
        )  # trade throughout
        async with stack as (trading, market, _):
            chaos.enabled = True
            invariants = Invariants(
                fake,
                tmp_path / "pairpilot.sqlite",
                VENUES[venue].trade_key,
                grace=0,
                resting_stops=profile_for(venue).stop_orders,
            )  # a position unprotected for one tick is seen
            moment = start
            for _ in range(ticks):
                moment += HOUR
                chaos.now += HOUR.total_seconds()  # a Retry-After is long over by the next tick
                market.at(moment)
                try:
                    await trading.service.tick("1h")
                except Exception as error:  # the finding this soak looks for
                    unhandled.append(f"{type(error).__name__}: {error}"[:300])
                invariants.check(f"tick at {moment:%m-%d %H:%M}")
            chaos.enabled = False
            moment += HOUR  # one calm tick settles what the last faults left unknown
            market.at(moment)
            await trading.service.tick("1h")
            portfolio = trading.engine.portfolio
            held = {p.pair.split("/")[0]: p.amount for p in portfolio.positions()}
            books = {"USDT": portfolio.cash, **held}
    finally:
        logging.getLogger().removeHandler(errors)
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        kept = await db.fetch_one("SELECT value FROM bot_state WHERE key = 'reconcile.outside'")
        own = json.loads(kept[0]) if kept else {}  # the user's own coins (BNB kept for fees)
        fills = await SqliteFillRepository(db).all()
        alerts = await db.fetch_all("SELECT kind, count(*) FROM alerts GROUP BY kind")
        refused = await db.fetch_one(  # by the exchange or the balance check, not "never sent"
            "SELECT count(*) FROM order_status_history WHERE status = 'rejected' "
            "AND note NOT LIKE 'not sent%' AND note NOT LIKE 'never reached%'"
        )
    # An asset neither in the books nor in the user's figures is all theirs (BNB kept for fees).
    exchange = {
        asset: fake.balances.get(asset, 0.0) + fake.locked.get(asset, 0.0) - own.get(asset, 0.0)
        for asset in set(books) | set(own)
    }
    differ = {
        asset: (books.get(asset, 0.0), venue)
        for asset, venue in exchange.items()
        if abs(books.get(asset, 0.0) - venue) > 1e-6 * max(1.0, abs(venue))
    }
    client_ids = collections.Counter(order.client_id for order in fake.orders.values())
    return SoakReport(
        ticks=ticks,
        requests=chaos.requests,
        injected=dict(chaos.injected),
        unhandled=unhandled,
        violations=chaos.violations,
        unanswered_orders=chaos.unanswered_orders,
        fills_booked=len(fills),
        exchange_trades=sum(len(order.fills) for order in fake.orders.values()),
        duplicate_client_ids=sum(count - 1 for count in client_ids.values()),
        books_vs_exchange=differ,
        alerts={kind: count for kind, count in alerts},
        rejected_orders=int(refused[0]) if refused else 0,
        logged_errors=errors.texts,
        invariants=invariants,
    )
