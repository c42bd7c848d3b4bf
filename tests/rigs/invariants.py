"""Invariants of a position's life, checked against the fake exchange's own ledger.

The soaks call ``Invariants.check`` after every tick (the fault soak) or every restart (the
crash soak), reading the books straight from the SQLite file:

- protected: every open position (dust aside) has a stop resting on the exchange for what it
  holds after every tick. A check that finds none is excused only by a failed attempt the
  journal shows: an order of the pair refused since the last check, or one whose outcome is
  still unknown (the exchange failed it; the next tick places the stop again). Otherwise it
  counts toward ``grace``, the checks in a row a position may go without any explanation (0
  in the fault soak; 1 at a crash soak's restart, as a kill leaves no trace in the journal).
  (On a venue without resting stops the per-candle check holds the level in the position's
  protection state: it must be known.)
- owned: coins the account holds for a pair no run trades, beyond the user's own holdings and
  dust, were alerted (once).
- ledger: the books' cash and coins equal the exchange's free + used balances minus what the
  user holds outside pairpilot (the baseline recorded at the first start), once the exchange
  trades not booked yet (an answer lost, a stop that fired since the last look) are counted.
- closed: when the books are flat or hold only dust, every sell closes a round trip in the
  trade list (``round_trips`` with the exchange's dust rule); a dust conversion (/dust) is
  no exit: the exit that left the dust closed the trade.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.core.domain import Fill, Side, from_ms
from bot.portfolio.performance import round_trips
from bot.trading.protection import Protection, protection_key
from tests.doubles.fake_exchange import FakeBinance

STEP = 0.00001  # the fake's LOT_SIZE step and minimum (tests/doubles/fake_exchange.py::_symbol)
MIN_NOTIONAL = 5.0
CASH_TOLERANCE = 1e-6


def too_small(pair: str, amount: float, price: float) -> str | None:
    """The fake's dust rule, as ``CcxtExchange.too_small`` reads it from its filters."""
    rounded = math.floor(amount / STEP + 1e-9) * STEP
    if rounded < STEP or amount * price < MIN_NOTIONAL:
        return f"{pair}: {amount:.8g} is dust"
    return None


def binance_trade_key(symbol: str, trade_id: object) -> str:
    """The id the books give a fake trade on Binance (``VenueRig.trade_key`` per venue)."""
    return f"{symbol}-{trade_id}"


@dataclass
class Invariants:
    fake: FakeBinance
    database: Path
    trade_key: Callable[[str, object], str] = binance_trade_key
    pairs: tuple[str, ...] = ("BTC/USDT",)
    quote: str = "USDT"
    grace: int = 1  # checks in a row a position may go without a stop, no failed attempt seen
    resting_stops: bool = True  # the venue's profile rests stops (else they are per candle)
    checks: int = 0
    unprotected: int = 0  # checks that found a position waiting for its stop
    dust_seen: int = 0  # checks that found dust in the books
    violations: list[str] = field(default_factory=list)
    # pair: (``_progress`` when its position was first seen waiting for its stop, checks)
    _waiting: dict[str, tuple[tuple[int, int], int]] = field(default_factory=dict)
    _journaled: set[str] = field(default_factory=set)  # order ids seen at the last check

    def check(self, when: str, *, ticked: bool = True) -> list[str]:
        """Every invariant now; returns (and keeps) what was broken, labelled ``when``.
        ``ticked``: the service finished a tick since the last check. A crash soak's kill may
        land inside the first tick after a restart, before it restored a missing stop: a
        position waiting for its stop then has not waited one more tick."""
        self.checks += 1
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True) as db:
            found = [
                *self._protected(db, ticked),
                *self._owned(db),
                *self._ledger(db),
                *self._closed(db),
            ]
            self._journaled = {row[0] for row in db.execute("SELECT client_order_id FROM orders")}
        found = [f"{when}: {text}" for text in found]
        self.violations += found
        return found

    def _price(self, pair: str) -> float:
        return self.fake.prices.get(pair.replace("/", ""), 0.0)

    def _positions(self, db: sqlite3.Connection) -> dict[str, float]:
        rows = db.execute("SELECT pair, amount FROM positions WHERE amount > 0").fetchall()
        return {pair: amount for pair, amount in rows}

    def _state(self, db: sqlite3.Connection, key: str) -> object:
        row = db.execute("SELECT value FROM bot_state WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def _protected(self, db: sqlite3.Connection, ticked: bool) -> list[str]:
        found = []
        for pair, amount in self._positions(db).items():
            if too_small(pair, amount, self._price(pair)):
                self.dust_seen += 1
                continue
            symbol = pair.replace("/", "")
            resting = sum(
                o.quantity
                for o in self.fake.orders.values()
                if o.symbol == symbol and o.kind == "STOP_LOSS" and o.status == "NEW"
            )
            saved = Protection.from_json(self._state(db, protection_key(pair)))
            if saved.entry is not None and (resting >= amount - STEP or not self.resting_stops):
                self._waiting.pop(pair, None)
                continue
            self.unprotected += 1
            if self._failed_attempt(db, pair):
                continue
            # A streak per position: one protected or sold between two checks (unseen by them)
            # and a new one caught unprotected at the second (a crash soak's kill right after
            # its buy) is no streak; a second buy into an unprotected position does not end it.
            mark = self._progress(db, pair)
            seen, waited = self._waiting.get(pair, (mark, 0))
            waited = max(1, waited + ticked) if seen == mark else 1
            self._waiting[pair] = (mark, waited)
            if waited > self.grace:
                found.append(
                    f"{pair}: {amount:.8g} held, {resting:.8g} under a resting stop, "
                    f"for {waited} checks (protection {saved})"
                )
        return found

    def _progress(self, db: sqlite3.Connection, pair: str) -> tuple[int, int]:
        """The pair's closed trades and the stop orders the exchange got: either grows once a
        position is sold or protected (a partial sale does neither)."""
        fills = [
            _fill(row)
            for row in db.execute(
                "SELECT client_order_id, pair, side, amount, price, fee, time, trade_id FROM fills "
                "WHERE pair = ? ORDER BY time",
                (pair,),
            )
        ]
        symbol = pair.replace("/", "")
        stops = sum(o.symbol == symbol and o.kind == "STOP_LOSS" for o in self.fake.orders.values())
        return len(round_trips(fills, too_small)), stops

    def _failed_attempt(self, db: sqlite3.Connection, pair: str) -> bool:
        """The exchange failed one of the pair's orders since the last check (refused it, or its
        outcome is unknown yet): the stop missing now is placed again on the next tick."""
        rows = db.execute(
            "SELECT client_order_id, status FROM orders WHERE pair = ? AND status "
            "IN ('new', 'rejected')",
            (pair,),
        ).fetchall()
        return any(status == "new" or coid not in self._journaled for coid, status in rows)

    def _owned(self, db: sqlite3.Connection) -> list[str]:
        active = {
            row[0] for row in db.execute("SELECT pair FROM pair_runs WHERE state != 'stopped'")
        }
        outside = self._state(db, "reconcile.outside") or {}
        texts = [row[0] for row in db.execute("SELECT text FROM alerts")]
        found = []
        for pair in self.pairs:
            if pair in active:
                continue
            base = pair.split("/")[0]
            held = self._held(base) - outside.get(base, 0.0)
            if too_small(pair, held, self._price(pair)):
                continue
            alerted = [t for t in texts if t.startswith(f"{pair}:") and "no run trading" in t]
            if len(alerted) != 1:
                found.append(f"{pair}: {held:.8g} held with no run, alerted {len(alerted)} times")
        return found

    def _held(self, asset: str) -> float:
        return self.fake.balances.get(asset, 0.0) + self.fake.locked.get(asset, 0.0)

    def _ledger(self, db: sqlite3.Connection) -> list[str]:
        cash = self._state(db, "portfolio.cash")
        if cash is None:
            return []
        outside = self._state(db, "reconcile.outside") or {}
        # a trade wholly beyond the books' position is only in sales_beyond
        known = "SELECT trade_id FROM fills UNION SELECT trade_id FROM sales_beyond"
        booked = {row[0] for row in db.execute(known)}
        expected = {self.quote: float(cash)}
        for pair, amount in self._positions(db).items():
            expected[pair.split("/")[0]] = amount
        for order in self.fake.orders.values():  # trades the books have not seen yet
            base, quote = order.symbol[:-4], order.symbol[-4:]
            for trade in order.fills:
                if self.trade_key(order.symbol, trade["tradeId"]) in booked:
                    continue
                qty, price = float(trade["qty"]), float(trade["price"])
                sign = 1 if order.side == "BUY" else -1
                expected[base] = expected.get(base, 0.0) + sign * qty
                expected[quote] = expected.get(quote, 0.0) - sign * qty * price
                asset = trade["commissionAsset"]
                if asset in (base, quote):
                    expected[asset] -= float(trade["commission"])
        found = []
        for asset, books in sorted(expected.items()):
            venue = self._held(asset) - outside.get(asset, 0.0)
            slack = CASH_TOLERANCE if asset == self.quote else 1e-9
            if abs(books - venue) > slack * max(1.0, abs(venue)):
                found.append(
                    f"{asset}: books (with unbooked trades) {books:.8f}, "
                    f"exchange net of the user's own {venue:.8f}"
                )
        return found

    def _closed(self, db: sqlite3.Connection) -> list[str]:
        fills = [
            _fill(row)
            for row in db.execute(
                "SELECT client_order_id, pair, side, amount, price, fee, time, trade_id FROM fills "
                "ORDER BY time"
            )
        ]
        positions = self._positions(db)
        found = []
        for pair in {fill.pair for fill in fills}:
            held = positions.get(pair, 0.0)
            if held and not too_small(pair, held, self._price(pair)):
                continue  # a trade is open
            mine = [fill for fill in fills if fill.pair == pair]
            sells = [fill for fill in mine if fill.side is Side.SELL and not fill.is_conversion]
            if not sells:
                continue
            # the last sell is in a trade when the trade list changes without it (a sale of an
            # exit's rest changes the trade it completes, which keeps its exit time)
            dust = {pair: held} if held else None
            without = [fill for fill in mine if fill is not sells[-1]]
            if round_trips(mine, too_small, dust) == round_trips(without, too_small, dust):
                found.append(f"{pair}: flat (or dust) but its last sell closed no trade")
        return found


def _fill(row: tuple) -> Fill:
    coid, pair, side, amount, price, fee, time, trade_id = row
    return Fill(coid, pair, Side(side), amount, price, fee, from_ms(time), trade_id)
