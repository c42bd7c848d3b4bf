"""What each exchange does differently, read from ccxt's source and the venues' API docs.

A profile says, per ccxt exchange id: the client order id the venue accepts and how ours is
carried on the wire, how an order is looked up by that id, whether a create reply can be booked
as it is (status and trades) or must be fetched again, how a stop-loss rests there (a plain
order, or a trigger/algo order that plain open-order reads and cancels do not see), and the
most candles one request returns. An exchange without a profile gets ``CONSERVATIVE``: ids that
every profiled venue accepts, every reply fetched again, stops checked per candle, and a
start-up warning naming what is unverified.

No ccxt import here: the adapter (``ccxt_*``) applies these rules.
"""

from __future__ import annotations

import re
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from bot.core.errors import ExchangeRejected

# Where our ids live as UUIDs (Coinbase, Kraken): a fixed namespace makes the UUID a pure
# function of our id.
_COINBASE_NAMESPACE = uuid.UUID("5b0c2c8e-6f1e-4f4a-9a51-7d1b1f0e3c11")


class IdForm(Enum):
    """How our client order id is carried on the wire."""

    OURS = "ours"  # as it is (it fits the venue's rule)
    UUID = "uuid"  # a UUID derived from ours (Coinbase's client_order_id, Kraken's cl_ord_id)
    # A number up to 10 digits derived from ours: Kraken's cl_ord_id before it went as a UUID
    # (31 bits collide: ~2% of 10,000 orders share one); still looked for (``legacy_forms``).
    SHORT = "short"


class Lookup(Enum):
    """How an order is found again by its client order id."""

    FETCH_ORDER = "fetch_order"  # ccxt's fetch_order(None, pair, {<param>: id})
    # No lookup by client id alone: read the open, then the closed and cancelled orders
    # (filtered by the venue where ``scan_param`` says how) and match the id.
    SCAN = "scan"


@dataclass(frozen=True, slots=True)
class VenueProfile:
    name: str
    id_max: int  # the longest client order id the venue accepts
    id_pattern: str  # the characters it accepts (a regex for one character)
    id_form: IdForm
    lookup_param: str  # the fetch_order parameter that finds an order by it
    lookup: Lookup
    lookup_params: Mapping[str, Any] = field(default_factory=dict)  # added to every lookup
    scan_param: str = ""  # the order-list filter that narrows a SCAN to our id (if any)
    reply_complete: bool = False  # a create reply carries the status and the trades
    stop_orders: bool = False  # a spot stop-loss can rest on the exchange
    # Stops are trigger/algo orders: these params make ccxt's reads, lookups and cancels see
    # them (empty: they are plain orders, listed and cancelled like any other).
    stop_list_params: Mapping[str, Any] = field(default_factory=dict)
    stop_lookup_params: Mapping[str, Any] = field(default_factory=dict)
    stop_cancel_params: Mapping[str, Any] = field(default_factory=dict)
    create_param: str = "clientOrderId"  # ccxt's unified create parameter
    create_params: Mapping[str, Any] = field(default_factory=dict)  # added to every order
    # A market buy may be sized in the quote coin (ccxt's create_market_buy_order_with_cost):
    # False where the venue's order reads then count in the quote coin too (Kraken's viqc).
    quote_sized_buys: bool = True
    scan_params: Mapping[str, Any] = field(default_factory=dict)  # added to a SCAN's list reads
    # How a SCAN reads a list past its first page: the parameter an order's ``info`` names the
    # next page's cursor by (and that asks for it), or the offset parameter for lists of
    # ``scan_page`` orders a page (a full page: there may be more).
    scan_cursor: str = ""
    scan_offset: str = ""
    scan_page: int = 0
    # The parameter that ends a SCAN's paged lists at a time, and how many milliseconds its
    # unit is ("": the venue takes no end, and the pages read grow with time).
    scan_end: str = ""
    scan_end_unit_ms: int = 1
    auth_errors: tuple[str, ...] = ()  # the venue's key refusals ccxt leaves unclassified
    stop_create_param: str = ""  # where a stop's client id goes, when not ``create_param``
    ohlcv_limit: int = 500
    # The trade-list parameter that narrows a read of trades to one order (a venue ignores one
    # it does not know, and answers every trade of the pair).
    trades_param: str = "orderId"
    # Seconds a rate limit lasts when the venue's answer does not say (no Retry-After).
    limit_wait: float = 0.0
    # ccxt options, under the user's own: set on the client when it is made.
    ccxt_options: Mapping[str, Any] = field(default_factory=dict)
    # The asset the venue converts dust (balances under its minimum) into through its API;
    # "" when it offers no conversion: dust then goes with the next exit of its pair.
    dust_to: str = ""
    # The table of ccxt's ``exceptions`` that its class picks by the venue's own URLs (ccxt's
    # binance ``get_exceptions_by_url``: "spot" for https://api.binance.com/): a venue's error
    # code is read in it whatever URL the client was given (a proxy, a test double), so an
    # error is classified as at the venue. "": ccxt's tables do not depend on the URL.
    error_table: str = ""
    unverified: tuple[str, ...] = ()  # what was read but never run against a model of it
    # The forms earlier versions carried our id in here: an order they placed (an upgrade
    # with an order open, or whose answer was lost) is looked for under them too.
    legacy_forms: tuple[IdForm, ...] = ()

    def wire_id(self, ours: str, form: IdForm | None = None) -> str:
        """Our client order id as this venue carries it (in ``form``, its own by default): the
        same id every time (a crash can be reconciled by it). Refused, before anything is
        sent, when ours cannot be carried: an id from another venue's format is a clear
        error."""
        form = form or self.id_form
        if form is IdForm.UUID:
            return str(uuid.uuid5(_COINBASE_NAMESPACE, ours))
        if form is IdForm.SHORT:
            return str(zlib.crc32(ours.encode()) & 0x7FFFFFFF)
        if len(ours) > self.id_max or not re.fullmatch(f"{self.id_pattern}+", ours):
            raise ExchangeRejected(
                f"{self.name}: client order id {ours!r} breaks the venue's rule (at most "
                f"{self.id_max} of {self.id_pattern}); not sent"
            )
        return ours

    def wire_ids(self, ours: str) -> list[str]:
        """Every form our id may be carried in here, the current one first."""
        return [self.wire_id(ours), *(self.wire_id(ours, form) for form in self.legacy_forms)]

    def id_params(self, ours: str, *, stop: bool = False) -> dict[str, Any]:
        """The create parameters that carry our id."""
        param = self.stop_create_param if stop and self.stop_create_param else self.create_param
        return {param: self.wire_id(ours)}

    def lookup_by_id(self, ours: str, *, stop: bool = False) -> dict[str, Any]:
        """The fetch_order parameters that find the order placed under ``ours``."""
        extra = self.stop_lookup_params if stop else {}
        return {**self.lookup_params, self.lookup_param: self.wire_id(ours), **extra}

    def warning(self) -> str | None:
        """What a start-up warning says about this venue, if anything."""
        if not self.unverified:
            return None
        return f"{self.name}: unverified against a model of the venue: {'; '.join(self.unverified)}"


_BINANCE = VenueProfile(
    name="binance",
    id_max=36,
    id_pattern=r"[.A-Z:/a-z0-9_-]",  # newClientOrderId: ^[\.A-Z\:/a-z0-9_-]{1,36}$
    id_form=IdForm.OURS,
    lookup_param="origClientOrderId",
    lookup=Lookup.FETCH_ORDER,
    reply_complete=True,  # ccxt asks for newOrderRespType FULL: status and fills come back
    stop_orders=True,  # STOP_LOSS: a plain order, listed by openOrders
    ohlcv_limit=1000,
    dust_to="BNB",  # POST /sapi/v1/asset/dust (Dust Transfer): once every 6 hours
    error_table="spot",  # -5001/-5003/-5004/-5006 (dust refusals) are only in it
)
PROFILES: Mapping[str, VenueProfile] = {
    "binance": _BINANCE,
    "okx": VenueProfile(
        name="okx",
        id_max=32,
        id_pattern=r"[A-Za-z0-9]",  # clOrdId: 1-32 letters and digits
        id_form=IdForm.OURS,
        lookup_param="clOrdId",
        lookup=Lookup.FETCH_ORDER,
        reply_complete=False,  # POST /trade/order answers ordId, clOrdId, sCode only
        stop_orders=True,  # a 'conditional' algo order: /trade/order-algo
        stop_create_param="algoClOrdId",  # an algo order's own client id (clOrdId is not it)
        stop_list_params={"ordType": "conditional"},  # /trade/orders-algo-pending
        stop_lookup_params={"trigger": True},  # /trade/order-algo by algoClOrdId
        stop_cancel_params={"trigger": True},  # /trade/cancel-algos
        ohlcv_limit=300,
    ),
    "bybit": VenueProfile(
        name="bybit",
        id_max=36,
        id_pattern=r"[A-Za-z0-9_-]",  # orderLinkId: up to 36 of letters, digits, - and _
        id_form=IdForm.OURS,
        lookup_param="orderLinkId",
        # ccxt's fetch_order always sends orderId (None too), which Bybit ranks above
        # orderLinkId: orders are read from /v5/order/realtime and /v5/order/history filtered
        # by orderLinkId instead.
        lookup=Lookup.SCAN,
        scan_param="orderLinkId",
        lookup_params={"acknowledged": True},  # fetch_order by the exchange's id: last 500
        reply_complete=False,  # /v5/order/create answers orderId and orderLinkId only
        # ccxt places a spot stopLossPrice order with orderFilter=tpslOrder, while its
        # trigger=True reads ask for StopOrder: the filter is named outright.
        stop_orders=True,
        stop_list_params={"orderFilter": "tpslOrder"},
        stop_lookup_params={"orderFilter": "tpslOrder"},
        stop_cancel_params={"orderFilter": "tpslOrder"},
        ohlcv_limit=1000,
        # A unified account, said outright: otherwise ccxt asks /v5/user/query-api before the
        # first order, which Bybit answers only to a key that may also move funds.
        ccxt_options={"enableUnifiedAccount": True, "enableUnifiedMargin": False},
        # Verified: the soaks run on a model of Bybit's v5 spot API (tests/doubles/fake_bybit.py).
    ),
    "kraken": VenueProfile(
        name="kraken",
        id_max=36,
        id_pattern=r"[0-9a-f-]",
        # cl_ord_id (ccxt's clientOrderId on create) takes a UUID or at most 18 characters of
        # free text: a UUID derived from ours (unique; Kraken keeps cl_ord_id unique among
        # open orders only, so an older closed order may carry a colliding short one).
        id_form=IdForm.UUID,
        legacy_forms=(IdForm.SHORT,),
        lookup_param="cl_ord_id",
        # QueryOrders needs the txid (ccxt's fetch_order sends a client id as userref, a number
        # Kraken keeps apart from cl_ord_id): open then closed orders, filtered by cl_ord_id
        # (Kraken answers 50 closed orders a page, of every pair), asked with their trade ids,
        # which QueryTrades then reads.
        lookup=Lookup.SCAN,
        scan_param="clientOrderId",
        scan_params={"trades": True},
        scan_offset="ofs",
        scan_page=50,
        # ClosedOrders' end, in unix seconds (ccxt's ``until`` would pass milliseconds as is).
        scan_end="end",
        scan_end_unit_ms=1000,
        reply_complete=False,  # AddOrder answers the txid and a description only
        stop_orders=True,  # ordertype stop-loss: a plain order in OpenOrders
        # Fees in the quote coin, said outright: without it a sell pays in the coin sold
        # (Kraken's default, fcib), and a trade's fee names no currency (ccxt reads the quote).
        create_params={"oflags": "fciq"},
        # viqc makes the order's vol and vol_exec quote amounts, which ccxt reads as coins.
        quote_sized_buys=False,
        # "EAPI:Rate limit exceeded" says no wait: the Starter tier's counter decays 0.33 a
        # second, so one call's worth is back after about 3 s.
        limit_wait=4.0,
        # A wrong secret: ccxt's table lacks it, and an unclassified error reads as an outage.
        auth_errors=("EAPI:Invalid signature",),
        ohlcv_limit=720,
        # Verified: the soaks run on a model of Kraken's spot REST API
        # (tests/doubles/fake_kraken.py).
    ),
    "coinbase": VenueProfile(
        name="coinbase",
        id_max=36,
        id_pattern=r"[0-9a-f-]",
        id_form=IdForm.UUID,
        lookup_param="clientOrderId",
        # ccxt fills client_order_id with its own "ccxt-<uuid>" and drops clientOrderId; only
        # client_order_id itself overrides it.
        create_param="client_order_id",
        # No lookup by client_order_id (/orders/historical/batch has no such filter): open,
        # then filled, then cancelled orders are read and matched.
        lookup=Lookup.SCAN,
        # 100 orders a page, newest first (ccxt asks one page): the rest by the cursor ccxt
        # leaves in the first order's info while the answer says has_next.
        scan_cursor="cursor",
        scan_end="until",  # ccxt sends it as end_date
        reply_complete=False,  # create answers success and order_id only
        # ccxt's coinbase places no stop-market (NotSupported): only a stop-limit, which a
        # price falling through its limit passes over. Stops are checked per candle.
        stop_orders=False,
        ohlcv_limit=300,
        trades_param="order_ids",  # /orders/historical/fills ignores orderId
        limit_wait=1.0,  # a 429 without Retry-After; the limits are per second
        # Advanced Trade's accounts (available and hold: ccxt's default /v2/accounts counts
        # held funds as free) and clock.
        ccxt_options={
            "fetchBalance": "v3PrivateGetBrokerageAccounts",
            "fetchTime": "v3PublicGetBrokerageTime",
        },
        # Verified: the soaks run on a model of the Advanced Trade API
        # (tests/doubles/fake_coinbase.py).
    ),
}

CONSERVATIVE = VenueProfile(
    name="",
    id_max=28,  # gate's, the shortest of a venue that takes ours as it is (ccxt refuses more)
    id_pattern=r"[A-Za-z0-9]",
    id_form=IdForm.OURS,
    lookup_param="clientOrderId",
    lookup=Lookup.SCAN,
    reply_complete=False,
    stop_orders=False,
    unverified=(
        "no profile: client order id rule, lookup by client id (open and closed orders are "
        "scanned), create replies (always fetched again), stops (checked per candle, none rest "
        "on the exchange), fee currencies",
    ),
)


def carries(reported: str, wire: str) -> bool:
    """Whether the client id a venue reports for an order is ``wire``: as it was sent, or
    behind a tag of the venue's own ending in "-" (ccxt's gate class sends "t-" + ours, as gate
    wants user texts to start with "t-", and reads it back with the tag)."""
    return reported == wire or reported.endswith("-" + wire)


def profile_for(name: str) -> VenueProfile:
    """The profile of exchange ``name``; the conservative defaults when it has none."""
    known = PROFILES.get(name)
    if known is not None:
        return known
    return VenueProfile(**{**_fields(CONSERVATIVE), "name": name})


def _fields(profile: VenueProfile) -> dict[str, Any]:
    return {name: getattr(profile, name) for name in VenueProfile.__slots__}
